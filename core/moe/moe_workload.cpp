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
#include "core/invariants.h"
#include "core/moe/beam_search.h"
#include "core/moe/client.h"
#include "core/moe/declare.h"
#include "core/moe/expert_uid.h"
#include "core/moe/moe_options.h"
#include "core/moe/moe_peer.h"
#include "core/moe/server.h"
#include "core/moe/takeover.h"
#include "core/rpc.h"
#include "core/train/dataset.h"
#include "core/train/dmoe_trainer.h"
#include "core/train/mnist.h"

namespace crowdtrain::moe {

namespace {

constexpr const char* kKind = "moe";
constexpr const char* kEvalPrefix = "moe_eval_";
const MoeOptions& options_of(const Scenario& s) { return moe_options_of(s); }

// The digits every trainer reads: the training part (sharded per trainer peer) and a fixed sample
// of the test part. Shared by the simulated world's peers; each live peer loads its own.
struct MoeData final : WorkloadShared {
  train::Dataset train, test;
};

Result<std::shared_ptr<MoeData>> load_data(const Scenario& s) {
  const MoeOptions& o = options_of(s);
  auto split = train::load_mnist(o.trainer.data, o.trainer.test_fraction,
                                 derive_seed(s.seed, "moe_split"), "moe");
  if (!split.ok()) return split.status();
  train::Dataset tr = std::move(split.value().train);
  train::Dataset te = std::move(split.value().test);
  // A seeded sample in shuffled order, even when it is the whole split (which keeps label order):
  // every eval batch then holds every digit, not mostly one.
  Rng rng(derive_seed(s.seed, "moe_eval_sample"));
  std::vector<int64_t> order = train::permutation(te.size(), rng);
  order.resize(std::min<size_t>(order.size(), o.trainer.eval_samples));
  te = te.subset(order);
  if (o.trainer.standardize_inputs) {
    const train::Standardization st = train::fit_standardization(tr);
    tr = train::standardized(tr, st);
    te = train::standardized(te, st);
  }
  auto shared = std::make_shared<MoeData>();
  shared->train = std::move(tr);
  shared->test = std::move(te);
  return shared;
}

// Checkpoints go to the peer's own folder (WorkloadContext::state_dir), so that a restarted server
// resumes its experts from there.
ExpertServerOptions server_options(const MoeOptions& o, const WorkloadContext& context) {
  ExpertServerOptions so;
  so.max_batch_size(o.server.max_batch_size)
      .max_queue_samples(o.server.max_queue_samples)
      .failure_prob(o.server.failure_prob)
      .stale_updates(o.server.stale_updates)
      .max_staleness(o.server.max_staleness)
      .min_update_samples(o.server.min_update_samples)
      .numerics(o.numerics);
  if (o.server.checkpoint_interval_s > 0 && !context.state_dir.empty()) {
    so.checkpoint_dir(context.state_dir + "/experts")
        .checkpoint_interval(from_seconds(o.server.checkpoint_interval_s));
  }
  return so;
}

class ServerApp final : public MoePeer {
 public:
  ServerApp(Runtime& rt, const Scenario& s, const WorkloadContext& context,
            std::vector<std::string> uids, std::vector<GuardedExpert> guarded)
      : MoePeer(rt, s, context),
        seed_(s.seed),
        uids_(std::move(uids)),
        guarded_(std::move(guarded)),
        server_(rt, rpc_, server_options(o_, context)),
        directory_(*node_) {}

  // Builds the hosted experts; every replica of an expert starts from the same parameters.
  Status add_experts() {
    for (const std::string& uid : uids_) {
      Status st = host(uid, "");
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
            .expiration(from_seconds(o_.server.declare_expiration_s))
            .sign(o_.server.sign_declarations));
    declarer_->start();
    rt_.metrics().event("moe_server_up", {{"experts", static_cast<int64_t>(uids_.size())}});
    if (o_.server.backup_interval_s > 0 && !guarded_.empty()) start_guardian();
  }

