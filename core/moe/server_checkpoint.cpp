// ExpertServer's checkpoints: <checkpoint_dir>/<uid>.ckpt holds Expert::save_state()'s bytes,
// written atomically (a temp file beside it, then a rename) every checkpoint_interval when the
// expert changed, and read back by add_expert so that a restarted server resumes.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "core/moe/server.h"

namespace crowdtrain::moe {

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
  Status s = in.bad() || !in.is_open() ? Status::error("cannot read " + path)
                                       : h.expert->load_state(bytes);
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
