// Taking over orphaned experts, so that an expert's parameters survive the death of its hosts
// (hivemind's experts vanish with their host, hivemind #94). Every expert has a guardian: a server
// that does not host it (moe_workload.cpp: the next server after its replicas, in placement
// order). The guardian's ExpertGuardian
//   - pulls the expert's state (Expert::save_state() bytes, kMoeStateRequest) from one of its hosts
//     every backup_interval, keeping the newest copy in memory;
//   - reads the expert's replica record in the DHT (key = uid, one subkey per hosting server) on
//   the
//     same period; when the record has stayed empty for takeover_after (every host's declaration
//     expired: they are gone), it adopts the expert from its newest copy (the Adopt callback builds
//     it, loads the state, hosts it and declares it) and stops guarding it.
// A host that comes back resumes from its own checkpoint: both then serve the expert as replicas.
// Counters: moe_backup_pulls, moe_backup_failures, moe_takeovers, moe_takeover_failures; event
// moe_takeover {uid, state_age_s, updates}. Single-threaded, on the runtime's loop; the runtime,
// the endpoint and the directory outlive it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/moe/beam_search.h"
#include "core/moe/protocol.h"
#include "core/rpc.h"
#include "core/runtime.h"

namespace crowdtrain::moe {

struct GuardedExpert {
  std::string uid;
  std::vector<PeerId> hosts;  // the servers that host it by assignment
};

struct ExpertGuardianOptions {
  Time backup_interval = std::chrono::seconds(30);  // state pulls and DHT checks
  Time takeover_after = std::chrono::seconds(60);   // record empty this long: adopt
  Time rpc_timeout = std::chrono::seconds(10);      // one state pull
  ProtocolLimits limits;
};

class ExpertGuardian {
 public:
  // Builds, loads (state "" for a timing-only expert), hosts and declares `uid`; an error leaves
  // the expert guarded (the next check tries again).
  using Adopt = std::function<Status(const std::string& uid, const std::string& state)>;

  ExpertGuardian(Runtime& rt, RpcEndpoint& rpc, ExpertDirectory& directory,
                 std::vector<GuardedExpert> guarded, ExpertGuardianOptions options, Adopt adopt);
  ~ExpertGuardian();
  ExpertGuardian(const ExpertGuardian&) = delete;
  ExpertGuardian& operator=(const ExpertGuardian&) = delete;

  void start();            // the first pull and check now, then every backup_interval
  size_t guarded() const;  // experts still guarded (not adopted)
  // The newest backup of `uid` (nullopt before the first successful pull).
  std::optional<std::string> backup_of(const std::string& uid) const;

 private:
  struct Entry {
    GuardedExpert expert;
    std::optional<std::string> state;  // newest backup
    Time state_at{0};
    uint64_t updates = 0;
    std::optional<Time> missing_since;  // the DHT record was first seen empty then
    size_t next_host = 0;               // hosts are asked in turn
    bool adopted = false;
  };

  void tick();
  void pull(size_t i);
  void check();
  void on_records(const std::vector<size_t>& asked,
                  std::vector<std::optional<ExpertDirectory::Dict>> records);
  void adopt(Entry& e);

  Runtime& rt_;
  RpcEndpoint& rpc_;
  ExpertDirectory& directory_;
  ExpertGuardianOptions options_;
  Adopt adopt_;
  std::vector<Entry> entries_;
  bool started_ = false;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::moe
