// A scenario: one JSON file that describes a runnable experiment, read into plain typed structs
// with defaults. Unknown keys, wrong types and out-of-range values are errors that name their JSON
// path (e.g. "network.upload_mbps.median: must be > 0, got -3"). `--set a.b=value` overrides are
// applied to the JSON before it is read. docs/scenarios.md is the reference of every key; keep it
// in step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/churn_trace_options.h"
#include "core/distribution.h"
#include "core/status.h"

namespace crowdtrain {

// The scenario's choices, as enums from the reader on; each has its names in scenario.cpp (the
// reader's choices, error messages and summary.json use them).
enum class Fidelity : uint8_t { kMessage = 0, kPacket = 1 };               // "message" | "packet"
enum class ChurnModel : uint8_t { kNone = 0, kSessions = 1, kTrace = 2 };  // "none" | ...
enum class FaultKind : uint8_t { kKill = 0, kPartition = 1, kClog = 2, kLoss = 3 };  // "kill" | ...
enum class ComputeMode : uint8_t { kModel = 0, kMeasured = 1 };           // "model" | "measured"
enum class EventLevel : uint8_t { kAll = 0, kLifecycle = 1, kAuto = 2 };  // "all" | ...
template <typename E>
using EnumNames = std::vector<std::pair<std::string, E>>;
const EnumNames<Fidelity>& fidelity_names();
const EnumNames<ChurnModel>& churn_model_names();
const EnumNames<FaultKind>& fault_kind_names();
const EnumNames<ComputeMode>& compute_mode_names();
const EnumNames<EventLevel>& event_level_names();
// The name of `value` in `names` ("" when absent).
template <typename E>
std::string enum_name(const EnumNames<E>& names, E value) {
  for (const auto& [text, v] : names) {
    if (v == value) return text;
  }
  return "";
}

struct PeerClassSpec {
  std::string name = "default";
  double fraction = 1.0;       // share of peers in this class; shares are normalised
  double flops_per_s = 1e12;   // compute throughput for the cost model
  bool has_bandwidth = false;  // when true, the two below replace network.upload/download_mbps
  DistSpec upload_mbps = DistSpec::constant(100);
  DistSpec download_mbps = DistSpec::constant(100);
};

struct PeersSpec {
  uint32_t count = 100;
  std::vector<PeerClassSpec> classes{PeerClassSpec{}};
  // Peers that cannot be called (behind NAT or a firewall): they call out, and only the peers they
  // reached can reach them (WorkloadContext::client). peers.clients is either a fraction (the
  // last floor(fraction x count + 0.5) peer ids, so that roles given to the first ids, such as
  // expert servers, stay callable) or a list of peer ids.
  double client_fraction = 0.0;
  std::vector<uint32_t> client_ids;  // sorted, unique
  bool is_client(uint32_t peer) const;
  bool has_clients() const { return !client_ids.empty() || client_count_from_fraction() > 0; }
  uint32_t client_count_from_fraction() const;
};

struct RegionsSpec {
  std::string rtt_csv;  // "" = one region; else a square RTT matrix (ms), see docs
  std::map<std::string, double> weights;  // share of peers per region; empty = equal shares
};

struct NetworkSpec {
  Fidelity fidelity = Fidelity::kMessage;
  DistSpec access_latency_ms = DistSpec::constant(5);  // one way, peer <-> its region router
  DistSpec delay_ms = DistSpec::constant(0);  // message level: extra one-way delay, per message
  DistSpec upload_mbps = DistSpec::constant(100);
  DistSpec download_mbps = DistSpec::constant(100);
  RegionsSpec regions;
  double loss_rate = 0.0;              // per message (message level) or per packet (packet level)
  uint32_t tcp_segment_bytes = 1448;   // packet level
  double core_bandwidth_gbps = 100.0;  // packet level: router-to-router links
  uint64_t max_message_bytes = 256ull << 20;
  bool serialize = false;    // encode and decode every message for real (exercises the codec)
  bool tcp_effects = false;  // message level: add TCP's handshake, slow start and header bytes
};

struct ChurnSpec {
  ChurnModel model = ChurnModel::kNone;
  DistSpec session_s = DistSpec::constant(3600);
  DistSpec downtime_s = DistSpec::constant(600);
  double initial_online_fraction = 1.0;  // sessions model: share of peers online at t = 0
  TraceSpec trace;                       // trace model: the trace and its mapping
  double lifetime_s_max = 0.0;           // preemption: a peer is killed after this long (0 = never)
  double preemption_notice_s = 30.0;     // ... and told this long before
};

struct FaultSpec {
  double at_s = 0.0;
  FaultKind kind = FaultKind::kKill;
  // kill, clog, loss: the peers it hits, chosen at at_s among the live ones: a share drawn from the
  // fault stream (fraction), or exactly these (peers). A loss with neither hits every peer.
  double fraction = 0.0;
  std::vector<uint32_t> peers;
  double restart_after_s = -1.0;     // kill: restart them after this long (< 0 = never)
  double notice_s = 0.0;             // kill: a preemption notice this long before the kill
  std::vector<std::string> regions;  // partition: these regions vs the rest
  double duration_s = 0.0;           // partition, clog, loss: how long
  double delay_ms = 0.0;             // clog: extra one-way delay of every message to or from them
  double loss_rate = 0.0;            // loss: extra drop probability of those messages
};

// The liveness phase (core/invariants.h): from from_s on, every counter is also counted under
// "liveness.<name>" and summary.json says whether the workload met its liveness goal. `crowdtrain
// swarm` sets it where its fault plan ends; < 0: no liveness phase.
struct LivenessSpec {
  double from_s = -1.0;
};

struct ComputeSpec {
  ComputeMode mode =
      ComputeMode::kModel;  // model: flops / flops_per_s; measured: the call's wall time
};

// The options of a workload kind that owns its reader (core/workload.h), read from
// workload.<kind>; each kind subclasses it in its own folder (e.g. core/moe/moe_options.h).
class WorkloadOptions {
 public:
  virtual ~WorkloadOptions() = default;
};

struct WorkloadSpec {
  // A kind registered in core/workload.cpp: "probe" | "transfers" | "dht" | "averaging" |
  // "training" | "moe".
  std::string kind = "probe";
  // Every kind's options, by kind name (the reader fills in every kind, read or default).
  std::map<std::string, std::shared_ptr<const WorkloadOptions>> options;

  // The options of `kind` as its own type: T's defaults when a Scenario built in code has none;
  // an invariant failure when they are of another type.
  template <typename T>
  const T& options_of(const std::string& kind) const {
    static const T defaults;
    auto it = options.find(kind);
    if (it == options.end() || it->second == nullptr) return defaults;
    const T* typed = dynamic_cast<const T*>(it->second.get());
    CT_CHECK(typed != nullptr);
    return *typed;
  }
  // The options of `kind` to change in code (tests, tools): T's defaults when a Scenario built in
  // code has none yet; copied first when another Scenario shares them, so copies of a scenario
  // never change each other.
  template <typename T>
  T& edit(const std::string& kind) {
    auto& slot = options[kind];
    if (slot == nullptr) {
      slot = std::make_shared<T>();
    } else if (slot.use_count() > 1) {
      slot = std::make_shared<T>(options_of<T>(kind));
    }
    return const_cast<T&>(options_of<T>(kind));
  }
};

struct OutputSpec {
  std::string dir;                        // "" = runs/<name>/
  double metrics_interval_s = 1.0;        // metrics.csv sampling period (simulated seconds)
  EventLevel events = EventLevel::kAuto;  // kAuto: all up to 10,000 peers, else lifecycle
  bool progress = true;                   // progress line on stderr
};

struct Scenario {
  std::string name = "unnamed";
  uint64_t seed = 1;
  double duration_s = 30.0;
  PeersSpec peers;
  NetworkSpec network;
  ChurnSpec churn;
  std::vector<FaultSpec> faults;
  LivenessSpec liveness;
  ComputeSpec compute;
  WorkloadSpec workload;
  OutputSpec output;
  nlohmann::json resolved;  // the JSON after overrides, as read (goes into summary.json)
  std::string source_path;  // file it came from, "" when built in code
};

// Applies one "a.b.c=value" override: value is parsed as JSON when it parses, else taken as a
// string. Creates missing objects on the way. Errors name the path.
Status apply_override(nlohmann::json& doc, const std::string& assignment);
// Reads a scenario from JSON. The error names the JSON path and what is wrong.
Result<Scenario> parse_scenario(const nlohmann::json& doc);
// Reads the file, applies overrides in order, parses. Relative paths inside the scenario (CSV
// files) are resolved against the scenario file's folder, then against the current directory.
Result<Scenario> load_scenario(const std::string& path, const std::vector<std::string>& overrides);

// The region names of network.regions.rtt_csv's matrix (none without one), in file order.
Result<std::vector<std::string>> scenario_region_names(const Scenario& s);

// parse_scenario with relative CSV paths resolved against `base_dir` first ("" = current directory
// only). load_scenario passes the scenario file's folder.
Result<Scenario> parse_scenario(const nlohmann::json& doc, const std::string& base_dir);
// Reads a distribution: a plain number (a constant) or one of the object forms in distribution.h,
// with its parameters checked. `positive`: the quantity must be > 0 (bandwidths); else >= 0. A
// weibull given by "median" gets scale = median / ln(2)^(1/shape).
Result<DistSpec> parse_dist(const nlohmann::json& v, const std::string& path,
                            bool positive = false);
// For a workload's checks: an error at `path` when `bytes` exceed network.max_message_bytes.
Status check_fits_in_message(const Scenario& s, const std::string& path, uint64_t bytes);

}  // namespace crowdtrain
