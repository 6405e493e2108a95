// RemoteMixture: the many-expert call of a mixture-of-experts layer (hivemind's _RemoteCallMany)
// over RpcEndpoint. forward() sends each distinct expert one request with the rows routed to it,
// counts answers per sample, and once every sample has min(k_min, its experts) answers waits at
// most timeout_after_k_min for the rest; forward_timeout bounds the whole call. backward() sends
// each expert that answered its rows and their output gradients, with backward_k_min,
// backward_timeout and the same straggler window. Malformed or non-finite answers count as
// failures. Borrows the Runtime and the RpcEndpoint (both outlive it). Single-threaded: callbacks
// run on the runtime's loop, exactly once, never inside forward()/backward(); destroying the
// mixture drops the calls in flight without calling back.
#pragma once

#include <memory>
#include <vector>

#include "core/moe/mixture.h"
#include "core/moe/protocol.h"
#include "core/rpc.h"

namespace crowdtrain::moe {

class RemoteMixture final : public MixtureCaller {
 public:
  // In timing numerics, batches are shape_only() TensorData (no bytes) and outputs come back so.
  RemoteMixture(Runtime& rt, RpcEndpoint& rpc, MixtureCallOptions options,
                Numerics numerics = Numerics::kReal, ProtocolLimits limits = ProtocolLimits());
  ~RemoteMixture() override;
  RemoteMixture(const RemoteMixture&) = delete;
  RemoteMixture& operator=(const RemoteMixture&) = delete;

  void forward(const TensorData& inputs, const std::vector<std::vector<ExpertRef>>& chosen,
               Done done) override;
  void backward(const TensorData& inputs, std::vector<ExpertCall> calls,
                std::vector<TensorData> grad_outputs, Done done) override;

  const MixtureCallOptions& options() const { return options_; }
  size_t in_flight() const { return in_flight_; }  // calls whose Done has not run yet

 private:
  struct Call;  // one forward or backward in flight (client.cpp)

  Status check_inputs(const TensorData& inputs, size_t rows) const;
  // Sends calls->calls[c]'s request and arms the timers; finishes at once when nothing is sent.
  void start(const std::shared_ptr<Call>& call, std::vector<Message> requests);
  void on_answer(const std::shared_ptr<Call>& call, size_t c, Result<Message> answer);
  // Why an answer is unusable ("" when it is good); sets the call's output or grad_input.
  std::string accept(Call& call, size_t c, const Message& answer);
  void count_answer(Call& call, size_t c);
  // Once every sample has enough answers: finish after at most timeout_after_k_min.
  void arm_straggler(const std::shared_ptr<Call>& call);
  void finish(const std::shared_ptr<Call>& call);
  Status shortfall(const Call& call) const;  // ok when every sample has enough answers
  void fail_soon(Done done, Status status);

  Runtime& rt_;
  RpcEndpoint& rpc_;
  MixtureCallOptions options_;
  Numerics numerics_;
  ProtocolLimits limits_;
  size_t in_flight_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::moe
