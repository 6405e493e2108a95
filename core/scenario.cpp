// The scenario reader: overrides, the top level, checks that span sections, CSV paths, and loading
// a file with line:column errors for malformed JSON. The sections are in scenario_parse_*.cpp.

#include "core/scenario.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "core/churn_trace.h"
#include "core/json_path.h"
#include "core/scenario_parse.h"
#include "core/workload.h"

namespace crowdtrain {

uint32_t PeersSpec::client_count_from_fraction() const {
  return static_cast<uint32_t>(std::floor(client_fraction * count + 0.5));
}

bool PeersSpec::is_client(uint32_t peer) const {
  if (client_fraction > 0 && peer >= count - client_count_from_fraction()) return true;
  return std::binary_search(client_ids.begin(), client_ids.end(), peer);
}

const EnumNames<Fidelity>& fidelity_names() {
  static const EnumNames<Fidelity> names = {{"message", Fidelity::kMessage},
                                            {"packet", Fidelity::kPacket}};
  return names;
}

const EnumNames<ChurnModel>& churn_model_names() {
  static const EnumNames<ChurnModel> names = {{"none", ChurnModel::kNone},
                                              {"sessions", ChurnModel::kSessions},
                                              {"trace", ChurnModel::kTrace}};
  return names;
}

const EnumNames<FaultKind>& fault_kind_names() {
  static const EnumNames<FaultKind> names = {{"kill", FaultKind::kKill},
                                             {"partition", FaultKind::kPartition},
                                             {"clog", FaultKind::kClog},
                                             {"loss", FaultKind::kLoss}};
  return names;
}

const EnumNames<ComputeMode>& compute_mode_names() {
  static const EnumNames<ComputeMode> names = {{"model", ComputeMode::kModel},
                                               {"measured", ComputeMode::kMeasured}};
  return names;
}

const EnumNames<EventLevel>& event_level_names() {
  static const EnumNames<EventLevel> names = {{"all", EventLevel::kAll},
                                              {"lifecycle", EventLevel::kLifecycle},
                                              {"auto", EventLevel::kAuto}};
  return names;
}

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// One step of an override path: a key, or an array index written "[n]".
struct PathStep {
  std::string key;
  bool is_index = false;
  size_t index = 0;
};

Result<std::vector<PathStep>> split_override_path(const std::string& path, const std::string& all) {
  const std::string bad = "override \"" + all + "\": ";
  std::vector<PathStep> steps;
  size_t i = 0;
  while (i <= path.size()) {
    size_t end = path.find_first_of(".[", i);
    if (end == std::string::npos) end = path.size();
    if (end == i) return Status::error(bad + "empty key in \"" + path + "\"");
    steps.push_back({path.substr(i, end - i)});
    i = end;
    while (i < path.size() && path[i] == '[') {
      const size_t close = path.find(']', i);
      const std::string digits = path.substr(i + 1, close == std::string::npos ? 0 : close - i - 1);
      if (close == std::string::npos || digits.empty() ||
          digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) {
        return Status::error(bad + "bad array index in \"" + path + "\"");
      }
      steps.push_back({"", true, static_cast<size_t>(std::stoul(digits))});
      i = close + 1;
    }
    if (i == path.size()) break;
    if (path[i] != '.') return Status::error(bad + "expected '.' after ']' in \"" + path + "\"");
    ++i;
  }
  return steps;
}

// The file `value` names: absolute as is, else under `base_dir` first, then the current directory.
Result<std::string> resolve_data_file(const std::string& value, const std::string& base_dir,
                                      const std::string& key_path) {
  std::error_code ec;
  std::vector<fs::path> candidates;
  if (fs::path(value).is_absolute() || base_dir.empty()) {
    candidates.emplace_back(value);
  } else {
    candidates.push_back((fs::path(base_dir) / value).lexically_normal());
    candidates.emplace_back(value);
  }
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c, ec)) return c.string();
  }
  std::string where =
      candidates.size() > 1 ? " (looked in \"" + base_dir + "\" and in the current directory)" : "";
  return json_error(key_path, "file not found: \"" + value + "\"" + where);
}

