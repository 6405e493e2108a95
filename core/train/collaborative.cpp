// Collaborative training: see collaborative.h.
#include "core/train/collaborative.h"

#include <torch/torch.h>

#include <cstdio>
#include <deque>
#include <map>

#include "core/averaging/allreduce_wire.h"

namespace crowdtrain::train {
namespace {

constexpr size_t kMaxEarlyMessages = 4096;

// A progress report: "EPOCH SAMPLES", and " c" after them from a peer that cannot be called.
struct Report {
  uint64_t epoch = 0;
  int64_t samples = 0;
  bool client = false;
};

bool parse_report(const std::string& text, Report* out) {
  unsigned long long e = 0;
  long long s = 0;
  char mark[2] = {0, 0};
  const int n = std::sscanf(text.c_str(), "%llu %lld %1s", &e, &s, mark);
  if (n < 2 || s < 0 || (n == 3 && mark[0] != 'c')) return false;
  out->epoch = e;
  out->samples = s;
  out->client = n == 3;
  return true;
}

}  // namespace

struct CollaborativePeer::Round {
  uint64_t epoch = 0;
  torch::Tensor local;
  std::unique_ptr<AllReduceRound> allreduce;
  std::deque<std::pair<PeerId, Message>> early;  // all-reduce messages before the group began
};

CollaborativePeer::CollaborativePeer(Runtime& rt, CollaborativeOptions options,
                                     std::unique_ptr<LocalTrainer> trainer,
                                     std::shared_ptr<TrainingObserver> observer)
    : rt_(rt),
      options_(std::move(options)),
      trainer_(std::move(trainer)),
      observer_(std::move(observer)),
      rpc_(rt),
      state_(rt, rpc_, *trainer_, /*with_optimizer=*/true),
      alive_(std::make_shared<bool>(true)) {
  dht_ = std::make_unique<dht::DhtNode>(rt_, rpc_, dht::DhtId::random(rt_.rng()), options_.dht);
  matchmaker_ = std::make_unique<Matchmaker>(rt_, rpc_, *dht_, options_.matchmaking);
  round_ = std::make_unique<Round>();
}

CollaborativePeer::~CollaborativePeer() {
  *alive_ = false;
  if (observer_) observer_->on_gone(rt_.self());
  round_.reset();
  matchmaker_.reset();
  dht_.reset();
}

void CollaborativePeer::start() {
  state_.serve([this] { return ready_ && !syncing_; });
  rt_.schedule(options_.start_delay, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    dht_->start();
    dht_->bootstrap(options_.bootstrap, [this](Status s) {
      if (!s.ok()) rt_.metrics().event("collab_bootstrap_failed", {{"why", s.message()}});
    });
    if (!options_.join_by_download) {
      ready_ = true;
      if (observer_) observer_->on_ready(rt_, *trainer_);
      accumulate();
    }
    report();
  });
}

void CollaborativePeer::report() {
  rt_.schedule(options_.report_interval, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) report();
  });
  const std::string key = options_.key_prefix + ".progress";
  if (ready_) {
    const std::string value = std::to_string(epoch_) + " " +
                              std::to_string(trainer_->samples_accumulated()) +
                              (options_.client ? " c" : "");
    dht_->store_subkey(key, std::to_string(rt_.self()), value, rt_.now() + options_.progress_ttl,
                       [](size_t) {});
  }
  dht_->get_many(
      {key},
      [this, alive = std::weak_ptr<bool>(alive_)](std::vector<Result<dht::DhtValue>> values) {
        if (!alive.expired() && !values.empty()) on_progress(std::move(values[0]));
      },
      /*latest=*/true);
}

void CollaborativePeer::on_progress(Result<dht::DhtValue> value) {
  uint64_t latest = epoch_;
  std::vector<PeerId> ahead;
  int64_t samples = trainer_->samples_accumulated();
  if (value.ok() && value->is_dictionary) {
    for (const auto& [subkey, entry] : value->dictionary) {
      Report r;
      if (entry.expiration <= rt_.now() || !parse_report(entry.value, &r)) continue;
      const PeerId peer = static_cast<PeerId>(std::strtoul(subkey.c_str(), nullptr, 10));
      if (peer == rt_.self()) continue;
      if (r.epoch > latest) {
        latest = r.epoch;
        ahead.clear();
      }
      if (r.epoch == latest && r.epoch > epoch_ && !r.client) ahead.push_back(peer);
      if (r.epoch == epoch_) samples += r.samples;
    }
  }
  global_samples_ = samples;
  if (stepping_ || syncing_) return;
  if (latest > epoch_) return catch_up(latest, std::move(ahead));
  if (!ready_) {  // a joiner that found nobody ahead: start here
    ready_ = true;
    if (observer_) observer_->on_ready(rt_, *trainer_);
    accumulate();
    return;
  }
  if (samples >= options_.target_batch_size && trainer_->samples_accumulated() > 0) global_step();
}

