// Collaborative training (the Moshpit paper's ALBERT run, hivemind's Optimizer + ProgressTracker):
// peers accumulate gradients over local batches without stepping, and report their progress
// (epoch, samples accumulated) to the DHT every report_interval as a subkey of one progress key
// (expiring after a few intervals). When the samples that the peers of the current epoch report add
// up to target_batch_size, each peer matchmakes under the epoch's key (it keeps accumulating while
// it looks for a group) and all-reduces its mean gradient together with its parameters, weighted by
// its samples (so the group gets the mean gradient over all samples), installs the averaged
// parameters, applies one optimizer step with the averaged gradient and starts the next epoch.
// Averaging the gradient makes the step the large-batch step hivemind's Optimizer takes
// (use_local_updates=False); averaging the parameters as well (the paper's ALBERT run) pulls peers
// that drifted apart (a split group, a peer alone at a step) back together at every step. A peer
// that sees a later epoch in the progress reports (it missed a step, or it has just joined)
// downloads the state from a peer of that epoch (state_service.h) and discards its gradients.
//
// Ownership: borrows the Runtime; owns the trainer, its RpcEndpoint, DHT node and matchmaker;
// shares the observer. Single-threaded, on the runtime's loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/averaging/allreduce.h"
#include "core/averaging/matchmaking.h"
#include "core/dht/node.h"
#include "core/rpc.h"
#include "core/train/moshpit_sgd.h"
#include "core/train/state_service.h"

namespace crowdtrain::train {

struct CollaborativeOptions {
  int64_t target_batch_size = 4096;  // samples over all peers per optimizer step
  Time report_interval = std::chrono::seconds(1);
  Time progress_ttl = std::chrono::seconds(3);  // a report expires after this
  std::string key_prefix = "collab";
  std::vector<PeerId> bootstrap;  // DHT peers pinged first
  Time start_delay{0};
  bool join_by_download = false;    // a joiner: download the state before accumulating
  std::vector<PeerId> state_peers;  // joiners ask these first
  Time state_timeout = std::chrono::seconds(3);
  // Advertised in matchmaking for load balancing (as AveragerOptions: Mb/s, 0 = unknown).
  double bandwidth_mbps = 0.0;
  AveragingMode mode = AveragingMode::kNode;
  // It cannot be called (behind NAT): its progress reports say so, and nobody catches up from it.
  // (The maker also sets the matchmaking and DHT options' client flags and mode = kClient.)
  bool client = false;
  MatchmakingOptions matchmaking;
  AllReduceOptions allreduce;
  dht::DhtOptions dht;
};

class CollaborativePeer final : public PeerApp {
 public:
  CollaborativePeer(Runtime& rt, CollaborativeOptions options,
                    std::unique_ptr<LocalTrainer> trainer,
                    std::shared_ptr<TrainingObserver> observer);
  ~CollaborativePeer() override;

  void start() override;
  void on_message(PeerId from, Message msg) override;

  LocalTrainer& trainer() { return *trainer_; }
  uint64_t epoch() const { return epoch_; }
  int64_t global_samples() const { return global_samples_; }  // as last reported by the DHT

 private:
  struct Round;
  void report();
  void on_progress(Result<dht::DhtValue> value);
  void catch_up(uint64_t epoch, std::vector<PeerId> peers);
  void accumulate();
  void global_step();
  void on_group(uint64_t epoch, Result<AllReduceGroup> group);
  void finish_step(uint64_t epoch, const at::Tensor* averaged);

  Runtime& rt_;
  CollaborativeOptions options_;
  std::unique_ptr<LocalTrainer> trainer_;
  std::shared_ptr<TrainingObserver> observer_;
  RpcEndpoint rpc_;
  std::unique_ptr<dht::DhtNode> dht_;
  std::unique_ptr<Matchmaker> matchmaker_;
  StateService state_;
  std::unique_ptr<Round> round_;
  uint64_t epoch_ = 0;
  int64_t global_samples_ = 0;
  bool ready_ = false;      // state settled: accumulating and serving it
  bool stepping_ = false;   // matchmaking / all-reduce of a global step in progress
  bool averaging_ = false;  // all-reduce in progress: accumulation waits
  bool syncing_ = false;    // downloading a later epoch's state
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::train
