// Time in the engine: a signed count of nanoseconds. In the simulated world it is virtual time from
// ns-3's scheduler; in the live world it is wall-clock time since the run's epoch (shared by every
// peer of the run; see net/zmq_runtime.h), advancing with the steady clock. The engine never reads
// a wall clock itself: it asks its Runtime.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>

namespace crowdtrain {

using Time = std::chrono::nanoseconds;

inline Time from_seconds(double s) { return Time(static_cast<int64_t>(std::llround(s * 1e9))); }
inline Time from_millis(double ms) { return Time(static_cast<int64_t>(std::llround(ms * 1e6))); }
inline double to_seconds(Time t) { return static_cast<double>(t.count()) / 1e9; }
inline double to_millis(Time t) { return static_cast<double>(t.count()) / 1e6; }

}  // namespace crowdtrain
