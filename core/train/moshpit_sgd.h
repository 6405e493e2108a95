// Moshpit SGD peer (a PeerApp): local SGD steps back to back on a LocalTrainer (each through
// Runtime::compute), while an averaging protocol PeerApp — an Averager (Moshpit grid groups,
// all-reduce of everyone, random groups) or a GossipAverager (ring gossip, PushSum) — runs its
// rounds on its own time slots over a TrainerSource: the model's flat parameters (and, if asked,
// the optimizer statistics). A round snapshots the vector between steps and adds average −
// snapshot afterwards, so the steps taken during the round are kept. With steps_per_round (tau)
// a peer takes at most tau steps per round and then waits for the round to end.
// A joiner (download_state) first asks live peers for their state (state_transfer.h), one at a
// time with a time-out per attempt; a refused or malformed state is never installed. If nobody
// answers it trains from its own initial parameters and says so ("train_state_from_init"). Only
// then does it start training and averaging. Leavers just vanish; the protocols cope.
//
// Ownership: borrows the Runtime (outlives the peer); owns the trainer, the source (shared with
// the averaging app) and the averaging app; shares the observer. Single-threaded, on the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/averaging/source.h"
#include "core/rpc.h"
#include "core/runtime.h"
#include "core/train/local_trainer.h"
#include "core/train/state_service.h"

namespace crowdtrain {
class AveragingObserver;  // core/averaging/averager.h
}

namespace crowdtrain::train {

// The trainer's parameters (then optimizer statistics, when with_optimizer) as one flat float32
// vector. weight() = samples trained since the last applied delta (at least 1).
class TrainerSource final : public AveragingSource {
 public:
  TrainerSource(LocalTrainer& trainer, bool with_optimizer);
  at::Tensor snapshot() override;
  // Adds the delta; a wrong size or a non-finite delta is refused (counted, nothing written).
  void apply_delta(const at::Tensor& delta) override;
  double weight() const override;
  void add_samples(int64_t n) { samples_ += n; }
  int64_t deltas_applied() const { return applied_; }
  int64_t deltas_refused() const { return refused_; }

 private:
  LocalTrainer& trainer_;
  bool with_optimizer_;
  int64_t samples_ = 0;
  int64_t applied_ = 0;
  int64_t refused_ = 0;
};

// The world-level view of a training run (training_workload.h); may be null.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // The peer starts training (after its state download, if any).
  virtual void on_ready(Runtime& rt, LocalTrainer& trainer) = 0;
  // The peer finished a local step.
  virtual void on_step(Runtime& rt) = 0;
  // The peer is gone (its app is destroyed): forget its trainer.
  virtual void on_gone(PeerId peer) = 0;
};

struct MoshpitSgdOptions {
  bool average_optimizer_state = false;
  bool download_state = false;      // fetch the state from a peer before training
  std::vector<PeerId> state_peers;  // asked in this order, one attempt each
  Time state_timeout = std::chrono::seconds(3);
  Time start_delay{0};  // training starts this long after start() (no download)
  // The paper's tau: at most this many local steps per averaging round. A peer that has taken them
  // waits for the round to end (averaged, sat out or no group) before stepping on; 0 = no limit
  // (steps back to back, averaging every round_interval of time).
  uint32_t steps_per_round = 0;
};

class MoshpitSgdPeer final : public PeerApp {
 public:
  MoshpitSgdPeer(Runtime& rt, MoshpitSgdOptions options, std::unique_ptr<LocalTrainer> trainer,
                 const AveragingAppFactory& make_averaging,
                 std::shared_ptr<TrainingObserver> observer);
  ~MoshpitSgdPeer() override;

  void start() override;
  void on_message(PeerId from, Message msg) override;

  LocalTrainer& trainer() { return *trainer_; }
  TrainerSource& source() { return *source_; }
  PeerApp& averaging() { return *averaging_; }
  bool training() const { return training_; }
  bool downloaded_state() const { return downloaded_; }

 private:
  class RoundEnds;  // the AveragingObserver handed to the averaging app
  void begin_training();
  void next_step();
  void on_round_end();

  Runtime& rt_;
  MoshpitSgdOptions options_;
  std::unique_ptr<LocalTrainer> trainer_;
  std::shared_ptr<TrainerSource> source_;
  std::unique_ptr<PeerApp> averaging_;
  std::shared_ptr<TrainingObserver> observer_;
  RpcEndpoint rpc_;  // state download only; the averaging app has its own
  StateService state_;
  bool training_ = false;
  bool downloaded_ = false;
  bool waiting_for_round_ = false;  // steps_per_round taken this round
  uint32_t steps_this_round_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::train
