// What a run measures. One MetricsSink per world (all simulated peers share it) or per live
// process: counters (summed over peers), samples (distributions, for percentiles), and the event
// log. Each peer incarnation writes through a Metrics handle that adds its peer id and the time.
//
// The event log is one JSON object per line: {"t_ns":..,"peer":..,"ev":"..", fields...}. Its
// SHA-256 over the exact bytes written is the run's determinism fingerprint. Events below the
// sink's detail level are neither written nor hashed. Single-threaded, like the runtimes.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/sha256.h"
#include "core/time.h"

namespace crowdtrain {

enum class EventDetail : uint8_t {
  kLifecycle = 0,  // joins, leaves, faults, phase changes: always logged
  kOperation = 1,  // per-operation records (a probe that completed, a lookup): logged at "all"
};

struct EventField {
  const char* key;
  std::variant<int64_t, double, std::string_view> value;
  EventField(const char* k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  EventField(const char* k, unsigned v) : key(k), value(static_cast<int64_t>(v)) {}
  EventField(const char* k, int64_t v) : key(k), value(v) {}
  EventField(const char* k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  EventField(const char* k, double v) : key(k), value(v) {}
  EventField(const char* k, const char* v) : key(k), value(std::string_view(v)) {}
  EventField(const char* k, std::string_view v) : key(k), value(v) {}
};

class MetricsSink {
 public:
  MetricsSink();
  ~MetricsSink();
  MetricsSink(const MetricsSink&) = delete;
  MetricsSink& operator=(const MetricsSink&) = delete;

  // Events at or below `detail` are logged. Default: kOperation (everything).
  void set_detail(EventDetail detail) { detail_ = detail; }
  bool logs(EventDetail d) const { return d <= detail_; }
  // Also write the event log to `path` (truncates). Returns false if the file cannot be opened.
  // Buffered; a lifecycle event flushes it when the last flush is 2 s of wall time old.
  bool open_event_file(const std::string& path);
  void close_event_file();

  void count(std::string_view name, int64_t delta = 1);
  // One sample of the series `name`. A series keeps its count and sum exactly and at most
  // kMaxKeptSamples values for its percentiles: every value up to that many, then a uniform
  // reservoir (Vitter's algorithm R, drawn from a generator seeded by the series' name, so that a
  // run stays deterministic). Memory stays bounded however long a peer runs (an hour-long live
  // run grew 100 MB/h keeping every value).
  void observe(std::string_view name, double value);
  static constexpr size_t kMaxKeptSamples = size_t{1} << 16;

  // The liveness phase (core/invariants.h): from `t` on, every count made through a Metrics handle
  // is also counted under kLivenessPrefix + name.
  static constexpr std::string_view kLivenessPrefix = "liveness.";
  void set_liveness_from(Time t) { liveness_from_ = t; }
  bool in_liveness(Time t) const { return t >= liveness_from_; }
  bool has_liveness() const { return liveness_from_ != Time::max(); }
  void event(Time t, uint32_t peer, std::string_view kind, EventDetail detail,
             std::initializer_list<EventField> fields);

  int64_t counter(std::string_view name) const;
  const std::map<std::string, int64_t, std::less<>>& counters() const { return counters_; }
  // q-quantile (0..1) of the samples named `name` (nearest rank; over the reservoir past
  // kMaxKeptSamples); NaN when there are none.
  double percentile(std::string_view name, double q) const;
  size_t sample_count(std::string_view name) const;
  // Names of every sample series recorded so far, sorted.
  std::vector<std::string> sample_names() const;
  double sample_mean(std::string_view name) const;
  uint64_t events_logged() const { return events_logged_; }
  // Hex SHA-256 of every event line logged so far.
  std::string event_log_sha256() const;

 private:
  EventDetail detail_ = EventDetail::kOperation;
  Time liveness_from_ = Time::max();
  std::map<std::string, int64_t, std::less<>> counters_;
  struct Series {
    std::vector<double> kept;  // every value, then a uniform reservoir of kMaxKeptSamples
    uint64_t count = 0;
    double sum = 0.0;  // in observation order: the mean of every value, exactly as before
    uint64_t rng = 0;  // splitmix64 state, seeded by the name
  };
  std::map<std::string, Series, std::less<>> samples_;
  Sha256 hash_;
  uint64_t events_logged_ = 0;
  std::FILE* event_file_ = nullptr;
  std::chrono::steady_clock::time_point last_flush_{};
  std::string line_;
};

// A peer's view of the sink: adds the peer id and the current time.
class Metrics {
 public:
  Metrics(MetricsSink* sink, uint32_t peer, std::function<Time()> clock)
      : sink_(sink), peer_(peer), clock_(std::move(clock)) {}
  void count(std::string_view name, int64_t delta = 1) {
    sink_->count(name, delta);
    if (sink_->has_liveness() && sink_->in_liveness(clock_())) {
      sink_->count(std::string(MetricsSink::kLivenessPrefix) + std::string(name), delta);
    }
  }
  void observe(std::string_view name, double value) { sink_->observe(name, value); }
  bool logs(EventDetail d) const { return sink_->logs(d); }
  void event(std::string_view kind, std::initializer_list<EventField> fields = {},
             EventDetail detail = EventDetail::kLifecycle) {
    if (sink_->logs(detail)) sink_->event(clock_(), peer_, kind, detail, fields);
  }
  MetricsSink& sink() { return *sink_; }

 private:
  MetricsSink* sink_;
  uint32_t peer_;
  std::function<Time()> clock_;
};

}  // namespace crowdtrain
