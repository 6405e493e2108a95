// The reader of the group-averaging keys (workload.averaging and workload.training) and of the
// averaging experiment's own keys. docs/scenarios.md lists every key; keep it in step.
#include "core/averaging/averaging_options.h"

namespace crowdtrain {

namespace {

bool is_allreduce(AveragingMethod m) {
  return m == AveragingMethod::kAllReduce || m == AveragingMethod::kAllReduceOpen;
}

void read_load_balance(JsonReader& r, LoadBalanceOptions& out) {
  r.read_enum("load_balance", out.load_balance,
              {{"bandwidth", LoadBalance::kBandwidth}, {"equal", LoadBalance::kEqual}});
  r.read("bandwidth_mbps", out.bandwidth_mbps, NumberRange::closed(0, 1e9));
  r.read("client_below_mbps", out.client_below_mbps, NumberRange::closed(0, 1e9));
}

void check_group_sizes(JsonReader& r, const GroupAveragingOptions& g) {
  if ((g.grid_size & (g.grid_size - 1)) != 0) {
    return r.fail(r.path_of("grid_size"),
                  "must be a power of two, got " + std::to_string(g.grid_size));
  }
  if (is_allreduce(g.method)) return;  // the group is everybody: the sizes do not apply
  if (g.min_group_size < 2) {
    return r.fail(r.path_of("min_group_size"),
                  "must be >= 2 (0 means all peers: allreduce_open only)");
  }
  const uint32_t target = g.target_group_size == 0 ? g.grid_size : g.target_group_size;
  if (g.min_group_size > target) {
    return r.fail(r.path_of("min_group_size"),
                  "must not exceed the target group size " + std::to_string(target));
  }
}

void check_timing(JsonReader& r, const GroupAveragingOptions& g) {
  if (g.declare_s >= g.matchmaking_timeout_s) {
    return r.fail(r.path_of("declare_s"), "must be below matchmaking_timeout_s");
  }
  if (g.gossip_window_s >= g.round_interval_s) {
    return r.fail(r.path_of("gossip_window_s"), "must be below round_interval_s");
  }
  if (g.matchmaking_timeout_s + g.allreduce_timeout_s + 1.0 > g.round_interval_s) {
    return r.fail(r.path_of("round_interval_s"),
                  "must exceed matchmaking_timeout_s + allreduce_timeout_s + 1 s");
  }
}

}  // namespace

const std::vector<std::pair<std::string, AveragingMethod>>& averaging_method_names() {
  static const std::vector<std::pair<std::string, AveragingMethod>> names = {
      {"moshpit", AveragingMethod::kMoshpit},
      {"allreduce", AveragingMethod::kAllReduce},
      {"allreduce_open", AveragingMethod::kAllReduceOpen},
      {"random_groups", AveragingMethod::kRandomGroups},
      {"gossip", AveragingMethod::kGossip},
      {"pushsum", AveragingMethod::kPushSum}};
  return names;
}

std::string averaging_method_name(AveragingMethod m) {
  for (const auto& [name, value] : averaging_method_names()) {
    if (value == m) return name;
  }
  return "unknown";
}

GroupAveragingOptions GroupAveragingOptions::training_defaults() {
  GroupAveragingOptions g;
  g.grid_size = 8;
  g.declare_s = 1;
  g.matchmaking_timeout_s = 3;
  g.allreduce_timeout_s = 5;
  g.gossip_window_s = 3;
  return g;
}

void read_group_averaging(JsonReader& r, GroupAveragingOptions& out) {
  r.read_enum("method", out.method, averaging_method_names());
  r.read("grid_size", out.grid_size, NumberRange::closed(1, 4096));
  r.read("grid_dims", out.grid_dims, NumberRange::closed(1, 16));
  r.read("target_group_size", out.target_group_size, NumberRange::closed(0, 4096));
  r.read("min_group_size", out.min_group_size, NumberRange::closed(0, 4096));
  r.read("first_round_s", out.first_round_s, NumberRange::non_negative());
  r.read("round_interval_s", out.round_interval_s, NumberRange::positive());
  r.read("declare_s", out.declare_s, NumberRange::positive());
  r.read("matchmaking_timeout_s", out.matchmaking_timeout_s, NumberRange::positive());
  r.read("allreduce_timeout_s", out.allreduce_timeout_s, NumberRange::positive());
  r.read("gossip_window_s", out.gossip_window_s, NumberRange::positive());
  r.read("bootstrap_peers", out.bootstrap_peers, NumberRange::closed(1, 64));
  r.read("bootstrap_spread_s", out.bootstrap_spread_s, NumberRange::non_negative());
  read_load_balance(r, out.balance);
  if (r.ok()) check_group_sizes(r, out);
  if (r.ok()) check_timing(r, out);
}

std::shared_ptr<const WorkloadOptions> read_averaging_options(JsonReader& r) {
  auto o = std::make_shared<AveragingWorkloadOptions>();
  r.read("key_prefix", o->key_prefix);
  r.read("rounds", o->rounds, NumberRange::closed(0, 100000));
  r.read("stop_below_mse", o->stop_below_mse, NumberRange::non_negative());
  r.read("failure_prob", o->failure_prob, NumberRange::fraction());
  r.read("vector_size", o->vector_size, NumberRange::closed(1, 1 << 26));
  r.read("wire_params", o->wire_params, NumberRange::closed(0, 1e12));
  read_group_averaging(r, o->group);
  if (!r.ok()) return o;
  if (o->key_prefix.empty() || o->key_prefix.find('.') != std::string::npos) {
    r.fail(r.path_of("key_prefix"), "must be nonempty and without '.'");
  } else if (o->wire_params > 0 && o->wire_params * 4.0 < o->vector_size * 8.0) {
    r.fail(r.path_of("wire_params"),
           "must carry at least the real vector (vector_size float64 = 2 x vector_size "
           "float32 parameters), or be 0");
  }
  return o;
}

const AveragingWorkloadOptions& averaging_options_of(const Scenario& s) {
  return s.workload.options_of<AveragingWorkloadOptions>("averaging");
}

}  // namespace crowdtrain
