// The reader of workload.moe (MoeOptions) and its cross-section checks. docs/scenarios.md lists
// every key; keep it in step.

#include "core/moe/moe_options.h"

#include <memory>

#include "core/moe/expert_uid.h"

namespace crowdtrain::moe {

namespace {

constexpr double kMaxTimeoutS = 3600;
constexpr uint32_t kMaxK = 256;
constexpr uint32_t kMaxBatch = 1u << 20;
constexpr uint32_t kMaxLayers = 4096;

void read_grid(JsonReader& r, MoeOptions& o) {
  r.read("prefix", o.grid_prefix);
  if (!r.has("sizes")) return (void)r.take("sizes");
  std::vector<uint32_t> sizes;
  r.array("sizes", [&](const nlohmann::json& item, const std::string& path) {
    auto v = json_to_uint(item, path, NumberRange::closed(1, 65536));
    v.ok() ? sizes.push_back(static_cast<uint32_t>(v.value())) : r.absorb(v.status());
  });
  if (r.ok()) o.grid_sizes = std::move(sizes);
}

void read_expert(JsonReader& r, ExpertConfig& e) {
  std::string kind = e.kind(), script = e.script_path(), optimizer = e.optimizer();
  std::string device = e.device();
  uint64_t hidden = e.hidden(), ffn_dim = e.ffn_dim(), heads = e.heads(), seq_len = e.seq_len();
  double lr = e.lr(), momentum = e.momentum(), clip = e.max_grad_norm();
  bool fused = e.fused_step();
  r.read("kind", kind);
  r.read("hidden", hidden, NumberRange::closed(1, 1 << 20));
  r.read("ffn_dim", ffn_dim, NumberRange::closed(0, 1 << 22));
  r.read("heads", heads, NumberRange::closed(1, 1024));
  r.read("seq_len", seq_len, NumberRange::closed(0, 1 << 20));
  r.read("script_path", script);
  r.read_choice("optimizer", optimizer, {"adam", "amsgrad", "sgd"});
  r.read("lr", lr, NumberRange::positive());
  r.read("momentum", momentum, NumberRange::half_open(0, 1));
  r.read("max_grad_norm", clip, NumberRange::non_negative());
  r.read_choice("device", device, {"cpu", "cuda"});
  r.read("fused_step", fused);
  e.kind(kind).hidden(static_cast<int64_t>(hidden)).ffn_dim(static_cast<int64_t>(ffn_dim));
  e.heads(static_cast<int64_t>(heads)).seq_len(static_cast<int64_t>(seq_len)).script_path(script);
  e.optimizer(optimizer).lr(lr).momentum(momentum).max_grad_norm(clip).device(device);
  e.fused_step(fused);
}

void read_server(JsonReader& r, MoeServerOptions& s) {
  r.read("max_batch_size", s.max_batch_size, NumberRange::closed(1, kMaxBatch));
  r.read("max_queue_samples", s.max_queue_samples, NumberRange::closed(0, uint64_t{1} << 32));
  r.read("checkpoint_interval_s", s.checkpoint_interval_s, NumberRange::non_negative());
  r.read("declare_period_s", s.declare_period_s, NumberRange::positive());
  r.read("declare_expiration_s", s.declare_expiration_s, NumberRange::positive());
  r.read("sign_declarations", s.sign_declarations);
  r.read("backup_interval_s", s.backup_interval_s, NumberRange::non_negative());
  r.read("takeover_after_s", s.takeover_after_s, NumberRange::non_negative());
  r.read("failure_prob", s.failure_prob, NumberRange::half_open(0, 1));
  r.read_enum("stale_updates", s.stale_updates,
              {{"apply", StaleUpdates::kApply},
               {"scale", StaleUpdates::kScale},
               {"skip", StaleUpdates::kSkip}});
  r.read("max_staleness", s.max_staleness, NumberRange::closed(0, uint64_t{1} << 32));
  r.read("min_update_samples", s.min_update_samples, NumberRange::closed(0, uint64_t{1} << 32));
  if (r.ok() && s.declare_expiration_s <= s.declare_period_s) {
    r.fail(r.path_of("declare_expiration_s"),
           "must be > declare_period_s (" + json_number_text(s.declare_period_s) +
               "), or experts vanish between declarations, got " +
               json_number_text(s.declare_expiration_s));
  }
}

void read_client(JsonReader& r, MoeClientOptions& c) {
  const NumberRange timeout = NumberRange{0.0, kMaxTimeoutS, true, false};
  r.read("k", c.k, NumberRange::closed(1, kMaxK));
  r.read("k_min", c.k_min, NumberRange::closed(1, kMaxK));
  r.read("beam_size", c.beam_size, NumberRange::closed(0, 4096));
  r.read("forward_timeout_s", c.forward_timeout_s, timeout);
  r.read("timeout_after_k_min_s", c.timeout_after_k_min_s, NumberRange::closed(0, kMaxTimeoutS));
  r.read("backward_k_min", c.backward_k_min, NumberRange::closed(1, kMaxK));
  r.read("backward_timeout_s", c.backward_timeout_s, timeout);
  r.read("search_timeout_s", c.search_timeout_s, timeout);
  r.read("negative_cache_s", c.negative_cache_s, NumberRange::non_negative());
  if (r.ok() && c.k_min > c.k) {
    r.fail(r.path_of("k_min"),
           "must be <= k (" + std::to_string(c.k) + "), got " + std::to_string(c.k_min));
  }
  if (r.ok() && c.backward_k_min > c.k) {
    r.fail(r.path_of("backward_k_min"),
           "must be <= k (" + std::to_string(c.k) + "), got " + std::to_string(c.backward_k_min));
  }
}

void read_trainer(JsonReader& r, MoeTrainerOptions& t) {
  std::string task = "mnist";
  r.read_choice("task", task, {"mnist", "chain"});
  t.task = task == "chain" ? TrainerTask::kChain : TrainerTask::kMnist;
  r.read("trainers_per_peer", t.trainers_per_peer, NumberRange::closed(1, 1024));
  r.read("layers", t.layers, NumberRange::closed(1, kMaxLayers));
  r.read("batch_size", t.batch_size, NumberRange::closed(1, 65536));
  r.read("lr", t.lr, NumberRange::positive());
  std::string optimizer = t.amsgrad ? "amsgrad" : "adam";
  r.read_choice("optimizer", optimizer, {"adam", "amsgrad"});
  t.amsgrad = optimizer == "amsgrad";
  r.read("steps", t.steps, NumberRange::closed(0, uint64_t{1} << 40));
  r.read("eval_peers", t.eval_peers, NumberRange::closed(0, 1u << 20));
  r.read("start_s", t.start_s, NumberRange::non_negative());
  std::string data = t.data == train::MnistSource::kIdx ? "idx" : "npm";
  r.read_choice("data", data, {"npm", "idx"});
  t.data = data == "idx" ? train::MnistSource::kIdx : train::MnistSource::kNpm;
  r.read("test_fraction", t.test_fraction, NumberRange{0.0, 1.0, true, true});
  r.read("eval_samples", t.eval_samples, NumberRange::closed(1, 10000));
  r.read("standardize_inputs", t.standardize_inputs);
  r.read("gate_norm", t.gate_norm);
  r.read("eval_interval_s", t.eval_interval_s, NumberRange::positive());
  if (r.has("target_accuracies")) {
    std::vector<double> values;
    r.array("target_accuracies", [&](const nlohmann::json& item, const std::string& path) {
      auto v = json_to_double(item, path, {0.0, 1.0, true, false});
      v.ok() ? values.push_back(v.value()) : r.absorb(v.status());
    });
    if (r.ok()) t.target_accuracies = std::move(values);
  } else {
    r.take("target_accuracies");
  }
}

void read_chain(JsonReader& r, MoeChainOptions& c) {
  r.read("batch", c.batch, NumberRange::closed(1, kMaxBatch));
  r.read("backward", c.backward);
  r.read("warmup_s", c.warmup_s, NumberRange::non_negative());
  r.read("retry_s", c.retry_s, NumberRange::non_negative());
  r.read("avoid_failed_s", c.avoid_failed_s, NumberRange::non_negative());
}

void read_dht(JsonReader& r, MoeDhtOptions& d) {
  r.read("bootstrap_peers", d.bootstrap_peers, NumberRange::closed(1, 64));
  r.read("bootstrap_spread_s", d.bootstrap_spread_s, NumberRange::non_negative());
  r.read("rpc_timeout_s", d.rpc_timeout_s, NumberRange{0.0, kMaxTimeoutS, true, false});
  r.read("handoff", d.handoff);
}

}  // namespace

std::shared_ptr<const WorkloadOptions> read_moe_options(JsonReader& r) {
  auto o = std::make_shared<MoeOptions>();
  r.object("grid", [&](JsonReader& g) { read_grid(g, *o); });
  r.read("experts", o->experts);
  r.read("replicas", o->replicas, NumberRange::closed(1, 64));
  r.read("servers", o->servers, NumberRange::closed(1, 1u << 20));
  std::string numerics = "real";
  r.read_choice("numerics", numerics, {"real", "timing"});
  o->numerics = numerics == "timing" ? Numerics::kTiming : Numerics::kReal;
  r.object("expert", [&](JsonReader& e) { read_expert(e, o->expert); });
  r.object("server", [&](JsonReader& s) { read_server(s, o->server); });
  r.object("client", [&](JsonReader& c) { read_client(c, o->client); });
  r.object("trainer", [&](JsonReader& t) { read_trainer(t, o->trainer); });
  r.object("chain", [&](JsonReader& c) { read_chain(c, o->chain); });
  r.object("dht", [&](JsonReader& d) { read_dht(d, o->dht); });
  return o;
}

Status check_moe_options(const Scenario& s) {
  const auto& o = s.workload.options_of<MoeOptions>("moe");
  for (uint32_t p = 0; p < o.servers && p < s.peers.count; ++p) {
    if (s.peers.is_client(p)) {
      return json_error("peers.clients",
                        "peer " + std::to_string(p) +
                            " is an expert server (ids below workload.moe.servers), which "
                            "trainers must be able to call: it cannot be a client");
    }
  }
  const ExpertGrid grid{o.grid_prefix + "0", o.grid_sizes};
  Status st = grid.check();
  if (!st.ok()) return json_error("workload.moe.grid", st.message());
  if (o.experts > grid.count()) {
    return json_error("workload.moe.experts", "must be <= the grid's " +
                                                  std::to_string(grid.count()) + " slots, got " +
                                                  std::to_string(o.experts));
  }
  const uint64_t per_layer = o.experts == 0 ? grid.count() : o.experts;
  if (o.trainer.task == TrainerTask::kMnist && o.client.k > per_layer) {
    return json_error("workload.moe.client.k", "must be <= the experts per layer (" +
                                                   std::to_string(per_layer) + "), got " +
                                                   std::to_string(o.client.k));
  }
  if (o.servers >= s.peers.count) {
    return json_error("workload.moe.servers", "must leave at least one trainer: < peers.count (" +
                                                  std::to_string(s.peers.count) + "), got " +
                                                  std::to_string(o.servers));
  }
  if (o.replicas > o.servers) {
    return json_error("workload.moe.replicas", "must be <= servers (" + std::to_string(o.servers) +
                                                   "), got " + std::to_string(o.replicas));
  }
  if (o.trainer.task == TrainerTask::kMnist && o.numerics == Numerics::kTiming) {
    return json_error("workload.moe.numerics",
                      "the MNIST trainer (trainer.task \"mnist\") needs \"real\"; timing-only "
                      "numerics run with trainer.task \"chain\"");
  }
  if (o.trainer.task == TrainerTask::kChain && o.chain.warmup_s >= s.duration_s) {
    return json_error("workload.moe.chain.warmup_s",
                      "must be < duration_s (" + json_number_text(s.duration_s) +
                          "), or no call is counted, got " + json_number_text(o.chain.warmup_s));
  }
  if (o.trainer.task == TrainerTask::kChain && o.chain.batch > o.server.max_batch_size) {
    return json_error("workload.moe.chain.batch", "must be <= server.max_batch_size (" +
                                                      std::to_string(o.server.max_batch_size) +
                                                      "), got " + std::to_string(o.chain.batch));
  }
  auto info = expert_info(o.expert);
  if (!info.ok()) return json_error("workload.moe.expert", info.status().message());
  if (info->input_shape != info->output_shape) {
    return json_error("workload.moe.expert",
                      "a DMoE layer needs an expert whose output has the "
                      "shape of its input");
  }
  return Status();
}

}  // namespace crowdtrain::moe
