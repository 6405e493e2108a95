// ExpertServer's checkpoints: <checkpoint_dir>/<uid>.ckpt holds a one-line header (the format,
// the expert's update count, the state's size and SHA-256) and then Expert::save_state()'s bytes,
// written atomically (a temp file beside it, then a rename) every checkpoint_interval when the
// expert changed, and read back by add_expert so that a restarted server resumes. A checkpoint
// that does not match its header (truncated, corrupted) or does not restore the update count it
// was written at is refused, counted and breaks the invariant "moe_expert_state_restored"
// (core/invariants.h); files without the header (written before it existed) load as plain state.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "core/invariants.h"
#include "core/moe/server.h"
#include "core/sha256.h"

namespace crowdtrain::moe {
namespace {

constexpr std::string_view kMagic = "crowdtrain-expert-checkpoint 1 ";

std::string header_of(uint64_t updates, const std::string& state) {
  return std::string(kMagic) + "updates=" + std::to_string(updates) +
         " bytes=" + std::to_string(state.size()) + " sha256=" + sha256_hex(state) + "\n";
}

// The state of a checkpoint file and the update count it was written at (nullopt for a file
// without the header), or why the file does not match its header.
Result<std::pair<std::string, std::optional<uint64_t>>> parse_checkpoint(std::string file) {
  if (file.compare(0, kMagic.size(), kMagic) != 0) {
    return std::make_pair(std::move(file), std::optional<uint64_t>());
  }
  const size_t eol = file.find('\n');
  unsigned long long updates = 0, bytes = 0;
  char digest[65] = {0};
  if (eol == std::string::npos ||
      std::sscanf(file.c_str() + kMagic.size(), "updates=%llu bytes=%llu sha256=%64s", &updates,
                  &bytes, digest) != 3) {
    return Status::error("malformed header");
  }
  file.erase(0, eol + 1);  // the state, in place (an expert's is 100+ MB)
  if (file.size() != bytes) {
    return Status::error("holds " + std::to_string(file.size()) + " bytes of state, its header " +
                         std::to_string(bytes));
  }
  if (sha256_hex(file) != digest) return Status::error("the state does not match its SHA-256");
  return std::make_pair(std::move(file), std::optional<uint64_t>(updates));
}

}  // namespace

std::string ExpertServer::checkpoint_path(const std::string& uid) const {
  return options_.checkpoint_dir() + "/" + uid + ".ckpt";
}

void ExpertServer::schedule_checkpoint() {
  if (options_.checkpoint_dir().empty() || options_.numerics() != Numerics::kReal) return;
  CT_CHECK(options_.checkpoint_interval() > Time(0));
  std::weak_ptr<bool> alive = alive_;
  checkpoint_timer_set_ = true;
  checkpoint_timer_ = rt_.schedule(options_.checkpoint_interval(), [this, alive] {
    auto a = alive.lock();
    if (!a || !*a) return;
    checkpoint_timer_set_ = false;
    checkpoint_all();
    schedule_checkpoint();
  });
}

Status ExpertServer::checkpoint_all() {
  Status first = Status::ok_status();
  if (options_.checkpoint_dir().empty()) return first;
  for (auto& [uid, h] : experts_) {
    if (!h.expert) continue;
    Status s = write_checkpoint(uid, h);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status ExpertServer::write_checkpoint(const std::string& uid, Hosted& h) {
  const uint64_t updates = h.expert->updates();
  if (updates == h.saved_updates) return Status::ok_status();  // unchanged since the last one
  auto fail = [&](const std::string& why) {
    rt_.metrics().count("moe_server_checkpoint_write_failures");
    rt_.metrics().event("moe_checkpoint_write_failed",
                        {{"uid", std::string_view(uid)}, {"why", std::string_view(why)}});
    return Status::error("moe server: checkpoint of '" + uid + "': " + why);
  };
  auto state = h.expert->save_state();
  if (!state.ok()) return fail("save_state: " + state.error());
  std::error_code ec;
  std::filesystem::create_directories(options_.checkpoint_dir(), ec);
  if (ec) return fail("cannot create " + options_.checkpoint_dir() + ": " + ec.message());
  const std::string path = checkpoint_path(uid);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const std::string header = header_of(updates, state.value());
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(state->data(), static_cast<std::streamsize>(state->size()));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return fail("cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return fail("cannot rename " + tmp + " to " + path);
  }
  h.saved_updates = updates;
  rt_.metrics().count("moe_server_checkpoints_written");
  return Status::ok_status();
}

void ExpertServer::load_checkpoint(const std::string& uid, Hosted& h) {
  if (options_.checkpoint_dir().empty()) return;
  const std::string path = checkpoint_path(uid);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;  // a first start
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Status s = Status::ok_status();
  if (in.bad() || !in.is_open()) {
    s = Status::error("cannot read " + path);
  } else if (auto parsed = parse_checkpoint(std::move(bytes)); !parsed.ok()) {
    s = Status::error(path + ": " + parsed.status().message());
  } else if (s = h.expert->load_state(parsed->first);
             s.ok() && parsed->second && h.expert->updates() != *parsed->second) {
    s = Status::error(path + " was written at " + std::to_string(*parsed->second) +
                      " updates and restored " + std::to_string(h.expert->updates()));
  }
  check_invariant(rt_.metrics(), s.ok(), "moe_expert_state_restored",
                  [&] { return "expert " + uid + ": " + s.message(); });
  if (!s.ok()) {
    rt_.metrics().count("moe_server_checkpoint_load_failures");
    rt_.metrics().event("moe_checkpoint_load_failed",
                        {{"uid", std::string_view(uid)}, {"why", std::string_view(s.message())}});
    return;
  }
  h.saved_updates = h.expert->updates();
  rt_.metrics().count("moe_server_checkpoints_loaded");
}

}  // namespace crowdtrain::moe
