#include "core/run_output.h"

#include "core/invariants.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/workload.h"

namespace crowdtrain {
namespace {

std::string errno_text() { return std::strerror(errno); }

// printf's %.9g, except that whole numbers (counters: bytes, messages) print exactly up to 2^53,
// and NaN and the infinities print the same on every C library.
void append_csv_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "nan";
  } else if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
  } else if (v == std::trunc(v) && std::fabs(v) <= 9007199254740992.0) {
    char buf[32];
    const int n = std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
    out.append(buf, static_cast<size_t>(n));
  } else {
    char buf[32];
    const int n = std::snprintf(buf, sizeof(buf), "%.9g", v);
    out.append(buf, static_cast<size_t>(n));
  }
}

// Characters that need no quoting in a POSIX shell word.
bool shell_safe(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::strchr("_-./=:,+@%", c) != nullptr;
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string shell_quote(const std::string& s) {
  if (shell_safe(s)) return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

Result<std::unique_ptr<RunOutput>> RunOutput::open(const std::string& dir,
                                                   const std::vector<std::string>& columns,
                                                   MetricsSink& sink) {
  CT_CHECK(!columns.empty());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error("cannot create output folder " + dir + ": " + ec.message());
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::error("output folder " + dir + " exists and is not a folder");
  }

  std::unique_ptr<RunOutput> out(new RunOutput());
  out->dir_ = dir;
  out->columns_ = columns.size();
  const std::string csv_path = dir + "/metrics.csv";
  out->csv_ = std::fopen(csv_path.c_str(), "wb");
  if (out->csv_ == nullptr) return Status::error("cannot open " + csv_path + ": " + errno_text());
  std::string header;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i > 0) header.push_back(',');
    header += columns[i];
  }
  header.push_back('\n');
  std::fwrite(header.data(), 1, header.size(), out->csv_);
  std::fflush(out->csv_);

  // The caller has set the sink's detail level; what is below it never reaches the file.
  const std::string events_path = dir + "/events.jsonl";
  if (!sink.open_event_file(events_path)) {
    return Status::error("cannot open " + events_path + ": " + errno_text());
  }
  return out;
}

RunOutput::~RunOutput() {
  if (csv_ != nullptr) std::fclose(csv_);
}

void RunOutput::metrics_row(const std::vector<double>& values) {
  CT_CHECK(values.size() == columns_);
  CT_CHECK(csv_ != nullptr);
  std::string row;
  row.reserve(values.size() * 12);
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) row.push_back(',');
    append_csv_double(row, values[i]);
  }
  row.push_back('\n');
  std::fwrite(row.data(), 1, row.size(), csv_);
  // Rows are few (one per metrics interval); flushing lets a plot read a run that is still going.
  std::fflush(csv_);
}

Status RunOutput::write_summary(const nlohmann::json& summary) {
  // nlohmann::json's objects are std::maps, so the keys come out sorted. Strings that are not UTF-8
  // are replaced rather than thrown on.
  const std::string text =
      summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const std::string path = dir_ + "/summary.json";
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::error("cannot open " + tmp + ": " + errno_text());
  const size_t written = std::fwrite(text.data(), 1, text.size(), f);
  const bool closed = std::fclose(f) == 0;
  if (written != text.size() || !closed) {
    std::remove(tmp.c_str());
    return Status::error("cannot write " + tmp + ": " + errno_text());
  }
  // Atomic on POSIX: a reader sees the old summary or the new one, never half of one.
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return Status::error("cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
  return Status::ok_status();
}

nlohmann::json run_summary(const Scenario& s, const MetricsSink& sink, const RunFacts& facts) {
  const auto num = [](double v) {
    return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  nlohmann::json sum;
  sum["scenario"] = s.name;
  sum["seed"] = s.seed;
  sum["peers"] = facts.peers;
  sum["world"] = facts.world;
  sum["sim_time_s"] = facts.sim_time_s;
  sum["wall_time_s"] = facts.wall_time_s;
  sum["counters"] = sink.counters();
  nlohmann::json samples = nlohmann::json::object();
  for (const std::string& name : sink.sample_names()) {
    samples[name] = {{"count", sink.sample_count(name)},
                     {"mean", num(sink.sample_mean(name))},
                     {"p50", num(sink.percentile(name, 0.5))},
                     {"p99", num(sink.percentile(name, 0.99))}};
  }
  sum["samples"] = samples;
  add_workload_summary(s, sink, sum);
  sum["invariants"] = invariants_summary(sink);
  if (s.liveness.from_s >= 0.0) {
    sum["liveness"] = workload_liveness(s, sink);
    sum["liveness"]["from_s"] = s.liveness.from_s;
  }
  sum["events_logged"] = sink.events_logged();
  sum["event_log_sha256"] = sink.event_log_sha256();
  sum["reproduce"] = facts.reproduce;
  sum["scenario_resolved"] = s.resolved;
  return sum;
}

std::string output_dir_for(const Scenario& s) {
  if (!s.output.dir.empty()) return s.output.dir;
  return "runs/" + s.name;
}

std::string reproduce_command(const Scenario& s, const std::vector<std::string>& overrides,
                              const std::string& verb) {
  std::string cmd = "./crowdtrain " + verb;
  // A scenario built in code has no file; its name stands in for one.
  cmd += " " + shell_quote(s.source_path.empty() ? s.name + ".json" : s.source_path);
  cmd += " --seed " + std::to_string(s.seed);
  for (const std::string& o : overrides) cmd += " --set " + shell_quote(o);
  return cmd;
}

}  // namespace crowdtrain
