// The summary section and the progress line of the mixture-of-experts workload (moe_workload.h).

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "core/moe/moe_options.h"
#include "core/moe/moe_peer.h"
#include "core/moe/moe_workload.h"

namespace crowdtrain::moe {

namespace {

constexpr const char* kEvalPrefix = "moe_eval_";

// The MNIST trainers' accuracy curve from the samples moe_eval_<k>_{time_s,accuracy,peer_updates},
// and the first evaluation time (and the swarm's updates then) at which each target was reached.
void add_curve(const MoeOptions& o, const MetricsSink& sink, nlohmann::json& out) {
  std::map<int64_t, nlohmann::json> points;
  const std::string prefix = kEvalPrefix;
  for (const std::string& name : sink.sample_names()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t cut = rest.find('_');
    if (cut == std::string::npos) continue;
    const std::string what = rest.substr(cut + 1);
    nlohmann::json& p = points[std::stoll(rest.substr(0, cut))];
    if (what == "time_s") p["time_s"] = sink.sample_mean(name);
    if (what == "peer_updates") {  // every trainer peer's own updates at this slot, added up
      p["updates"] =
          std::llround(sink.sample_mean(name) * static_cast<double>(sink.sample_count(name)));
    }
    if (what == "accuracy") {
      p["accuracy"] = sink.sample_mean(name);
      p["trainers"] = static_cast<int64_t>(sink.sample_count(name));
    }
  }
  nlohmann::json curve = nlohmann::json::array();
  nlohmann::json to = nlohmann::json::object(), to_updates = nlohmann::json::object();
  for (double target : o.trainer.target_accuracies) {
    to[json_number_text(target)] = nullptr;
    to_updates[json_number_text(target)] = nullptr;
  }
  for (auto& [k, p] : points) {
    if (!p.contains("accuracy")) continue;  // a slot nobody could evaluate
    curve.push_back(p);
    for (double target : o.trainer.target_accuracies) {
      nlohmann::json& slot = to[json_number_text(target)];
      if (!slot.is_null() || p.value("accuracy", 0.0) < target) continue;
      slot = p["time_s"];
      to_updates[json_number_text(target)] = p.value("updates", nlohmann::json(nullptr));
    }
  }
  out["curve"] = curve;
  out["time_to_accuracy_s"] = to;
  out["updates_to_accuracy"] = to_updates;
  out["final_accuracy"] = curve.empty() ? nlohmann::json(nullptr) : curve.back()["accuracy"];
}

// trainer.task "chain": samples through the whole model per second after the warm-up. A block
// call of `batch` samples is one layer's share of a pass (two with the backward), so
//   samples_per_s = block samples / (layers * phases) / (duration_s - warmup_s).
void add_throughput(const Scenario& s, const MoeOptions& o, const MetricsSink& sink,
                    nlohmann::json& out) {
  const double window = s.duration_s - o.chain.warmup_s;
  const double phases = o.chain.backward ? 2.0 : 1.0;
  const double block_samples = static_cast<double>(sink.counter("moe_chain_block_samples"));
  out["throughput"] = {
      {"samples_per_s", window > 0 ? block_samples / (o.trainer.layers * phases) / window : 0.0},
      {"window_s", window},
      {"block_samples", block_samples},
      {"passes", sink.counter("moe_chain_passes")},
      {"failures", sink.counter("moe_chain_failures")},
      {"backward", o.chain.backward},
      {"batch", o.chain.batch},
      {"layers", o.trainer.layers}};
}

}  // namespace

nlohmann::json moe_summary(const Scenario& s, const MetricsSink& sink) {
  const MoeOptions& o = moe_options_of(s);
  nlohmann::json out = nlohmann::json::object();
  if (o.trainer.task == TrainerTask::kChain) {
    add_throughput(s, o, sink, out);
  } else {
    add_curve(o, sink, out);
  }
  nlohmann::json counters = nlohmann::json::object();
  for (const auto& [name, value] : sink.counters()) {
    if (name.rfind("moe_", 0) == 0 || name.rfind("dmoe_", 0) == 0) counters[name] = value;
  }
  out["counters"] = counters;
  nlohmann::json pct = nlohmann::json::object();
  for (const char* n :
       {"moe_batch_size", "moe_queue_s", "moe_compute_s", "moe_beam_search_s",
        "moe_client_forward_s", "moe_client_backward_s", "dmoe_step_s", "dmoe_staleness",
        "dmoe_loss", "moe_update_staleness", "moe_chain_pass_s"}) {
    if (sink.sample_count(n) == 0) continue;
    pct[n] = {{"p50", sink.percentile(n, 0.5)},
              {"p90", sink.percentile(n, 0.9)},
              {"mean", sink.sample_mean(n)},
              {"count", static_cast<int64_t>(sink.sample_count(n))}};
  }
  out["distributions"] = pct;
  return out;
}

// "moe: test accuracy 0.78 at t=58 s (23 trainers)", or for the chain trainers
// "moe: 812 block calls, 3 passes, 0 failures".
std::string moe_progress(const Scenario& s, const MetricsSink& sink) {
  char line[160];
  if (moe_options_of(s).trainer.task == TrainerTask::kChain) {
    std::snprintf(line, sizeof line, "moe: %lld samples through blocks, %lld passes, %lld failures",
                  static_cast<long long>(sink.counter("moe_chain_block_samples")),
                  static_cast<long long>(sink.counter("moe_chain_passes")),
                  static_cast<long long>(sink.counter("moe_chain_failures")));
    return line;
  }
  const nlohmann::json curve = moe_summary(s, sink)["curve"];
  if (curve.empty() || !curve.back().contains("accuracy")) return "";
  std::snprintf(line, sizeof line, "moe: test accuracy %.3f at t=%.0f s (%d trainers)",
                curve.back()["accuracy"].get<double>(), curve.back()["time_s"].get<double>(),
                static_cast<int>(curve.back()["trainers"].get<int64_t>()));
  return line;
}

}  // namespace crowdtrain::moe
