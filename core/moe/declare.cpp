// Expert declarations in the DHT: the records, the server value's parser, the periodic declarer.
#include "core/moe/declare.h"

#include <algorithm>
#include <tuple>

#include "core/moe/expert_uid.h"

namespace crowdtrain::moe {

namespace {
constexpr Time kAloneRetry = std::chrono::seconds(2);
}  // namespace

std::vector<dht::StoreItem> declaration_items(const std::vector<std::string>& uids, PeerId server,
                                              Time expiration, const std::string& owner) {
  const std::string server_str = std::to_string(server);
  const std::string server_entry = server_str + owner;
  std::vector<dht::StoreItem> items;
  for (const std::string& text : uids) {
    auto uid = parse_expert_uid(text);
    CT_CHECK(uid.ok());
    const size_t dims = uid->coords.size();
    for (size_t depth = 0; depth < dims; ++depth) {
      // The last level names the replica too ("<coord>.<server>"), so that every server of an
      // expert has its own entry and a beam search sees all of them in one lookup.
      std::string subkey = std::to_string(uid->coords[depth]);
      if (depth + 1 == dims) subkey += "." + server_entry;
      items.push_back(dht::StoreItem{uid_prefix(*uid, depth), subkey, server_str, expiration});
    }
    items.push_back(dht::StoreItem{uid->str(), server_entry, "", expiration});
  }
  auto order = [](const dht::StoreItem& a, const dht::StoreItem& b) {
    return std::tie(a.key, a.subkey) < std::tie(b.key, b.subkey);
  };
  auto same = [](const dht::StoreItem& a, const dht::StoreItem& b) {
    return a.key == b.key && a.subkey == b.subkey;
  };
  std::sort(items.begin(), items.end(), order);
  items.erase(std::unique(items.begin(), items.end(), same), items.end());
  return items;
}

std::string without_owner(const std::string& subkey) {
  const size_t at = subkey.find("[owner:");
  return at != std::string::npos && subkey.back() == ']' ? subkey.substr(0, at) : subkey;
}

std::optional<PeerId> parse_server_value(const std::string& value) {
  if (value.empty() || value.size() > 10) return std::nullopt;
  if (value.size() > 1 && value[0] == '0') return std::nullopt;
  uint64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= kNoPeer) return std::nullopt;
  return static_cast<PeerId>(v);
}

ExpertDeclarer::ExpertDeclarer(Runtime& rt, dht::DhtNode& node, std::vector<std::string> uids,
                               ExpertDeclarerOptions options)
    : rt_(rt), node_(node), options_(options), alive_(std::make_shared<bool>(true)) {
  CT_CHECK(options_.period() > Time(0) && options_.expiration() > Time(0));
  for (auto& uid : uids) {
    CT_CHECK(parse_expert_uid(uid).ok());
    uids_.insert(std::move(uid));
  }
  CT_CHECK(uids_.size() <= options_.max_uids());
}

ExpertDeclarer::~ExpertDeclarer() {
  *alive_ = false;
  if (started_) rt_.cancel(timer_);
}

void ExpertDeclarer::start() {
  if (started_) return;
  started_ = true;
  tick();
}

void ExpertDeclarer::tick() {
  // Records declared while the node knows no other peer (the network's first node) stay on this
  // node only, where lookups from others need not look: declare again soon instead of a period on.
  const bool alone = node_.routing_table().size() == 0;
  declare(std::vector<std::string>(uids_.begin(), uids_.end()));
  const Time next = alone ? std::min(options_.period(), kAloneRetry) : options_.period();
  timer_ = rt_.schedule(next, [this, alive = alive_] {
    if (*alive) tick();
  });
}

Status ExpertDeclarer::add(const std::vector<std::string>& uids) {
  std::vector<std::string> fresh;
  for (const auto& uid : uids) {
    auto parsed = parse_expert_uid(uid);
    if (!parsed.ok()) return Status::error("expert declarer: " + parsed.error());
    if (!uids_.count(uid) && std::find(fresh.begin(), fresh.end(), uid) == fresh.end()) {
      fresh.push_back(uid);
    }
  }
  if (uids_.size() + fresh.size() > options_.max_uids()) {
    return Status::error("expert declarer: adding " + std::to_string(fresh.size()) + " uids to " +
                         std::to_string(uids_.size()) + " passes the limit of " +
                         std::to_string(options_.max_uids()));
  }
  uids_.insert(fresh.begin(), fresh.end());
  if (started_ && !fresh.empty()) declare(fresh);
  return Status();
}

void ExpertDeclarer::remove(const std::vector<std::string>& uids) {
  for (const auto& uid : uids) uids_.erase(uid);
}

void ExpertDeclarer::declare(const std::vector<std::string>& uids) {
  if (uids.empty()) return;
  ++rounds_;
  const auto& key = node_.signing_key();
  const std::string owner = options_.sign() && key ? key->marker() : std::string();
  auto items = declaration_items(uids, rt_.self(), rt_.now() + options_.expiration(), owner);
  node_.store_many(std::move(items), [this, alive = alive_](std::vector<size_t> stored) {
    if (!*alive) return;
    for (size_t n : stored) rt_.metrics().count(n > 0 ? "moe_declare_ok" : "moe_declare_failed");
  });
}

}  // namespace crowdtrain::moe
