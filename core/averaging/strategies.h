// The math of the averaging strategies Moshpit is compared with (the paper's averaging figure),
// written as pure functions that say, for one round, whom a peer sends to and with what weight;
// their network protocols can reuse the all-reduce engine's messages later.
//  - Gossip on a ring: each peer mixes itself and its two neighbours with weights 1/3.
//  - PushSum (SGP) on a time-varying exponential graph: in round t peer i sends to i + 2^k mod N
//  for
//    two hop exponents k that cycle through 0..ceil(log2 N)-1, and keeps an equal share itself; the
//    estimate is value / weight. No state beyond the caller's vectors; no threads.
#pragma once

#include <cstdint>
#include <vector>

namespace crowdtrain {

struct MixTarget {
  uint32_t peer = 0;    // index in [0, N)
  double weight = 0.0;  // the share of the sender's (value, weight) this target receives
  bool operator==(const MixTarget& o) const { return peer == o.peer && weight == o.weight; }
};

// Ring gossip: who peer i (of n) averages with, itself included; weights sum to 1. n = 1: itself;
// n = 2: itself and the other, 1/2 each; n >= 3: i-1, i, i+1 with 1/3 each.
std::vector<MixTarget> ring_gossip_neighbours(uint32_t i, uint32_t n);
// One synchronous ring gossip round over every peer's value; `alive[i]` false: peer i neither
// sends nor receives this round (it keeps its value, and its neighbours renormalise without it).
std::vector<double> ring_gossip_round(const std::vector<double>& values,
                                      const std::vector<bool>& alive);

// The hop exponents of round t: {(2t) mod K, (2t+1) mod K}, K = ceil(log2 n) (at least 1).
std::vector<uint32_t> pushsum_exponents(uint64_t round, uint32_t n);
// PushSum: where peer i's shares go in round t, itself first; equal shares summing to 1. Targets
// that coincide (small n) are merged.
std::vector<MixTarget> pushsum_targets(uint32_t i, uint32_t n, uint64_t round);

struct PushSumState {
  double value = 0.0;   // the pushed sum
  double weight = 1.0;  // the pushed weight; the estimate is value / weight
  double estimate() const { return value / weight; }
};
// One PushSum round; a dead peer keeps its state and receives nothing (mass sent to it is lost,
// as on a real network).
std::vector<PushSumState> pushsum_round(const std::vector<PushSumState>& states, uint64_t round,
                                        const std::vector<bool>& alive);

}  // namespace crowdtrain
