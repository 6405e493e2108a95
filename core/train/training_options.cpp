// The reader of workload.training (TrainingWorkloadOptions): every key, its type and range, and
// the checks between its own keys. docs/scenarios.md lists every key; keep it in step.
#include "core/train/training_options.h"

#include <string>

namespace crowdtrain::train {

namespace {

void read_target_accuracies(JsonReader& r, std::vector<double>& out) {
  if (!r.has("target_accuracies")) return (void)r.take("target_accuracies");
  std::vector<double> values;
  r.array("target_accuracies", [&](const nlohmann::json& item, const std::string& path) {
    auto v = json_to_double(item, path, {0.0, 1.0, true, false});
    v.ok() ? values.push_back(v.value()) : r.absorb(v.status());
  });
  if (r.ok()) out = std::move(values);
}

void read_compression(JsonReader& r, Compression& out) {
  std::string name = compression_name(out);
  r.read("compression", name);
  if (!r.ok()) return;
  auto c = compression_from_name(name);
  if (!c.ok()) {
    return r.fail(
        r.path_of("compression"),
        "unknown codec \"" + name + "\" (known: none, fp16, meanstd_fp16, uniform8, quantile8)");
  }
  out = c.value();
}

void read_model(JsonReader& r, TrainingWorkloadOptions& o) {
  r.read_enum("model", o.model, {{"mlp", ModelKind::kMlp}, {"cnn", ModelKind::kCnn}});
  r.read("hidden", o.hidden, NumberRange::closed(1, 65536));
  r.read("depth", o.depth, NumberRange::closed(1, 64));
  r.read_enum("optimizer", o.optimizer,
              {{"sgd", OptimizerKind::kSgd}, {"adam", OptimizerKind::kAdam}});
  r.read("lr", o.lr, NumberRange::positive());
  r.read("momentum", o.momentum, NumberRange::half_open(0, 1));
  r.read("batch_size", o.batch_size, NumberRange::closed(1, 1 << 20));
  r.read("average_optimizer_state", o.average_optimizer_state);
}

void read_evaluation(JsonReader& r, TrainingWorkloadOptions& o) {
  r.read("test_fraction", o.test_fraction, NumberRange::half_open(0.01, 1));
  r.read("eval_samples", o.eval_samples, NumberRange::closed(1, 1 << 24));
  r.read("eval_interval_s", o.eval_interval_s, NumberRange::positive());
  r.read("eval_peers", o.eval_peers, NumberRange::closed(1, 4096));
  read_target_accuracies(r, o.target_accuracies);
}

}  // namespace

const char* training_mode_name(TrainingMode m) {
  return m == TrainingMode::kCollaborative ? "collaborative" : "local_sgd";
}

std::shared_ptr<const WorkloadOptions> read_training_options(JsonReader& r) {
  auto o = std::make_shared<TrainingWorkloadOptions>();
  r.read_enum(
      "mode", o->mode,
      {{"local_sgd", TrainingMode::kLocalSgd}, {"collaborative", TrainingMode::kCollaborative}});
  r.read("target_batch_size", o->target_batch_size, NumberRange::closed(1, 1u << 30));
  r.read("report_interval_s", o->report_interval_s, NumberRange::positive());
  read_model(r, *o);
  read_evaluation(r, *o);
  read_compression(r, o->compression);
  r.read("local_steps_per_round", o->local_steps_per_round, NumberRange::closed(0, 1u << 30));
  r.read("download_state", o->download_state);
  r.read("state_timeout_s", o->state_timeout_s, NumberRange::positive());
  r.read("state_attempts", o->state_attempts, NumberRange::closed(0, 64));
  read_group_averaging(r, o->group);
  if (!r.ok()) return o;
  const AveragingMethod m = o->group.method;
  if (o->mode == TrainingMode::kCollaborative && m != AveragingMethod::kAllReduceOpen &&
      m != AveragingMethod::kMoshpit) {
    r.fail(r.path_of("method"),
           "collaborative mode averages gradients by all-reduce (method \"allreduce_open\" or "
           "\"moshpit\"), got \"" +
               averaging_method_name(m) + "\"");
  }
  return o;
}

const TrainingWorkloadOptions& training_options_of(const Scenario& s) {
  return s.workload.options_of<TrainingWorkloadOptions>("training");
}

}  // namespace crowdtrain::train
