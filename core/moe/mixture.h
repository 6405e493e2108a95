// The client side of a decentralized mixture-of-experts layer, as two asynchronous interfaces the
// trainer (core/train/dmoe_trainer.h) is written against:
//   ExpertFinder  — which experts are alive and best for each sample's gating scores (beam search
//                   over the DHT: core/moe/beam_search.h);
//   MixtureCaller — the many-expert call: send each expert the samples routed to it, wait for
//                   k_min answers per sample, then at most timeout_after_k_min for the rest; and
//                   the backward of the experts that answered (core/moe/client.h, RemoteMixture).
// Both run their callbacks on the Runtime's loop, exactly once, never inside the call itself.
// No LibTorch here: tensors are the codec's TensorData ([n, sample shape...], float32).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/message.h"
#include "core/runtime.h"
#include "core/status.h"
#include "core/time.h"

namespace crowdtrain::moe {

// An expert and the server the caller will ask for it.
struct ExpertRef {
  std::string uid;  // "prefix.i.j..." (core/moe/expert_uid.h)
  PeerId server = kNoPeer;
  bool operator==(const ExpertRef& o) const { return uid == o.uid && server == o.server; }
  bool operator<(const ExpertRef& o) const {
    return uid != o.uid ? uid < o.uid : server < o.server;
  }
};

// An expert found for one sample, with its gating score (sum of its coordinates' scores).
struct FoundExpert {
  ExpertRef expert;
  double score = 0;
};

class ExpertFinder {
 public:
  using Done = std::function<void(Result<std::vector<std::vector<FoundExpert>>>)>;
  virtual ~ExpertFinder() = default;
  // scores[s][d][i]: sample s's score for coordinate i of grid dimension d. For each sample, up to
  // k alive experts with the highest scores, best first. An error (kTimedOut when the search ran
  // out of time) when the search could not finish; a sample may get fewer than k experts when
  // fewer are alive.
  virtual void find(std::vector<std::vector<std::vector<double>>> scores, size_t k, Done done) = 0;
};

struct MixtureCallOptions {
  uint32_t k_min = 1;                                  // forward: answers each sample needs
  Time forward_timeout = std::chrono::seconds(10);     // forward: the whole call's limit
  Time timeout_after_k_min = std::chrono::seconds(1);  // forward: wait for stragglers
  uint32_t backward_k_min = 1;                         // backward: answers each sample needs
  Time backward_timeout = std::chrono::seconds(10);
};

// One expert's part of a call: the samples routed to it and, after forward, its output.
struct ExpertCall {
  ExpertRef expert;
  std::vector<int64_t> samples;      // indices into the call's batch, ascending
  std::optional<TensorData> output;  // forward: [samples.size(), output shape...] when it answered
  std::optional<TensorData> grad_input;  // backward: [samples.size(), input shape...] when answered
  // forward: the expert's version in the answer (its update count); backward sends it back so the
  // server can tell how stale the update is. Absent when the server did not say.
  std::optional<uint64_t> version = std::nullopt;
};

class MixtureCaller {
 public:
  using Done = std::function<void(Result<std::vector<ExpertCall>>)>;
  virtual ~MixtureCaller() = default;
  // inputs: [n, input shape...]; chosen[s]: the experts sample s is sent to (distinct per
  // sample). Done gets one ExpertCall per distinct expert, `output` set for those that answered in
  // time with a well-formed, finite output. An error (naming the sample and the counts) when some
  // sample got fewer than min(k_min, chosen[s].size()) answers; time-outs are not errors by
  // themselves.
  virtual void forward(const TensorData& inputs, const std::vector<std::vector<ExpertRef>>& chosen,
                       Done done) = 0;
  // calls: the ExpertCalls that answered forward; grad_outputs[c]: the gradient of calls[c]'s
  // output. Done gets the calls with `grad_input` set for those that answered in time (the others
  // are treated as constants by the trainer). An error when some sample got fewer than
  // min(backward_k_min, its answered experts) answers.
  virtual void backward(const TensorData& inputs, std::vector<ExpertCall> calls,
                        std::vector<TensorData> grad_outputs, Done done) = 0;
};

}  // namespace crowdtrain::moe
