// libFuzzer target: the availability-trace readers (core/churn_trace.h) and the mapping onto a
// scenario's peers. The first byte picks the format (sessions, counts JSON, counts CSV) and the
// mapping, the second the number of peers; the rest is the file. A trace is either refused with an
// error naming the file, or every host's sessions are in time order, apart and of positive length,
// and the mapped sessions start at 0 or later in the same order.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "core/churn_trace.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using crowdtrain::TraceInterval;

void check_sessions(const std::vector<TraceInterval>& sessions, bool mapped) {
  for (size_t i = 0; i < sessions.size(); ++i) {
    const TraceInterval& s = sessions[i];
    FUZZ_CHECK(s.start_s >= 0.0);
    FUZZ_CHECK(s.end_s < 0.0 || s.end_s > s.start_s);
    if (i > 0) {
      const TraceInterval& prev = sessions[i - 1];
      FUZZ_CHECK(prev.end_s >= 0.0);
      FUZZ_CHECK(mapped ? prev.end_s <= s.start_s : prev.end_s < s.start_s);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crowdtrain;
  if (size < 2) return 0;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 2, size - 2));
  const int format = data[0] % 3;
  Result<AvailabilityTrace> trace = format == 0   ? read_sessions_trace(in, "f")
                                    : format == 1 ? read_counts_json_trace(in, "f")
                                                  : read_counts_csv_trace(in, "f");
  if (!trace.ok()) {
    FUZZ_CHECK(trace.error().rfind("f", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(trace->hosts.size() == trace->up.size());
  for (const auto& sessions : trace->up) check_sessions(sessions, /*mapped=*/false);
  TraceSpec spec;
  spec.path = "f";
  spec.mapping = (data[0] / 3) % 2 == 0 ? TraceMapping::kFirst : TraceMapping::kSample;
  spec.time_scale = 1 + (data[0] / 6) % 4;
  spec.start_s = static_cast<double>((data[0] / 24) % 4) * 10;
  const uint32_t peers = 1 + data[1] % 64;
  auto mapped = map_trace(*trace, spec, peers, data[1]);
  if (!mapped.ok()) {
    FUZZ_CHECK(spec.mapping == TraceMapping::kSample && trace->hosts.size() < peers);
    return 0;
  }
  FUZZ_CHECK(mapped->peer_hosts.size() == peers);
  for (const auto& [peer, sessions] : mapped->sessions) {
    FUZZ_CHECK(peer < peers && !sessions.empty());
    check_sessions(sessions, /*mapped=*/true);
  }
  return 0;
}