  // Builds `uid` (its assigned seed, then `state` when given) and hosts it.
  Status host(const std::string& uid, const std::string& state) {
    if (o_.numerics == Numerics::kTiming) {
      auto info = expert_info(o_.expert);
      return info.ok() ? server_.add_expert(uid, info.value()) : info.status();
    }
    auto expert = make_expert(ExpertConfig(o_.expert).seed(derive_seed(seed_, uid)));
    if (!expert.ok()) return expert.status();
    if (!state.empty()) {  // a guardian's backup: the adopted expert resumes from it
      Status st = expert.value()->load_state(state);
      check_invariant(rt_.metrics(), st.ok(), "moe_expert_state_restored",
                      [&] { return "adopting " + uid + ": " + st.message(); });
      if (!st.ok()) return st;
    }
    return server_.add_expert(uid, std::move(expert.value()));
  }

  // Guards the experts this server backs up (moe_peer.h, guarded_experts) and adopts the orphans.
  void start_guardian() {
    ExpertGuardianOptions go;
    go.backup_interval = from_seconds(o_.server.backup_interval_s);
    go.takeover_after = from_seconds(o_.server.takeover_after_s > 0 ? o_.server.takeover_after_s
                                                                    : o_.server.declare_period_s);
    guardian_ = std::make_unique<ExpertGuardian>(
        rt_, rpc_, directory_, guarded_, go, [this](const std::string& uid, const std::string& st) {
          Status hosted = host(uid, st);
          return hosted.ok() ? declarer_->add({uid}) : hosted;
        });
    guardian_->start();
  }

  uint64_t seed_;
  std::vector<std::string> uids_;
  std::vector<GuardedExpert> guarded_;
  ExpertServer server_;
  DhtExpertDirectory directory_;
  std::unique_ptr<ExpertDeclarer> declarer_;
  std::unique_ptr<ExpertGuardian> guardian_;  // after declarer_: destroyed first
};

// The longest a training step may take: each layer's beam search, forward call and backward call
// end by their time-outs; the trainer's own compute gets a minute on top (core/invariants.h).
Time step_deadline(const MoeOptions& o) {
  const MoeClientOptions& c = o.client;
  const double per_layer = c.search_timeout_s + c.forward_timeout_s + c.backward_timeout_s;
  return from_seconds(o.trainer.layers * per_layer + 60.0);
}

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
      .amsgrad(o.trainer.amsgrad)
      .gate_norm(o.trainer.gate_norm)
      .step_deadline(step_deadline(o))
      .seed(seed);
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
      finders_.push_back(std::make_unique<BeamSearch>(rt, directory_, layer_grid(o_, l),
                                                      search_options(o_.client)));
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
      const uint64_t steps = o_.trainer.steps;
      for (auto& t : trainers_) {
        t->run(steps > 0 ? static_cast<int64_t>(steps) : std::numeric_limits<int64_t>::max(),
               nullptr, nullptr);
      }
    });
    schedule_eval();
  }

  bool evaluates() const {
    return o_.trainer.eval_peers == 0 || rt_.self() < o_.servers + o_.trainer.eval_peers;
  }

  // Updates this peer's trainers have applied so far (the local model's optimizer steps).
  int64_t updates() const {
    int64_t n = 0;
    for (const auto& t : trainers_) n += t->steps_done();
    return n;
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
    rt_.schedule(from_seconds(o_.trainer.eval_interval_s),
                 [this, k, at] { evaluate(k + 1, at + o_.trainer.eval_interval_s); });
    // Every trainer peer tells its updates at each slot (the summary adds them up: the updates
    // the swarm has made); the evaluators measure the model that has seen these.
    const int64_t updates = this->updates();
    rt_.metrics().observe(key + "peer_updates", static_cast<double>(updates));
    if (!evaluates()) return;
    trainers_.front()->evaluate(data_->test, o_.trainer.eval_samples,
                                [this, key, at, updates](const train::DmoeEvalResult& r) {
                                  if (r.samples > 0) {
                                    rt_.metrics().observe(key + "accuracy", r.accuracy);
                                    rt_.metrics().observe(key + "time_s", at);
                                  }
                                  rt_.metrics().event("moe_eval", {{"time_s", at},
                                                                   {"accuracy", r.accuracy},
                                                                   {"peer_updates", updates},
                                                                   {"samples", r.samples},
                                                                   {"failed", r.failed_samples}});
                                });
  }

  std::shared_ptr<MoeData> data_;
  DhtExpertDirectory directory_;
  RemoteMixture caller_;
  std::vector<std::unique_ptr<BeamSearch>> finders_;
  std::shared_ptr<train::DmoeLocalModel> model_;
  std::vector<std::unique_ptr<train::DmoeTrainer>> trainers_;  // last: destroyed first
};

