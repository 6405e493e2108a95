// Matchmaking for Moshpit All-Reduce through the DHT (after hivemind's averaging/matchmaking.py,
// our own code). A peer looking for a group declares itself under the group key as a subkey with
// an expiration = its planned start, then polls the key. Peers are ranked by (expiration, peer id);
// a peer that sees a better-ranked peer asks it to lead (kMmJoinRequest). A leader accepts while it
// is not following anyone, has not begun and is not full; a follower redirects the asker to its
// own leader. A leader that finds a better leader joins it and hands its followers over
// (kMmHandover). A leader begins when it has `target_group_size` members, or at its planned start
// with at least `min_group_size` (else it re-declares until the deadline); it shuffles the members
// and sends them the group (kMmBegin) with every member's weight, bandwidth and mode, so all of
// them split the vector alike. A peer with no group by `timeout` gets an error, and so does a
// group in which nobody can average (all clients).
//
// Ownership: borrows the Runtime, the peer's RpcEndpoint (it serves kMmJoinRequest on it) and the
// DhtNode; all outlive it. The owner feeds one-way messages (kMmBegin, kMmHandover) through
// on_message(). One search at a time. Single-threaded, on the runtime's loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/averaging/allreduce.h"
#include "core/averaging/matchmaking_wire.h"
#include "core/dht/node.h"
#include "core/rpc.h"
#include "core/runtime.h"

namespace crowdtrain {

class MatchmakingOptions {
 public:
#define CT_MM_OPTION(type, name, init) \
  MatchmakingOptions& name(type v) {   \
    name##_ = v;                       \
    return *this;                      \
  }                                    \
  type name() const { return name##_; }
  CT_MM_OPTION(uint32_t, target_group_size, 32)
  CT_MM_OPTION(uint32_t, min_group_size, 2)
  // The planned start: declared expiration = search start + this.
  CT_MM_OPTION(Time, declare_time, std::chrono::seconds(2))
  // No group by search start + this: the search fails.
  CT_MM_OPTION(Time, timeout, std::chrono::seconds(5))
  CT_MM_OPTION(Time, poll_interval, std::chrono::milliseconds(250))
  // How long a follower waits past the deadline for its leader's kMmBegin.
  CT_MM_OPTION(Time, begin_grace, std::chrono::seconds(1))
  CT_MM_OPTION(Time, rpc_timeout, std::chrono::seconds(1))
  // A peer that cannot be called (behind NAT, WorkloadContext::client): it never declares itself,
  // so nobody asks it to lead, and asks the best-ranked declared peer to lead it instead.
  CT_MM_OPTION(bool, client, false)
#undef CT_MM_OPTION

 private:
  uint32_t target_group_size_ = 32;
  uint32_t min_group_size_ = 2;
  Time declare_time_ = std::chrono::seconds(2);
  Time timeout_ = std::chrono::seconds(5);
  Time poll_interval_ = std::chrono::milliseconds(250);
  Time begin_grace_ = std::chrono::seconds(1);
  Time rpc_timeout_ = std::chrono::seconds(1);
  bool client_ = false;
};

// True for the one-way matchmaking messages the owner must pass to on_message().
bool is_matchmaking_message(const Message& msg);

class Matchmaker {
 public:
  using DoneFn = std::function<void(Result<AllReduceGroup>)>;

  Matchmaker(Runtime& rt, RpcEndpoint& rpc, dht::DhtNode& dht, MatchmakingOptions options);
  ~Matchmaker();
  Matchmaker(const Matchmaker&) = delete;
  Matchmaker& operator=(const Matchmaker&) = delete;

  // Looks for a group under `key` for round `round`. `done` runs exactly once (never inside this
  // call): with the group (this peer a member), or an error saying why none was found.
  void look_for_group(std::string key, uint64_t round, DoneFn done);
  // What this peer advertises in the groups it forms or joins from now on (sent with join requests
  // and handed to every member with the group): its weight in the average (default 1), its
  // bandwidth for load balancing (any unit all peers share, default 1; 0 = averages nothing) and
  // its mode (load_balancing.h). A weight or bandwidth that is not finite or < 0 reads as 1.
  void set_weight(double w) { self_.weight = sane_nonneg(w); }
  void set_bandwidth(double b) { self_.bandwidth = sane_nonneg(b); }
  void set_mode(AveragingMode m) { self_.mode = m; }
  // Ends the current search without calling `done`.
  void cancel();
  // A one-way matchmaking message; false when it is not one.
  bool on_message(PeerId from, const Message& msg);

  bool searching() const { return static_cast<bool>(done_); }
  // The most other peers this peer saw declared under its key at once in its last search: a search
  // that failed with a full group's worth of others declared was left out of a full cell.
  uint32_t others_seen() const { return others_seen_; }
  const MatchmakingOptions& options() const { return options_; }

 private:
  enum class State { kIdle, kLooking, kJoining, kFollowing };
  struct Rank {
    Time expiration{0};
    PeerId peer = kNoPeer;
    bool operator<(const Rank& o) const {
      return expiration != o.expiration ? expiration < o.expiration : peer < o.peer;
    }
  };

  void declare();
  void poll();
  void on_candidates(std::vector<Rank> ranks);
  void try_join(PeerId leader);
  void serve_join(PeerId from, Message req, RpcEndpoint::Responder respond);
  void at_planned_start();
  void at_deadline();
  void begin_group();
  void handover_followers(PeerId to);
  void finish(Result<AllReduceGroup> result);
  // Runs `fn` after `delay` if this search (epoch) is still on.
  void later(Time delay, std::function<void()> fn);
  uint32_t members() const { return 1 + static_cast<uint32_t>(followers_.size()); }

  Runtime& rt_;
  RpcEndpoint& rpc_;
  dht::DhtNode& dht_;
  MatchmakingOptions options_;

  State state_ = State::kIdle;
  std::string key_;
  uint64_t round_ = 0;
  uint64_t epoch_ = 0;  // bumped per search: stale callbacks see a different epoch
  Time started_{0};
  uint32_t others_seen_ = 0;
  Time expiration_{0};  // this peer's declared planned start
  Time deadline_{0};
  PeerId leader_ = kNoPeer;
  std::vector<PeerId> followers_;                // in the order they joined
  std::set<PeerId> tried_;                       // leaders that refused us this search
  std::map<PeerId, GroupMember> follower_info_;  // as they asked to join (this search)
  GroupMember self_;                             // what this peer advertises (peer unused)
  DoneFn done_;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain
