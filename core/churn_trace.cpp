#include "core/churn_trace.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json_path.h"
#include "core/random.h"

namespace crowdtrain {
namespace {

// A CSV line's cells (no quoting: trace cells are names and numbers).
std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::istringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

bool parse_number(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return *end == '\0' && std::isfinite(out);
}

// Calls `row(cells, where, line)` for every data line: blank and '#' lines skipped, and the first
// other line too when its first cell is one of `header_words` (a header row).
Status for_each_row(
    std::istream& in, const std::string& name, const std::vector<std::string>& header_words,
    const std::function<Status(const std::vector<std::string>&, const std::string&, size_t)>& row) {
  std::string line;
  size_t line_no = 0;
  bool first = true;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> cells = split_cells(line);
    const bool header =
        first && !cells.empty() &&
        std::find(header_words.begin(), header_words.end(), cells[0]) != header_words.end();
    first = false;
    if (header) continue;
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    if (Status s = row(cells, where, line_no); !s.ok()) return s;
  }
  return Status::ok_status();
}

size_t host_index(AvailabilityTrace& t, std::map<std::string, size_t>& index,
                  const std::string& host, size_t line_no) {
  auto [it, added] = index.emplace(host, t.hosts.size());
  if (added) {
    t.hosts.push_back(host);
    t.first_line.push_back(line_no);
    t.up.emplace_back();
  }
  return it->second;
}

// Appends [start, end) to a host's intervals, checking it comes after the last one.
Status append_session(std::vector<TraceInterval>& up, TraceInterval s, const std::string& where) {
  if (s.end_s >= 0.0 && s.end_s <= s.start_s) {
    return Status::error(where + "the session ends (" + json_number_text(s.end_s) +
                         ") before it starts (" + json_number_text(s.start_s) + ")");
  }
  if (!up.empty()) {
    const TraceInterval& last = up.back();
    if (s.start_s < last.start_s) {
      return Status::error(where + "times are not sorted: this session of the host starts (" +
                           json_number_text(s.start_s) + ") before its previous one (" +
                           json_number_text(last.start_s) + ")");
    }
    if (last.end_s < 0.0 || s.start_s < last.end_s) {
      return Status::error(
          where + "this session overlaps the host's previous one (" +
          json_number_text(last.start_s) + " to " +
          (last.end_s < 0 ? std::string("the end") : json_number_text(last.end_s)) + ")");
    }
  }
  if (!up.empty() && up.back().end_s == s.start_s) {  // no gap: one session
    up.back().end_s = s.end_s;
  } else {
    up.push_back(s);
  }
  return Status::ok_status();
}

// Slot intervals from a count series: times[i] rising, counts[i] up from times[i] on.
AvailabilityTrace from_counts(const std::vector<double>& times,
                              const std::vector<uint64_t>& counts) {
  AvailabilityTrace t;
  const uint64_t slots = counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
  for (uint64_t j = 0; j < slots; ++j) {
    t.hosts.push_back("slot-" + std::to_string(j));
    t.first_line.push_back(0);
    t.up.emplace_back();
  }
  for (size_t i = 0; i < counts.size(); ++i) {
    const uint64_t before = i == 0 ? 0 : counts[i - 1];
    for (uint64_t j = before; j < counts[i]; ++j) t.up[j].push_back({times[i], -1.0});
    for (uint64_t j = counts[i]; j < before; ++j) t.up[j].back().end_s = times[i];
  }
  return t;
}

}  // namespace

Result<AvailabilityTrace> read_sessions_trace(std::istream& in, const std::string& name) {
  AvailabilityTrace t;
  std::map<std::string, size_t> index;
  Status s = for_each_row(
      in, name, {"peer", "host"},
      [&](const std::vector<std::string>& cells, const std::string& where, size_t line_no) {
        if (cells.size() < 2 || cells.size() > 3 || cells[0].empty()) {
          return Status::error(where + "expected host,join_s,leave_s");
        }
        TraceInterval session;
        if (!parse_number(cells[1], session.start_s) || session.start_s < 0.0) {
          return Status::error(where + "join_s '" + cells[1] + "' is not a non-negative number");
        }
        if (cells.size() == 3 && !cells[2].empty() &&
            (!parse_number(cells[2], session.end_s) ||
             (session.end_s < 0.0 && session.end_s != -1.0))) {
          return Status::error(where + "leave_s '" + cells[2] +
                               "' is not a time (or -1 / empty: online to the end)");
        }
        return append_session(t.up[host_index(t, index, cells[0], line_no)], session, where);
      });
  if (!s.ok()) return s;
  return t;
}

Result<AvailabilityTrace> read_counts_csv_trace(std::istream& in, const std::string& name) {
  std::vector<double> times;
  std::vector<uint64_t> counts;
  Status s = for_each_row(
      in, name, {"time_s", "time"},
      [&](const std::vector<std::string>& cells, const std::string& where, size_t) {
        double time = 0, count = 0;
        if (cells.size() != 2) return Status::error(where + "expected time_s,count");
        if (!parse_number(cells[0], time) || time < 0.0) {
          return Status::error(where + "time_s '" + cells[0] + "' is not a non-negative number");
        }
        if (!parse_number(cells[1], count) || count < 0.0 || count != std::floor(count) ||
            count > 1e6) {
          return Status::error(where + "count '" + cells[1] +
                               "' is not a whole number of instances (0 to 1e6)");
        }
        if (!times.empty() && time <= times.back()) {
          return Status::error(where + "times are not sorted: " + json_number_text(time) +
                               " does not come after " + json_number_text(times.back()));
        }
        times.push_back(time);
        counts.push_back(static_cast<uint64_t>(count));
        return Status::ok_status();
      });
  if (!s.ok()) return s;
  return from_counts(times, counts);
}

Result<AvailabilityTrace> read_counts_json_trace(std::istream& in, const std::string& name) {
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::error(name + ": not valid JSON");
  if (!doc.is_object()) return Status::error(name + ": expected an object with metadata and data");
  const nlohmann::json* gap = nullptr;
  if (doc.contains("metadata") && doc["metadata"].is_object() &&
      doc["metadata"].contains("gap_seconds")) {
    gap = &doc["metadata"]["gap_seconds"];
  }
  if (gap == nullptr) return Status::error(name + ": metadata.gap_seconds is missing");
  auto g = json_to_double(*gap, name + ": metadata.gap_seconds", NumberRange::positive());
  if (!g.ok()) return g.status();
  if (!doc.contains("data") || !doc["data"].is_array()) {
    return Status::error(name + ": data: expected an array of instance counts");
  }
  std::vector<double> times;
  std::vector<uint64_t> counts;
  for (size_t i = 0; i < doc["data"].size(); ++i) {
    auto k = json_to_uint(doc["data"][i], name + ": " + json_index_path("data", i),
                          NumberRange::closed(0, 1e6));
    if (!k.ok()) return k.status();
    times.push_back(static_cast<double>(i) * g.value());
    counts.push_back(k.value());
  }
  return from_counts(times, counts);
}

Result<AvailabilityTrace> read_trace(const TraceSpec& spec) {
  std::ifstream in(spec.path);
  if (!in) return Status::error(spec.path + ": cannot open the trace");
  switch (spec.format) {
    case TraceFormat::kSessions:
      return read_sessions_trace(in, spec.path);
    case TraceFormat::kCountsJson:
      return read_counts_json_trace(in, spec.path);
    case TraceFormat::kCountsCsv:
      return read_counts_csv_trace(in, spec.path);
  }
  return Status::error("unknown trace format");
}

namespace {

// Which host each peer replays (index into trace.hosts, or none).
Result<std::vector<int64_t>> choose_hosts(const AvailabilityTrace& trace, const TraceSpec& spec,
                                          uint32_t peer_count, uint64_t seed) {
  std::vector<int64_t> host_of(peer_count, -1);
  const size_t hosts = trace.hosts.size();
  if (spec.mapping == TraceMapping::kIds) {
    for (size_t h = 0; h < hosts; ++h) {
      char* end = nullptr;
      const long long id = std::strtoll(trace.hosts[h].c_str(), &end, 10);
      if (*end != '\0' || id < 0 || id >= static_cast<long long>(peer_count)) {
        return Status::error(spec.path + ":" + std::to_string(trace.first_line[h]) + ": peer '" +
                             trace.hosts[h] + "' is not an id below peers.count (" +
                             std::to_string(peer_count) +
                             "; churn.trace.mapping \"first\" or \"sample\" take any names)");
      }
      host_of[static_cast<size_t>(id)] = static_cast<int64_t>(h);
    }
  } else if (spec.mapping == TraceMapping::kFirst) {
    for (size_t p = 0; p < peer_count && p < hosts; ++p) host_of[p] = static_cast<int64_t>(p);
  } else {
    if (hosts < peer_count) {
      return Status::error(spec.path + ": the trace has " + std::to_string(hosts) +
                           " hosts, fewer than peers.count (" + std::to_string(peer_count) +
                           ") to sample (churn.trace.mapping \"first\" leaves the rest offline)");
    }
    std::vector<int64_t> order(hosts);
    for (size_t h = 0; h < hosts; ++h) order[h] = static_cast<int64_t>(h);
    Rng rng(derive_seed(seed, "trace_mapping", 0));
    for (size_t i = 0; i < peer_count; ++i) {  // a partial Fisher-Yates shuffle
      std::swap(order[i], order[i + rng.uniform_int(hosts - i)]);
    }
    std::sort(order.begin(), order.begin() + peer_count);
    for (size_t p = 0; p < peer_count; ++p) host_of[p] = order[p];
  }
  return host_of;
}

}  // namespace

Result<MappedTrace> map_trace(const AvailabilityTrace& trace, const TraceSpec& spec,
                              uint32_t peer_count, uint64_t seed) {
  auto chosen = choose_hosts(trace, spec, peer_count, seed);
  if (!chosen.ok()) return chosen.status();
  MappedTrace out;
  out.peer_hosts.assign(peer_count, "");
  auto to_sim = [&spec](double t) { return (t - spec.start_s) / spec.time_scale; };
  for (PeerId p = 0; p < peer_count; ++p) {
    const int64_t h = chosen.value()[p];
    if (h < 0) continue;
    out.peer_hosts[p] = trace.hosts[static_cast<size_t>(h)];
    std::vector<TraceInterval> sessions;
    for (const TraceInterval& s : trace.up[static_cast<size_t>(h)]) {
      const double end = s.end_s < 0.0 ? -1.0 : to_sim(s.end_s);
      if (s.end_s >= 0.0 && end <= 0.0) continue;  // over before the run starts
      sessions.push_back({std::max(0.0, to_sim(s.start_s)), end});
    }
    if (!sessions.empty()) out.sessions[p] = std::move(sessions);
  }
  return out;
}

}  // namespace crowdtrain