std::shared_ptr<WorkloadShared> make_shared_data(const Scenario& s) {
  if (options_of(s).trainer.task != TrainerTask::kMnist) return nullptr;
  auto data = load_data(s);
  return data.ok() ? std::static_pointer_cast<WorkloadShared>(data.value()) : nullptr;
}

Result<std::unique_ptr<PeerApp>> make_app(const Scenario& s, Runtime& rt,
                                          const WorkloadContext& context) {
  const MoeOptions& o = options_of(s);
  const PeerId self = rt.self();
  if (self >= s.peers.count) return Status::error("moe: peer id out of range");
  if (self < o.servers) {
    if (context.client) {
      return Status::error("moe: peer " + std::to_string(self) +
                           " is an expert server (id < workload.moe.servers), which trainers must "
                           "be able to call: it cannot run as a client");
    }
    auto uids = hosted_uids(s, self);
    if (!uids.ok()) return Status::error("moe: " + uids.status().message());
    std::vector<GuardedExpert> guarded;
    if (o.server.backup_interval_s > 0) {
      auto g = guarded_experts(s, self);
      if (!g.ok()) return Status::error("moe: " + g.status().message());
      guarded = std::move(g.value());
    }
    auto app =
        std::make_unique<ServerApp>(rt, s, context, std::move(uids.value()), std::move(guarded));
    Status st = app->add_experts();
    if (!st.ok()) return st;
    return std::unique_ptr<PeerApp>(std::move(app));
  }
  if (o.trainer.task == TrainerTask::kChain) return make_chain_app(s, rt, context);
  std::shared_ptr<MoeData> data;
  if (context.shared) {
    data = context.shared_as<MoeData>();
  } else {
    auto loaded = load_data(s);
    if (!loaded.ok()) return loaded.status();
    data = loaded.value();
  }
  return std::unique_ptr<PeerApp>(std::make_unique<TrainerApp>(rt, s, context, data));
}

}  // namespace

// The liveness goal (core/invariants.h): once the faults stop, every trainer completes steps
// again (the MNIST task; the throughput chain has no goal yet).
nlohmann::json moe_liveness(const Scenario& s, const MetricsSink& sink) {
  const MoeOptions& o = options_of(s);
  if (o.trainer.task != TrainerTask::kMnist) return {{"goal", nullptr}, {"met", nullptr}};
  const int64_t trainers =
      static_cast<int64_t>(s.peers.count - o.servers) * o.trainer.trainers_per_peer;
  const int64_t steps = sink.counter(liveness_counter("dmoe_steps"));
  return {{"goal", "every trainer completes steps again: at least one successful step per trainer"},
          {"met", steps >= trainers},
          {"trainers", trainers},
          {"steps", steps},
          {"failed_steps", sink.counter(liveness_counter("dmoe_failed_steps"))}};
}

WorkloadKind moe_workload_kind() {
  WorkloadKind k;
  k.name = kKind;
  k.read = read_moe_options;
  k.check = check_moe_options;
  k.make_shared = make_shared_data;
  k.make_app = make_app;
  k.summary = moe_summary;
  k.progress = moe_progress;
  k.liveness = moe_liveness;
  k.runs_as_client = true;  // trainers call the servers; a server must be callable (make_app)
  return k;
}

}  // namespace crowdtrain::moe
