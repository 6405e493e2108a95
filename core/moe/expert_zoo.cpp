// The zoo: one registry of kind name -> ExpertFactory, holding the built-in kinds from the
// start and any kind registered from C++. Built-in kinds check the shared training options,
// describe themselves (expert_blocks.h) and build a TorchExpert. The registry is guarded by a
// mutex (registration may come from static initialisers); factories run outside the lock.
#include <map>
#include <mutex>
#include <utility>

#include "core/moe/expert.h"
#include "core/moe/expert_blocks.h"
#include "core/moe/torch_expert.h"

namespace crowdtrain::moe {
namespace {

constexpr size_t kMaxKindName = 64;
constexpr size_t kMaxKinds = 1024;

ExpertFactory builtin_factory(const BuiltinKind& kind) {
  ExpertFactory f;
  f.info = [kind](const ExpertConfig& c) -> Result<ExpertInfo> {
    if (Status s = check_training_options(c); !s.ok()) return s;
    return kind.info(c);
  };
  f.make = [kind, info = f.info](const ExpertConfig& c) -> Result<std::unique_ptr<Expert>> {
    Result<ExpertInfo> described = info(c);
    if (!described.ok()) return described.status();
    Result<std::unique_ptr<ExpertModule>> module = kind.build(c);
    if (!module.ok()) return module.status();
    Result<std::unique_ptr<TorchExpert>> expert =
        TorchExpert::create(c, std::move(*described), std::move(*module));
    if (!expert.ok()) return expert.status();
    return std::unique_ptr<Expert>(std::move(*expert));
  };
  return f;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, ExpertFactory> factories;
};

Registry& registry() {
  static Registry* r = [] {
    auto* fresh = new Registry();  // never destroyed: experts may outlive static destructors
    for (const BuiltinKind& kind : builtin_kinds()) {
      fresh->factories.emplace(kind.name, builtin_factory(kind));
    }
    return fresh;
  }();
  return *r;
}

Result<ExpertFactory> factory_of(const std::string& kind) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.factories.find(kind);
  if (it != r.factories.end()) return it->second;
  std::string known;
  for (const auto& [name, factory] : r.factories) known += (known.empty() ? "" : ", ") + name;
  return Status::error("unknown expert kind '" + kind + "' (known: " + known + ")");
}

bool valid_kind_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxKindName || name[0] < 'a' || name[0] > 'z') return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<ExpertInfo> expert_info(const ExpertConfig& config) {
  Result<ExpertFactory> factory = factory_of(config.kind());
  if (!factory.ok()) return factory.status();
  return factory->info(config);
}

Result<std::unique_ptr<Expert>> make_expert(const ExpertConfig& config) {
  Result<ExpertFactory> factory = factory_of(config.kind());
  if (!factory.ok()) return factory.status();
  Result<std::unique_ptr<Expert>> expert = factory->make(config);
  if (expert.ok() && *expert == nullptr) {
    return Status::error("expert kind '" + config.kind() + "': its factory returned no expert");
  }
  return expert;
}

Status register_expert_kind(const std::string& kind, ExpertFactory factory) {
  if (!valid_kind_name(kind)) {
    return Status::error("register_expert_kind: '" + kind + "' is not a name of the form " +
                         "[a-z][a-z0-9_]* (at most " + std::to_string(kMaxKindName) + " chars)");
  }
  if (!factory.info || !factory.make) {
    return Status::error("register_expert_kind: kind '" + kind +
                         "' lacks an info or make function");
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.factories.count(kind) != 0) {
    return Status::error("register_expert_kind: kind '" + kind + "' is already registered");
  }
  if (r.factories.size() >= kMaxKinds) {
    return Status::error("register_expert_kind: the registry is full (" +
                         std::to_string(kMaxKinds) + " kinds)");
  }
  r.factories.emplace(kind, std::move(factory));
  return Status();
}

std::vector<std::string> expert_kinds() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> kinds;
  for (const auto& [name, factory] : r.factories) kinds.push_back(name);
  return kinds;
}

}  // namespace crowdtrain::moe