void CollaborativePeer::catch_up(uint64_t epoch, std::vector<PeerId> peers) {
  syncing_ = true;
  rt_.metrics().count("collab_catch_up");
  for (size_t i = peers.size(); i > 1; --i)
    std::swap(peers[i - 1], peers[rt_.rng().uniform_int(i)]);
  if (peers.size() > 3) peers.resize(3);
  state_.download(peers, options_.state_timeout,
                  [this, epoch, alive = std::weak_ptr<bool>(alive_)](bool ok) {
                    if (alive.expired()) return;
                    syncing_ = false;
                    if (!ok) rt_.metrics().count("collab_catch_up_failed");
                    trainer_->discard_gradients();  // computed on the old parameters
                    epoch_ = epoch;
                    if (!ready_) {
                      ready_ = true;
                      if (observer_) observer_->on_ready(rt_, *trainer_);
                    }
                    accumulate();
                  });
}

void CollaborativePeer::accumulate() {
  if (!ready_ || averaging_ || syncing_ || trainer_->busy()) return;
  trainer_->accumulate(rt_, [this, alive = std::weak_ptr<bool>(alive_)](const StepStats&) {
    if (alive.expired()) return;
    rt_.metrics().count("train_steps");
    accumulate();
  });
}

void CollaborativePeer::global_step() {
  stepping_ = true;
  const uint64_t epoch = epoch_;
  rt_.metrics().event("collab_step_begin", {{"epoch", epoch}, {"global_samples", global_samples_}},
                      EventDetail::kOperation);
  matchmaker_->set_weight(static_cast<double>(trainer_->samples_accumulated()));
  matchmaker_->set_bandwidth(options_.bandwidth_mbps > 0 ? options_.bandwidth_mbps : 1.0);
  matchmaker_->set_mode(options_.mode);
  matchmaker_->look_for_group(
      options_.key_prefix + ".e" + std::to_string(epoch), epoch,
      [this, epoch](Result<AllReduceGroup> g) { on_group(epoch, std::move(g)); });
}

void CollaborativePeer::on_group(uint64_t epoch, Result<AllReduceGroup> group) {
  if (!group.ok() || group->members.size() < 2) {
    rt_.metrics().count("collab_alone");
    return finish_step(epoch, nullptr);
  }
  // The gradient is frozen from here: accumulation waits for the step. The group averages the
  // mean gradient and the parameters in one vector (weights: samples), so peers that drifted
  // apart (a split group, a missed step) are pulled back together at every step.
  averaging_ = true;
  auto round = std::make_unique<Round>();
  round->epoch = epoch;
  round->local = torch::cat({trainer_->accumulated_gradients(), trainer_->parameters()});
  round->early.swap(round_->early);
  const uint64_t gid = group->group_id;
  round->allreduce = std::make_unique<AllReduceRound>(
      rt_, std::move(group.value()), round->local, options_.allreduce,
      [this, epoch, alive = std::weak_ptr<bool>(alive_)](Result<AllReduceOutcome> r) {
        if (alive.expired()) return;
        if (!r.ok()) {
          rt_.metrics().count("collab_allreduce_failed");
          return finish_step(epoch, nullptr);
        }
        rt_.metrics().count("averaging_groups");
        const torch::Tensor averaged = round_->local + *r->delta;
        const int64_t p = trainer_->num_parameters();
        if (!trainer_->set_parameters(averaged.narrow(0, p, p)).ok()) {
          rt_.metrics().count("collab_parameters_refused");
        }
        const torch::Tensor grad = averaged.narrow(0, 0, p);
        finish_step(epoch, &grad);
      });
  round_ = std::move(round);
  round_->allreduce->start();
  std::deque<std::pair<PeerId, Message>> early;
  early.swap(round_->early);
  for (auto& [from, msg] : early) {
    if (round_->allreduce && peek_allreduce_group(msg) == gid) round_->allreduce->handle(from, msg);
  }
}

void CollaborativePeer::finish_step(uint64_t epoch, const at::Tensor* averaged) {
  if (epoch != epoch_) return;
  const bool own = averaged == nullptr;
  if (!own || trainer_->samples_accumulated() > 0) {
    const torch::Tensor g = own ? trainer_->accumulated_gradients() : *averaged;
    Status s = trainer_->apply_gradients(g);
    if (!s.ok()) {
      rt_.metrics().event("collab_step_refused", {{"epoch", epoch}, {"why", s.message()}});
      trainer_->discard_gradients();
    }
  }
  rt_.metrics().count("collab_steps");
  rt_.metrics().event("collab_step", {{"epoch", epoch}, {"averaged", !own}},
                      EventDetail::kOperation);
  ++epoch_;
  // Destroyed from a timer of our own, not inside the round's callback chain.
  rt_.schedule(Time(0), [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    auto fresh = std::make_unique<Round>();
    round_.swap(fresh);
    stepping_ = false;
    averaging_ = false;
    if (observer_) observer_->on_step(rt_);
    accumulate();
  });
}

void CollaborativePeer::on_message(PeerId from, Message msg) {
  if (is_allreduce_message(msg)) {
    if (round_->allreduce && peek_allreduce_group(msg) == round_->allreduce->group_id()) {
      round_->allreduce->handle(from, msg);
    } else if (round_->early.size() < kMaxEarlyMessages) {
      round_->early.emplace_back(from, std::move(msg));
    } else {
      rt_.metrics().count("collab_early_dropped");
    }
    return;
  }
  if (matchmaker_->on_message(from, msg)) return;
  if (!rpc_.handle(from, std::move(msg))) rt_.metrics().count("collab_unexpected_messages");
}

}  // namespace crowdtrain::train
