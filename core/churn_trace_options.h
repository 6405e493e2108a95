// Which availability trace a run replays and how its hosts and clock map onto the scenario
// (scenario key churn.trace; churn.trace_csv is the shorthand for {"path": ..., "format":
// "sessions", "mapping": "ids"}). The readers are core/churn_trace.h; the formats and keys are
// documented in docs/scenarios.md and docs/traces.md.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace crowdtrain {

class JsonReader;

enum class TraceFormat : uint8_t {
  kSessions = 0,  // CSV rows "host,join_s,leave_s": online sessions per host
  kCountsJson =
      1,           // {"metadata": {"gap_seconds": g}, "data": [k0, k1, ...]}: instances up per tick
  kCountsCsv = 2,  // CSV rows "time_s,count": instances up from that time on
};

enum class TraceMapping : uint8_t {
  kIds = 0,     // host labels are scenario peer ids (sessions only)
  kFirst = 1,   // the trace's hosts in order of first appearance onto peers 0, 1, ...
  kSample = 2,  // a seeded random sample of peers.count hosts onto peers 0, 1, ...
};

struct TraceSpec {
  std::string path;  // resolved against the scenario's folder once read
  TraceFormat format = TraceFormat::kSessions;
  TraceMapping mapping = TraceMapping::kIds;  // counts formats: kFirst unless given
  double time_scale = 1.0;                    // trace seconds per simulated second (> 0)
  double start_s = 0.0;                       // trace time at simulated t = 0
  std::string key;                            // the scenario key that named the file (errors)
};

// Reads churn.trace (an object) or the shorthand churn.trace_csv (a path) into `out`; errors name
// the key. `present` is set when either was given.
void read_trace_spec(JsonReader& churn, TraceSpec& out, bool& present);

// The keys' names (enum_name() in core/scenario.h turns a value back into its name).
const std::vector<std::pair<std::string, TraceFormat>>& trace_format_names();
const std::vector<std::pair<std::string, TraceMapping>>& trace_mapping_names();

}  // namespace crowdtrain