// The region names in a region RTT matrix's header row ",name1,name2,...". Full checks of the
// matrix are the topology's (sim/topology.h); this only lets the scenario check the names it uses.
Result<std::vector<std::string>> region_names(const std::string& file,
                                              const std::string& key_path) {
  std::ifstream in(file);
  if (!in) return json_error(key_path, "cannot read \"" + file + "\"");
  std::string header;  // the first line that is not blank or a '#' comment
  while (std::getline(in, header) && (header.empty() || header[0] == '#' || header == "\r")) {
  }
  std::vector<std::string> names;
  std::stringstream cells(header);
  std::string cell;
  for (bool first = true; std::getline(cells, cell, ','); first = false) {
    const size_t b = cell.find_first_not_of(" \t\r"), e = cell.find_last_not_of(" \t\r");
    cell = b == std::string::npos ? "" : cell.substr(b, e - b + 1);
    if (!first) names.push_back(cell);
  }
  if (names.empty()) {
    return json_error(key_path, "\"" + file + "\": the header row names no regions");
  }
  return names;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Checks that span sections; resolves the CSV paths.
Status check_scenario(Scenario& s, const std::string& base_dir) {
  auto& net = s.network;
  if (!net.regions.rtt_csv.empty()) {
    const std::string key = "network.regions.rtt_csv";
    auto file = resolve_data_file(net.regions.rtt_csv, base_dir, key);
    if (!file.ok()) return file.status();
    net.regions.rtt_csv = file.value();
    auto names = region_names(file.value(), key);
    if (!names.ok()) return names.status();
    const std::set<std::string> known(names->begin(), names->end());
    for (const auto& w : net.regions.weights) {
      if (!known.count(w.first)) {
        return json_error("network.regions.weights." + w.first,
                          "unknown region (regions in the matrix: " + join_names(*names) + ")");
      }
    }
    for (size_t i = 0; i < s.faults.size(); ++i) {
      for (size_t j = 0; j < s.faults[i].regions.size(); ++j) {
        if (!known.count(s.faults[i].regions[j])) {
          return json_error(json_index_path(json_index_path("faults", i) + ".regions", j),
                            "unknown region \"" + s.faults[i].regions[j] +
                                "\" (regions in the matrix: " + join_names(*names) + ")");
        }
      }
    }
  } else {
    if (!net.regions.weights.empty()) {
      return json_error("network.regions.weights", "needs network.regions.rtt_csv (one region)");
    }
    for (size_t i = 0; i < s.faults.size(); ++i) {
      if (s.faults[i].kind == FaultKind::kPartition) {
        return json_error(json_index_path("faults", i),
                          "a partition needs regions: set network.regions.rtt_csv");
      }
    }
  }
  for (size_t i = 0; i < s.faults.size(); ++i) {
    const FaultKind k = s.faults[i].kind;
    if ((k == FaultKind::kClog || k == FaultKind::kLoss) && net.fidelity != Fidelity::kMessage) {
      return json_error(json_index_path("faults", i) + ".kind",
                        "a " + enum_name(fault_kind_names(), k) +
                            " fault needs network.fidelity \"message\" (the packet-level "
                            "world shapes links in ns-3, which has no such fault yet)");
    }
    for (size_t j = 0; j < s.faults[i].peers.size(); ++j) {
      if (s.faults[i].peers[j] >= s.peers.count) {
        return json_error(json_index_path(json_index_path("faults", i) + ".peers", j),
                          "must be < peers.count (" + std::to_string(s.peers.count) + "), got " +
                              std::to_string(s.faults[i].peers[j]));
      }
    }
  }
  if (!s.peers.client_ids.empty() && s.peers.client_ids.back() >= s.peers.count) {
    return json_error("peers.clients", "peer ids must be < peers.count (" +
                                           std::to_string(s.peers.count) + "), got " +
                                           std::to_string(s.peers.client_ids.back()));
  }
  if (s.churn.model == ChurnModel::kTrace) {
    auto file = resolve_data_file(s.churn.trace.path, base_dir, s.churn.trace.key);
    if (!file.ok()) return file.status();
    s.churn.trace.path = file.value();
    // The trace is read now too, so that a malformed one is a scenario error naming the key.
    auto trace = read_trace(s.churn.trace);
    if (!trace.ok()) return json_error(s.churn.trace.key, trace.error());
    auto mapped = map_trace(trace.value(), s.churn.trace, s.peers.count, s.seed);
    if (!mapped.ok()) return json_error(s.churn.trace.key, mapped.error());
  }
  return check_workload(s);
}

// "line:column" of the 1-based byte offset nlohmann reports.
std::string line_column(const std::string& text, size_t byte) {
  const size_t end = std::min(byte > 0 ? byte - 1 : 0, text.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return std::to_string(line) + ":" + std::to_string(end - line_start + 1);
}

}  // namespace

Status apply_override(json& doc, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos) {
    return Status::error("override \"" + assignment + "\": expected key.path=value");
  }
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  auto steps = split_override_path(path, assignment);
  if (!steps.ok()) return steps.status();

  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;

  if (doc.is_null()) doc = json::object();
  json* cur = &doc;
  std::string walked;
  for (const PathStep& step : *steps) {
    if (step.is_index) {
      if (!cur->is_array()) {
        return json_error(path, "cannot index " + (walked.empty() ? "the scenario" : walked) +
                                    ": it is " + json_type_name(*cur) + ", not an array");
      }
      if (step.index >= cur->size()) {
        return json_error(path, walked + " has " + std::to_string(cur->size()) +
                                    " items, no index " + std::to_string(step.index));
      }
      cur = &(*cur)[step.index];
      walked = json_index_path(walked, step.index);
    } else {
      if (cur->is_null()) *cur = json::object();
      if (!cur->is_object()) {
        return json_error(path, "cannot set a key inside " +
                                    (walked.empty() ? "the scenario" : walked) + ": it is " +
                                    json_type_name(*cur) + ", not an object");
      }
      cur = &(*cur)[step.key];
      walked = json_child_path(walked, step.key);
    }
  }
  *cur = std::move(value);
  return Status();
}

Result<Scenario> parse_scenario(const json& doc) { return parse_scenario(doc, ""); }

Result<std::vector<std::string>> scenario_region_names(const Scenario& s) {
  if (s.network.regions.rtt_csv.empty()) return std::vector<std::string>{};
  return region_names(s.network.regions.rtt_csv, "network.regions.rtt_csv");
}

Result<Scenario> parse_scenario(const json& doc, const std::string& base_dir) {
  using namespace scenario_detail;
  Scenario s;
  JsonReader r(doc, "");
  r.read("name", s.name);
  if (r.ok() && (s.name.empty() || s.name == "." || s.name == ".." ||
                 s.name.find_first_of("/\\") != std::string::npos)) {
    r.fail("name", "must be a non-empty name without '/' (it names the output folder), got \"" +
                       s.name + "\"");
  }
  std::string description;  // free text for people; not used by the run
  r.read("description", description);
  r.read("seed", s.seed);
  r.read("duration_s", s.duration_s, NumberRange::positive());
  std::vector<bool> sets_upload, sets_download;
  r.object("peers", [&](JsonReader& p) { read_peers(p, s.peers, sets_upload, sets_download); });
  r.object("network", [&](JsonReader& n) { read_network(n, s.network); });
  r.object("churn", [&](JsonReader& c) { read_churn(c, s.churn); });
  read_faults(r, s.faults);
  r.object("liveness", [&](JsonReader& l) {
    l.read("from_s", s.liveness.from_s, NumberRange::non_negative());
  });
  r.object("compute", [&](JsonReader& c) { read_compute(c, s.compute); });
  r.object("workload", [&](JsonReader& w) { read_workload(w, s.workload); });
  r.object("output", [&](JsonReader& o) { read_output(o, s.output); });
  Status status = r.finish();
  if (!status.ok()) return status;

  // A class that sets only one of its bandwidths keeps network's for the other.
  for (size_t i = 0; i < s.peers.classes.size() && i < sets_upload.size(); ++i) {
    if (!s.peers.classes[i].has_bandwidth) continue;
    if (!sets_upload[i]) s.peers.classes[i].upload_mbps = s.network.upload_mbps;
    if (!sets_download[i]) s.peers.classes[i].download_mbps = s.network.download_mbps;
  }
  status = check_scenario(s, base_dir);
  if (!status.ok()) return status;
  s.resolved = doc;
  return s;
}

Status check_fits_in_message(const Scenario& s, const std::string& path, uint64_t bytes) {
  const uint64_t limit = s.network.max_message_bytes;
  if (bytes <= limit) return Status();
  return json_error(path, "must be <= network.max_message_bytes (" + std::to_string(limit) +
                              "), got " + std::to_string(bytes));
}

Result<Scenario> load_scenario(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    const size_t column = what.find("column ");
    const size_t colon = what.find(": ", column == std::string::npos ? 0 : column);
    if (colon != std::string::npos) what = what.substr(colon + 2);
    return Status::error(path + ":" + line_column(text, e.byte) + ": malformed JSON: " + what);
  }
  for (const auto& o : overrides) {
    Status s = apply_override(doc, o);
    if (!s.ok()) return s;
  }
  auto scenario = parse_scenario(doc, fs::path(path).parent_path().string());
  if (!scenario.ok()) return scenario;
  if (!doc.is_object() || !doc.contains("name")) scenario->name = fs::path(path).stem().string();
  scenario->source_path = path;
  return scenario;
}

}  // namespace crowdtrain
