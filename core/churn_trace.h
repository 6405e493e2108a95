// Availability traces: who was online when, read from the formats people already have, checked,
// and mapped onto a scenario's peers and clock (options: core/churn_trace_options.h).
//
// - sessions: CSV rows "host,join_s,leave_s" (a header row "peer,..." or "host,..." first is
//   skipped; '#' lines and blank lines are skipped; leave_s empty or -1 = online to the end). A
//   host's rows come in time order; a row that starts before the previous one, overlaps it or
//   lasts zero or negative time is an error naming its line.
// - counts (JSON or CSV): how many instances of a pool were up, over time: SkyPilot's spot
//   traces ({"metadata": {"gap_seconds": g}, "data": [k0, k1, ...]}, k_i up during
//   [i g, (i + 1) g)) or rows "time_s,count" (count up from time_s until the next row). Slot j is
//   online while more than j instances are up: when the pool grows the lowest free slots join,
//   when it shrinks the highest leave. The last value holds on after the trace ends.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <vector>

#include "core/churn_trace_options.h"
#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain {

struct TraceInterval {
  double start_s = 0.0;
  double end_s = -1.0;  // < 0: online to the end
};

struct AvailabilityTrace {
  std::vector<std::string> hosts;              // in order of first appearance
  std::vector<size_t> first_line;              // the line each host first appears on (0: none)
  std::vector<std::vector<TraceInterval>> up;  // per host, in time order, not overlapping
};

// `name` is the file name errors start with ("trace.csv:12: ...").
Result<AvailabilityTrace> read_sessions_trace(std::istream& in, const std::string& name);
Result<AvailabilityTrace> read_counts_json_trace(std::istream& in, const std::string& name);
Result<AvailabilityTrace> read_counts_csv_trace(std::istream& in, const std::string& name);
// Opens spec.path and reads it in spec.format.
Result<AvailabilityTrace> read_trace(const TraceSpec& spec);

// A trace on the scenario's peers and clock: sessions in simulated seconds (a session starting
// at 0 means online at the start), and which host each peer replays ("" for none).
struct MappedTrace {
  std::map<PeerId, std::vector<TraceInterval>> sessions;
  std::vector<std::string> peer_hosts;
};

// Simulated time t = (trace time - spec.start_s) / spec.time_scale; what ends before start_s is
// dropped, what starts before it is clipped to 0. `seed` draws the sample of the kSample mapping.
Result<MappedTrace> map_trace(const AvailabilityTrace& trace, const TraceSpec& spec,
                              uint32_t peer_count, uint64_t seed);

}  // namespace crowdtrain
