// Serving and downloading a trainer's state over an RpcEndpoint (messages in state_transfer.h),
// shared by the Moshpit SGD peer and the collaborative peer. serve() answers kTrainStateRequest
// while `ready()` says the state is worth copying (else a "not ready" refusal, so the asker moves
// on); download() asks the given peers one after another (one attempt each, `timeout`) and installs
// the first valid state; a refused or malformed one is counted ("train_state_refused") with the
// reason and never installed. Counters: train_state_served, train_state_requests,
// train_state_failed, train_state_downloads; sample train_state_bytes.
//
// Ownership: borrows the Runtime, the endpoint and the trainer (all outlive it). Single-threaded.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/rpc.h"
#include "core/runtime.h"
#include "core/train/local_trainer.h"

namespace crowdtrain::train {

class StateService {
 public:
  StateService(Runtime& rt, RpcEndpoint& rpc, LocalTrainer& trainer, bool with_optimizer);
  ~StateService();
  StateService(const StateService&) = delete;
  StateService& operator=(const StateService&) = delete;

  void serve(std::function<bool()> ready);
  // `done(true)` after installing a state, `done(false)` when every peer failed; never inside.
  void download(std::vector<PeerId> peers, Time timeout, std::function<void(bool)> done);

 private:
  void attempt(size_t i);

  Runtime& rt_;
  RpcEndpoint& rpc_;
  LocalTrainer& trainer_;
  bool with_optimizer_;
  std::vector<PeerId> peers_;
  Time timeout_{0};
  std::function<void(bool)> done_;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::train
