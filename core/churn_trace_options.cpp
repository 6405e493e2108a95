#include "core/churn_trace_options.h"

#include <utility>
#include <vector>

#include "core/json_path.h"

namespace crowdtrain {

const std::vector<std::pair<std::string, TraceFormat>>& trace_format_names() {
  static const std::vector<std::pair<std::string, TraceFormat>> names = {
      {"sessions", TraceFormat::kSessions},
      {"counts_json", TraceFormat::kCountsJson},
      {"counts_csv", TraceFormat::kCountsCsv}};
  return names;
}

const std::vector<std::pair<std::string, TraceMapping>>& trace_mapping_names() {
  static const std::vector<std::pair<std::string, TraceMapping>> names = {
      {"ids", TraceMapping::kIds},
      {"first", TraceMapping::kFirst},
      {"sample", TraceMapping::kSample}};
  return names;
}

namespace {

void read_trace_object(JsonReader& t, TraceSpec& out) {
  if (!t.require("path", "(the trace file)")) return;
  t.read("path", out.path);
  t.read_enum("format", out.format, trace_format_names());
  const bool mapping_given = t.has("mapping");
  t.read_enum("mapping", out.mapping, trace_mapping_names());
  t.read("time_scale", out.time_scale, NumberRange::positive());
  t.read("start_s", out.start_s, NumberRange::non_negative());
  if (!mapping_given && out.format != TraceFormat::kSessions) out.mapping = TraceMapping::kFirst;
  if (t.ok() && out.mapping == TraceMapping::kIds && out.format != TraceFormat::kSessions) {
    t.fail(t.path_of("mapping"),
           "\"ids\" needs format \"sessions\" (a count trace has slots, not peer ids)");
  }
  if (t.ok() && out.path.empty()) t.fail(t.path_of("path"), "must name a file");
}

}  // namespace

void read_trace_spec(JsonReader& churn, TraceSpec& out, bool& present) {
  std::string shorthand;
  churn.read("trace_csv", shorthand);
  if (!shorthand.empty()) {
    out = TraceSpec();
    out.path = shorthand;
    out.key = churn.path_of("trace_csv");
    present = true;
  }
  if (!churn.has("trace")) return;
  if (present) {
    churn.fail(churn.path_of("trace"), "give either trace or its shorthand trace_csv");
    return;
  }
  present = true;
  out.key = json_child_path(churn.path_of("trace"), "path");
  churn.object("trace", [&out](JsonReader& t) { read_trace_object(t, out); });
}

}  // namespace crowdtrain
