// Moshpit SGD peer: see moshpit_sgd.h.
#include "core/train/moshpit_sgd.h"

#include <torch/torch.h>

#include "core/averaging/averager.h"

namespace crowdtrain::train {

TrainerSource::TrainerSource(LocalTrainer& trainer, bool with_optimizer)
    : trainer_(trainer), with_optimizer_(with_optimizer) {}

at::Tensor TrainerSource::snapshot() {
  torch::Tensor params = trainer_.parameters();  // a copy
  if (!with_optimizer_) return params;
  return torch::cat({params, trainer_.optimizer_state()});
}

void TrainerSource::apply_delta(const at::Tensor& delta) {
  const int64_t p = trainer_.num_parameters();
  const torch::Tensor stats = with_optimizer_ ? trainer_.optimizer_state() : torch::Tensor();
  const int64_t s = with_optimizer_ ? stats.numel() : 0;
  if (!delta.defined() || delta.dim() != 1 || delta.numel() != p + s ||
      !torch::isfinite(delta).all().item<bool>()) {
    ++refused_;
    return;
  }
  const torch::Tensor d = delta.to(torch::kFloat32);
  Status st = trainer_.set_parameters(trainer_.parameters() + d.narrow(0, 0, p));
  if (st.ok() && s > 0) {
    // Averaged statistics must stay valid: Adam's second moments are non-negative.
    torch::Tensor next = stats + d.narrow(0, p, s);
    if (trainer_.options().optimizer() == OptimizerKind::kAdam) {
      next.narrow(0, s / 2, s - s / 2).clamp_min_(0.0);
    }
    st = trainer_.set_optimizer_state(next, trainer_.adam_step());
  }
  if (!st.ok()) {
    ++refused_;
    return;
  }
  ++applied_;
  samples_ = 0;
}

double TrainerSource::weight() const { return samples_ > 0 ? static_cast<double>(samples_) : 1.0; }

class MoshpitSgdPeer::RoundEnds final : public AveragingObserver {
 public:
  RoundEnds(MoshpitSgdPeer& peer, std::weak_ptr<bool> alive) : peer_(peer), alive_(alive) {}
  void on_round_end(Runtime&, uint64_t) override {
    if (!alive_.expired()) peer_.on_round_end();
  }
  bool stop_requested() const override { return false; }

 private:
  MoshpitSgdPeer& peer_;
  std::weak_ptr<bool> alive_;
};

MoshpitSgdPeer::MoshpitSgdPeer(Runtime& rt, MoshpitSgdOptions options,
                               std::unique_ptr<LocalTrainer> trainer,
                               const AveragingAppFactory& make_averaging,
                               std::shared_ptr<TrainingObserver> observer)
    : rt_(rt),
      options_(std::move(options)),
      trainer_(std::move(trainer)),
      observer_(std::move(observer)),
      rpc_(rt),
      state_(rt, rpc_, *trainer_, options_.average_optimizer_state),
      alive_(std::make_shared<bool>(true)) {
  CT_CHECK(trainer_ != nullptr);
  source_ = std::make_shared<TrainerSource>(*trainer_, options_.average_optimizer_state);
  averaging_ = make_averaging(source_, std::make_shared<RoundEnds>(*this, alive_));
  CT_CHECK(averaging_ != nullptr);
}

MoshpitSgdPeer::~MoshpitSgdPeer() {
  *alive_ = false;
  if (observer_) observer_->on_gone(rt_.self());
  averaging_.reset();  // it holds the source, which refers to the trainer
}

void MoshpitSgdPeer::start() {
  state_.serve([this] { return training_; });
  if (options_.download_state) {
    state_.download(options_.state_peers, options_.state_timeout,
                    [this, alive = std::weak_ptr<bool>(alive_)](bool ok) {
                      if (alive.expired()) return;
                      downloaded_ = ok;
                      if (!ok) {
                        rt_.metrics().count("train_state_from_init");
                        rt_.metrics().event(
                            "train_state_from_init",
                            {{"attempts", static_cast<uint64_t>(options_.state_peers.size())}});
                      }
                      begin_training();
                    });
    return;
  }
  rt_.schedule(options_.start_delay, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) begin_training();
  });
}

void MoshpitSgdPeer::begin_training() {
  if (training_) return;
  training_ = true;
  if (observer_) observer_->on_ready(rt_, *trainer_);
  averaging_->start();
  next_step();
}

void MoshpitSgdPeer::next_step() {
  if (options_.steps_per_round > 0 && steps_this_round_ >= options_.steps_per_round) {
    waiting_for_round_ = true;  // tau steps taken: the round's end resumes
    return;
  }
  ++steps_this_round_;
  trainer_->step(rt_, [this, alive = std::weak_ptr<bool>(alive_)](const StepStats& s) {
    if (alive.expired()) return;
    source_->add_samples(trainer_->options().batch_size());
    rt_.metrics().count("train_steps");
    if (s.step % 50 == 0) rt_.metrics().observe("train_loss", s.loss);
    if (observer_) observer_->on_step(rt_);
    next_step();
  });
}

void MoshpitSgdPeer::on_round_end() {
  steps_this_round_ = 0;
  if (!waiting_for_round_) return;
  waiting_for_round_ = false;
  rt_.metrics().count("train_waited_for_round");
  next_step();
}

void MoshpitSgdPeer::on_message(PeerId from, Message msg) {
  if (msg.type == MsgType::kTrainStateRequest || msg.type == MsgType::kTrainStateResponse) {
    if (!rpc_.handle(from, std::move(msg))) rt_.metrics().count("train_unexpected_messages");
    return;
  }
  averaging_->on_message(from, std::move(msg));
}

}  // namespace crowdtrain::train
