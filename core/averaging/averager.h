// Averager: the Moshpit All-Reduce peer (a PeerApp). It owns the peer's one RpcEndpoint, a DhtNode
// on it and a Matchmaker beside it, and averages the vector of an AveragingSource (source.h).
// Rounds are slotted in time: round r starts at first_round + r * round_interval. Each round the
// peer either sits out (failure_prob: it neither sends nor receives, keeping its values), or builds
// its group key from the grid bits (key_manager.h), matchmakes, runs AllReduceRound on a snapshot
// of the source, applies the delta to the source and shifts in its next chunk index. A peer with
// no group keeps its values and key, and says so in the metrics ("averaging_no_group"). A peer that
// knows its bandwidth also records its group's lower bound from the load-balancing optimum
// ("allreduce_bound_ms", beside "allreduce_ms"). All-reduce
// messages go to the current round by group id; those that come before the round starts are
// buffered (at most max_buffered) and replayed when it does.
//
// Ownership: borrows the Runtime (outlives it) and shares the observer (the world-level view of
// the experiment, may be null). Single-threaded, on the runtime's loop.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/averaging/allreduce.h"
#include "core/averaging/key_manager.h"
#include "core/averaging/matchmaking.h"
#include "core/averaging/source.h"
#include "core/dht/node.h"
#include "core/rpc.h"

namespace crowdtrain {

// Sees every peer's values after each round (the experiment's MSE); may stop further rounds.
class AveragingObserver {
 public:
  virtual ~AveragingObserver() = default;
  // This peer (rt.self()) has finished round `round` (averaged, sat out or found no group).
  virtual void on_round_end(Runtime& rt, uint64_t round) = 0;
  virtual bool stop_requested() const = 0;
  // This peer (rt.self()) applied the average of `group`'s all-reduce; `stats` say how complete it
  // was. (The simulated world's board checks complete groups' means: averaging_workload.h.)
  virtual void on_allreduce_applied(Runtime& /*rt*/, const AllReduceGroup& /*group*/,
                                    const AllReduceStats& /*stats*/) {}
};

// How a peer picks its group key each round.
enum class GroupKeyMode {
  kGrid,             // Moshpit: from the chunk indices of its last d-1 rounds (key_manager.h)
  kRandomGroups,     // groups of target size from a random permutation all peers derive per round
  kEveryone,         // one key for every peer: all-reduce of whoever matchmakes in time
  kFixedMembership,  // all-reduce of peers 0..N-1 with no matchmaking; with
                     // allreduce.all_or_nothing a round with anybody missing does nothing
};

struct AveragerOptions {
  GroupKeyMode key_mode = GroupKeyMode::kGrid;
  uint32_t peers = 0;               // kRandomGroups: N, the permutation is of peer ids 0..N-1
  uint64_t random_groups_seed = 0;  // kRandomGroups: the run's seed (the same on every peer)
  GridSpec grid;
  std::string key_prefix = "avg";
  std::string initial_bits;  // this peer's first key bits (initial_bits_for_cell)
  Time start_delay{0};       // the DHT starts after this
  std::vector<PeerId> bootstrap;
  Time first_round = std::chrono::seconds(5);
  Time round_interval = std::chrono::seconds(10);
  uint32_t rounds = 50;
  double failure_prob = 0.0;
  // Advertised in matchmaking for load balancing: this peer's bandwidth in Mb/s (the slower of
  // its two directions; 0 = unknown: it advertises 1, and a group of such peers splits equally)
  // and its mode (client: sends its vector, averages no part).
  double bandwidth_mbps = 0.0;
  AveragingMode mode = AveragingMode::kNode;
  size_t max_buffered = 4096;  // early all-reduce messages kept for a round not begun yet
  MatchmakingOptions matchmaking;
  AllReduceOptions allreduce;
  dht::DhtOptions dht;
};

class Averager final : public PeerApp {
 public:
  Averager(Runtime& rt, AveragerOptions options, std::shared_ptr<AveragingSource> source,
           std::shared_ptr<AveragingObserver> observer);
  ~Averager() override;

  void start() override;
  void on_message(PeerId from, Message msg) override;

  AveragingSource& source() { return *source_; }
  const std::string& bits() const { return bits_; }
  dht::DhtNode& dht() { return *dht_; }
  uint64_t rounds_averaged() const { return rounds_averaged_; }

 private:
  struct RoundState;
  void schedule_round(uint64_t round);
  // After a round without a group: a grid key drawn at random (see there).
  void redraw_key(uint64_t round);
  void begin_round(uint64_t round);
  void on_group(uint64_t round, Result<AllReduceGroup> group);
  void on_allreduce(uint64_t round, const AllReduceGroup& group, Result<AllReduceOutcome> r);
  void end_round(uint64_t round);
  // allreduce_bound_ms of this group (bandwidths in Mb/s).
  void observe_bound(const AllReduceGroup& group, const at::Tensor& local);
  std::string group_key(uint64_t round) const;

  Runtime& rt_;
  AveragerOptions options_;
  std::shared_ptr<AveragingSource> source_;
  std::shared_ptr<AveragingObserver> observer_;
  RpcEndpoint rpc_;
  std::unique_ptr<dht::DhtNode> dht_;
  std::unique_ptr<Matchmaker> matchmaker_;
  std::unique_ptr<RoundState> round_;  // the all-reduce in progress, if any
  std::deque<std::pair<PeerId, Message>> buffered_;
  std::string bits_;
  bool busy_ = false;  // matchmaking or all-reduce of a round in progress
  uint64_t rounds_averaged_ = 0;
  uint32_t lonely_rounds_ = 0;  // rounds running that found nobody else declared (redraw_key)
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain
