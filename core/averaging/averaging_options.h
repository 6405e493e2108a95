// The options of group averaging that every averaging workload shares (workload.averaging and
// workload.training read the same keys with the same checks), their reader, and the options of the
// averaging experiment (workload.kind "averaging"). Choices become enums here and nowhere else;
// docs/scenarios.md lists every key. core/averaging/averaging_protocol.h turns these options into
// a peer's protocol app.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/json_path.h"
#include "core/scenario.h"

namespace crowdtrain {

// How peers form averaging groups.
enum class AveragingMethod : uint8_t {
  kMoshpit = 0,        // "moshpit": groups by grid key, a new axis each round (the paper)
  kAllReduce = 1,      // "allreduce": peers 0..N-1 in one fixed group, no matchmaking; a round in
                       // which anybody is missing forms no group (the paper's All-Reduce baseline)
  kAllReduceOpen = 2,  // "allreduce_open": one matchmaking key for everybody: a group of whoever
                       // declares in time, at least min_group_size of them (0 = all N)
  kRandomGroups = 3,   // "random_groups": groups of the target size, a new random permutation
                       // each round
  kGossip = 4,         // "gossip": ring neighbours, 1/3 weights
  kPushSum = 5,        // "pushsum": SGP on a time-varying exponential graph
};
const std::vector<std::pair<std::string, AveragingMethod>>& averaging_method_names();
std::string averaging_method_name(AveragingMethod m);
// Gossip and push-sum exchange with neighbours (a GossipAverager); the others form groups.
inline bool is_gossip_method(AveragingMethod m) {
  return m == AveragingMethod::kGossip || m == AveragingMethod::kPushSum;
}
// Whether a peer that cannot be called (a client) can take part: the methods whose peers meet
// through the DHT. Gossip and push-sum send to neighbours, the fixed-membership all-reduce has
// every peer call every other, unasked.
inline bool method_takes_clients(AveragingMethod m) {
  return !is_gossip_method(m) && m != AveragingMethod::kAllReduce;
}

// How averaging peers advertise themselves in matchmaking, so that butterfly all-reduce sizes
// each member's part by its bandwidth (core/averaging/load_balancing.h).
enum class LoadBalance : uint8_t { kBandwidth = 0, kEqual = 1 };  // "equal": each advertises 1
struct LoadBalanceOptions {
  LoadBalance load_balance = LoadBalance::kBandwidth;
  double bandwidth_mbps = 0;     // advertised; 0 = the peer's link (sim), unknown (live: equal)
  double client_below_mbps = 0;  // a peer advertising less joins as a client (averages no part)
};

// The keys of workload.averaging and workload.training that describe how peers average. Each
// workload sets its own defaults (GroupAveragingOptions::averaging_defaults / training_defaults).
struct GroupAveragingOptions {
  AveragingMethod method = AveragingMethod::kMoshpit;
  uint32_t grid_size = 32;           // M, a power of two: peers per group (random_groups: size)
  uint32_t grid_dims = 2;            // d: axes of the virtual grid
  uint32_t target_group_size = 0;    // 0 = grid_size
  uint32_t min_group_size = 2;       // allreduce_open: 0 = all peers
  double first_round_s = 5;          // the first round starts here (after the DHT bootstrap)
  double round_interval_s = 10;      // round r starts at first_round_s + r * round_interval_s
  double declare_s = 2;              // planned start = round start + this
  double matchmaking_timeout_s = 4;  // no group by round start + this: keep the local values
  double allreduce_timeout_s = 4;
  double gossip_window_s = 2;     // gossip/pushsum: mix what arrived this long after round start
  uint32_t bootstrap_peers = 3;   // DHT peers a newcomer pings first
  double bootstrap_spread_s = 2;  // peers present at t = 0 start spread over this long
  LoadBalanceOptions balance;

  static GroupAveragingOptions averaging_defaults() { return {}; }
  static GroupAveragingOptions training_defaults();
};

// Reads the keys of GroupAveragingOptions from `r` (absent keys keep `out`'s defaults) and checks
// them against each other: the grid a power of two, the group sizes, the declaration before the
// matchmaking time-out, the gossip window and the time-outs inside a round.
void read_group_averaging(JsonReader& r, GroupAveragingOptions& out);

// workload.averaging: the averaging experiment (core/averaging/averaging_workload.h).
struct AveragingWorkloadOptions final : WorkloadOptions {
  GroupAveragingOptions group = GroupAveragingOptions::averaging_defaults();
  std::string key_prefix = "avg";
  uint32_t rounds = 50;       // at most this many rounds
  double stop_below_mse = 0;  // no new rounds once the MSE is below this (0: never)
  double failure_prob = 0;    // per peer and round: the peer sits the round out
  uint32_t vector_size = 1;   // values per peer, each drawn from N(0, 1)
  // Payload scaling (moshpit, allreduce, random_groups): the network carries this many float32
  // parameters per peer (filler) while the real vector stays vector_size doubles; 0 = off.
  double wire_params = 0;
};

// The reader of workload.averaging (WorkloadKind::read).
std::shared_ptr<const WorkloadOptions> read_averaging_options(JsonReader& r);
// The scenario's workload.averaging, read or default.
const AveragingWorkloadOptions& averaging_options_of(const Scenario& s);

}  // namespace crowdtrain
