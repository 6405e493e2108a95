// The reader of `workload.training` (Moshpit SGD and its baselines,
// core/train/training_workload.h): every key, its type and range, and the checks between its own
// keys (grid a power of two, the averaging time-outs fit in a round, target accuracies in (0, 1]).

#include <string>

#include "core/averaging/compression.h"
#include "core/scenario_parse.h"

namespace crowdtrain::scenario_detail {

void read_training_workload(JsonReader& r, TrainingWorkloadSpec& out) {
  r.read_choice("method", out.method,
                {"moshpit", "allreduce", "random_groups", "gossip", "pushsum"});
  r.read_choice("mode", out.mode, {"local_sgd", "collaborative"});
  r.read("target_batch_size", out.target_batch_size, NumberRange::closed(1, 1u << 30));
  r.read("report_interval_s", out.report_interval_s, NumberRange::positive());
  r.read_choice("model", out.model, {"mlp", "cnn"});
  r.read("hidden", out.hidden, NumberRange::closed(1, 65536));
  r.read("depth", out.depth, NumberRange::closed(1, 64));
  r.read_choice("optimizer", out.optimizer, {"sgd", "adam"});
  r.read("lr", out.lr, NumberRange::positive());
  r.read("momentum", out.momentum, NumberRange::half_open(0, 1));
  r.read("batch_size", out.batch_size, NumberRange::closed(1, 1 << 20));
  r.read("average_optimizer_state", out.average_optimizer_state);
  r.read("test_fraction", out.test_fraction, NumberRange::half_open(0.01, 1));
  r.read("eval_samples", out.eval_samples, NumberRange::closed(1, 1 << 24));
  r.read("eval_interval_s", out.eval_interval_s, NumberRange::positive());
  r.read("eval_peers", out.eval_peers, NumberRange::closed(1, 4096));
  if (r.has("target_accuracies")) {
    std::vector<double> values;
    r.array("target_accuracies", [&](const nlohmann::json& item, const std::string& path) {
      auto v = json_to_double(item, path, {0.0, 1.0, true, false});
      v.ok() ? values.push_back(v.value()) : r.absorb(v.status());
    });
    if (r.ok()) out.target_accuracies = std::move(values);
  } else {
    r.take("target_accuracies");
  }
  r.read("grid_size", out.grid_size, NumberRange::closed(1, 4096));
  r.read("grid_dims", out.grid_dims, NumberRange::closed(1, 16));
  r.read("target_group_size", out.target_group_size, NumberRange::closed(0, 4096));
  r.read("min_group_size", out.min_group_size, NumberRange::closed(0, 4096));
  r.read("compression", out.compression);
  r.read("first_round_s", out.first_round_s, NumberRange::non_negative());
  r.read("round_interval_s", out.round_interval_s, NumberRange::positive());
  r.read("declare_s", out.declare_s, NumberRange::positive());
  r.read("matchmaking_timeout_s", out.matchmaking_timeout_s, NumberRange::positive());
  r.read("allreduce_timeout_s", out.allreduce_timeout_s, NumberRange::positive());
  r.read("gossip_window_s", out.gossip_window_s, NumberRange::positive());
  r.read("local_steps_per_round", out.local_steps_per_round, NumberRange::closed(0, 1u << 30));
  r.read("download_state", out.download_state);
  r.read("state_timeout_s", out.state_timeout_s, NumberRange::positive());
  r.read("state_attempts", out.state_attempts, NumberRange::closed(0, 64));
  r.read("bootstrap_peers", out.bootstrap_peers, NumberRange::closed(1, 64));
  r.read("bootstrap_spread_s", out.bootstrap_spread_s, NumberRange::non_negative());
  read_load_balance(r, out.balance);
  if (!r.ok()) return;
  if (!compression_from_name(out.compression).ok()) {
    return r.fail(r.path_of("compression"),
                  "unknown codec \"" + out.compression +
                      "\" (known: none, fp16, meanstd_fp16, uniform8, quantile8)");
  }
  if ((out.grid_size & (out.grid_size - 1)) != 0) {
    return r.fail(r.path_of("grid_size"),
                  "must be a power of two, got " + std::to_string(out.grid_size));
  }
  if (out.method != "allreduce" && out.min_group_size < 2) {
    return r.fail(r.path_of("min_group_size"), "must be >= 2 (0 means all peers: allreduce only)");
  }
  const uint32_t target = out.target_group_size == 0 ? out.grid_size : out.target_group_size;
  if (out.method != "allreduce" && out.min_group_size > target) {
    return r.fail(r.path_of("min_group_size"),
                  "must not exceed the target group size " + std::to_string(target));
  }
  if (out.declare_s >= out.matchmaking_timeout_s) {
    return r.fail(r.path_of("declare_s"), "must be below matchmaking_timeout_s");
  }
  if (out.mode == "collaborative" && out.method != "allreduce" && out.method != "moshpit") {
    return r.fail(r.path_of("method"),
                  "collaborative mode averages gradients by all-reduce "
                  "(method \"allreduce\" or \"moshpit\"), got \"" +
                      out.method + "\"");
  }
  check_round_fits(r, out.gossip_window_s, out.round_interval_s, out.matchmaking_timeout_s,
                   out.allreduce_timeout_s);
}

}  // namespace crowdtrain::scenario_detail
