// A throughput trainer (Learning@home's throughput experiment): passes batches through a chain of
// remote experts, one per layer, forward only or forward then backward, over and over, as fast as
// the servers and the network allow. Layer l's expert is found through its ExpertFinder (beam
// search over the layer's grid with random scores and k = 1, so passes spread over a grid's
// experts and replicas) once, and found again after a failed call, which is then retried with the
// same batch (a replica on a server that failed within avoid_failed is drawn again, up to 4 times);
// the other layers resolved to that server are found again at their next call.
// Calls go through a MixtureCaller (RemoteMixture: time-outs, refusals), so every block is a real
// request to an expert server over the network. In timing numerics the batches are shapes only (the
// simulator charges the bytes and the server's compute time without allocating); in real numerics
// the first layer gets random N(0, 1) inputs and each layer's output feeds the next (the backward
// pass sends all-ones output gradients down the chain). No LibTorch here.
//
// Metrics: counters moe_chain_block_samples (samples through a block, forward and backward
// counted apart, only for calls that finish at or after `warmup`), moe_chain_passes,
// moe_chain_failures, moe_chain_resolves; sample moe_chain_pass_s (seconds per whole pass).
// Single-threaded, on the Runtime's loop; the finders and the caller must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/moe/mixture.h"
#include "core/moe/protocol.h"
#include "core/runtime.h"

namespace crowdtrain::moe {

struct ChainLayer {
  ExpertFinder* finder = nullptr;
  std::vector<uint32_t> grid_sizes;  // the layer's grid (for the finder's score shape)
};

struct ChainOptions {
  int64_t batch = 16;                 // samples per pass
  std::vector<int64_t> sample_shape;  // the experts' per-sample input (= output) shape
  bool backward = false;              // also send the backward pass down the chain
  Numerics numerics = Numerics::kTiming;
  Time warmup = Time(0);                         // block calls finishing earlier are not counted
  Time retry = std::chrono::seconds(1);          // wait after a failed call, then retry it
  Time avoid_failed = std::chrono::seconds(60);  // a server whose call failed is avoided this long
};

class ChainTrainer {
 public:
  ChainTrainer(Runtime& rt, std::vector<ChainLayer> layers, MixtureCaller& caller,
               ChainOptions options);
  ~ChainTrainer();
  ChainTrainer(const ChainTrainer&) = delete;
  ChainTrainer& operator=(const ChainTrainer&) = delete;

  void run();  // starts passing batches; never stops by itself
  uint64_t passes() const { return passes_; }
  uint64_t failures() const { return failures_; }

 private:
  void start_pass();
  void resolve(size_t layer, std::function<void()> then, int draw = 0);
  bool suspected(PeerId server) const;
  void forward(size_t layer, TensorData x);
  void forward_call(size_t layer);
  void backward(size_t layer, TensorData grad);
  void backward_call(size_t layer);
  void block_done(size_t samples);
  void pass_done();
  void fail(size_t layer, const Status& status, std::function<void()> again);
  // [batch, sample_shape...]: shape only (timing), N(0, 1) (random) or all ones.
  TensorData make_batch(bool random);

  Runtime& rt_;
  std::vector<ChainLayer> layers_;
  MixtureCaller& caller_;
  ChainOptions o_;
  std::vector<ExpertRef> experts_;   // per layer; uid empty = not found yet
  std::vector<TensorData> inputs_;   // per layer: what it was given, for the backward
  std::vector<TensorData> grads_;    // per layer: the output gradient of the backward
  std::vector<ExpertCall> calls_;    // per layer: the forward call that answered
  std::map<PeerId, Time> suspects_;  // servers whose call failed, until when they are avoided
  Time pass_start_ = Time(0);
  uint64_t passes_ = 0, failures_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::moe
