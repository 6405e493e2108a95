// A run's output folder: summary.json (the figures), metrics.csv (time series), events.jsonl (the
// event log, written by MetricsSink). Both worlds write through this, so their outputs have the
// same shape.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain {

class RunOutput {
 public:
  // Creates `dir` (and parents). Opens metrics.csv with `columns` as its header, and events.jsonl
  // in `sink` when the scenario's event level asks for a file.
  static Result<std::unique_ptr<RunOutput>> open(const std::string& dir,
                                                 const std::vector<std::string>& columns,
                                                 MetricsSink& sink);
  ~RunOutput();
  const std::string& dir() const { return dir_; }
  void metrics_row(const std::vector<double>& values);
  // Writes summary.json (pretty-printed, keys sorted).
  Status write_summary(const nlohmann::json& summary);

 private:
  RunOutput() = default;
  std::string dir_;
  std::FILE* csv_ = nullptr;
  size_t columns_ = 0;
};

// What a world knows of its run that the metrics do not hold; the rest of summary.json's common
// part comes from the scenario and the sink.
struct RunFacts {
  std::string world;       // "sim" | "live"
  uint64_t peers = 0;      // the scenario's peers (sim), the peers this process knows (live)
  double sim_time_s = 0;   // the timeline's time at the end
  double wall_time_s = 0;  // seconds of wall time the run took
  std::string reproduce;   // the command line that reproduces the run
};

// The part of summary.json every world writes: scenario, seed, peers, world, times, counters,
// every sample series (count, mean, p50, p99), the event log's size and SHA-256, the reproduce
// command, the resolved scenario, and the workload's own section (add_workload_summary). Each world
// adds its own facts (the simulator's network counters, a live peer's address) beside them.
nlohmann::json run_summary(const Scenario& s, const MetricsSink& sink, const RunFacts& facts);

// The default output folder of a scenario: its output.dir, else runs/<name>/.
std::string output_dir_for(const Scenario& s);
// `s` as one POSIX shell word (quoted only when it needs to be).
std::string shell_quote(const std::string& s);
// The command line that reproduces a run.
std::string reproduce_command(const Scenario& s, const std::vector<std::string>& overrides,
                              const std::string& verb);

}  // namespace crowdtrain
