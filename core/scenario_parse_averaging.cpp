// The reader of `workload.averaging` (the averaging experiment,
// core/averaging/averaging_workload.h): every key, its type and range, and the checks between its
// own keys (the grid is a power of two, the time-outs fit in a round).

#include <string>

#include "core/scenario_parse.h"

namespace crowdtrain::scenario_detail {

void check_round_fits(JsonReader& r, double gossip_window_s, double round_interval_s,
                      double matchmaking_timeout_s, double allreduce_timeout_s) {
  if (gossip_window_s >= round_interval_s) {
    return r.fail(r.path_of("gossip_window_s"), "must be below round_interval_s");
  }
  if (matchmaking_timeout_s + allreduce_timeout_s + 1.0 > round_interval_s) {
    return r.fail(r.path_of("round_interval_s"),
                  "must exceed matchmaking_timeout_s + allreduce_timeout_s + 1 s");
  }
}

void read_load_balance(JsonReader& r, LoadBalanceSpec& out) {
  r.read_choice("load_balance", out.load_balance, {"bandwidth", "equal"});
  r.read("bandwidth_mbps", out.bandwidth_mbps, NumberRange::closed(0, 1e9));
  r.read("client_below_mbps", out.client_below_mbps, NumberRange::closed(0, 1e9));
}

void read_averaging_workload(JsonReader& r, AveragingWorkloadSpec& out) {
  r.read_choice("method", out.method,
                {"moshpit", "allreduce", "random_groups", "gossip", "pushsum"});
  r.read("grid_size", out.grid_size, NumberRange::closed(1, 4096));
  r.read("grid_dims", out.grid_dims, NumberRange::closed(1, 16));
  r.read("key_prefix", out.key_prefix);
  r.read("first_round_s", out.first_round_s, NumberRange::non_negative());
  r.read("round_interval_s", out.round_interval_s, NumberRange::positive());
  r.read("rounds", out.rounds, NumberRange::closed(0, 100000));
  r.read("stop_below_mse", out.stop_below_mse, NumberRange::non_negative());
  r.read("failure_prob", out.failure_prob, NumberRange::fraction());
  r.read("vector_size", out.vector_size, NumberRange::closed(1, 1 << 26));
  r.read("target_group_size", out.target_group_size, NumberRange::closed(0, 4096));
  r.read("min_group_size", out.min_group_size, NumberRange::closed(1, 4096));
  r.read("declare_s", out.declare_s, NumberRange::positive());
  r.read("matchmaking_timeout_s", out.matchmaking_timeout_s, NumberRange::positive());
  r.read("allreduce_timeout_s", out.allreduce_timeout_s, NumberRange::positive());
  r.read("gossip_window_s", out.gossip_window_s, NumberRange::positive());
  r.read("wire_params", out.wire_params, NumberRange::closed(0, 1e12));
  r.read("bootstrap_peers", out.bootstrap_peers, NumberRange::closed(1, 64));
  r.read("bootstrap_spread_s", out.bootstrap_spread_s, NumberRange::non_negative());
  read_load_balance(r, out.balance);
  if (!r.ok()) return;
  if ((out.grid_size & (out.grid_size - 1)) != 0) {
    return r.fail(r.path_of("grid_size"),
                  "must be a power of two, got " + std::to_string(out.grid_size));
  }
  if (out.key_prefix.empty() || out.key_prefix.find('.') != std::string::npos) {
    return r.fail(r.path_of("key_prefix"), "must be nonempty and without '.'");
  }
  const uint32_t target = out.target_group_size == 0 ? out.grid_size : out.target_group_size;
  if (out.min_group_size > target) {
    return r.fail(r.path_of("min_group_size"),
                  "must not exceed the target group size " + std::to_string(target));
  }
  if (out.declare_s >= out.matchmaking_timeout_s) {
    return r.fail(r.path_of("declare_s"), "must be below matchmaking_timeout_s");
  }
  if (out.wire_params > 0 && out.wire_params * 4.0 < out.vector_size * 8.0) {
    return r.fail(r.path_of("wire_params"),
                  "must carry at least the real vector (vector_size float64 = 2 x vector_size "
                  "float32 parameters), or be 0");
  }
  check_round_fits(r, out.gossip_window_s, out.round_interval_s, out.matchmaking_timeout_s,
                   out.allreduce_timeout_s);
}

}  // namespace crowdtrain::scenario_detail
