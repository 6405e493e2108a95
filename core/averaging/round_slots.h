// Time-slotted averaging rounds, shared by the protocols (averager.h, gossip.h): round r starts at
// first + r * interval on the runtime's clock, so peers agree on rounds without talking. Pure
// functions.
#pragma once

#include <cstdint>

#include "core/time.h"

namespace crowdtrain {

// When round `round` starts.
inline Time round_start(uint64_t round, Time first, Time interval) {
  return first + interval * static_cast<int64_t>(round);
}

// The first round that has not started by `ready`, or that started less than `grace` ago (a peer
// that joins or restarts late takes the next slot, or one whose peers are still gathering).
inline uint64_t first_open_round(Time ready, Time first, Time interval, Time grace = Time(0)) {
  if (ready <= first) return 0;
  const uint64_t next = static_cast<uint64_t>((ready - first).count() / interval.count()) + 1;
  const Time began = round_start(next - 1, first, interval);
  return ready - began < grace ? next - 1 : next;
}

}  // namespace crowdtrain
