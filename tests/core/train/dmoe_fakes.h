// In-process stand-ins for the DMoE client side, for the trainer's tests: FakeExperts holds small
// real residual experts (x + W2 ReLU(W1 x)) per uid that never change; FakeFinder answers with
// the brute-force top-k of the whole grid; FakeCaller runs the experts and can drop chosen ones in
// forward or backward, return a non-finite output, or fail the whole call. Both answer through
// the Runtime's scheduler after a fixed latency, as the real ones do. Single-threaded.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/moe/gating.h"
#include "core/moe/mixture.h"

namespace at {
class Tensor;
}

namespace crowdtrain::train::testing {

class FakeExperts {
 public:
  // Experts "<prefix>.i.j..." for every grid point of every prefix, drawn after manual_seed(seed).
  FakeExperts(const std::vector<std::string>& prefixes, const std::vector<int64_t>& grid, int64_t d,
              int64_t inner, uint64_t seed);
  ~FakeExperts();
  // The expert's output on x [rows, d], differentiable in x.
  at::Tensor apply(const std::string& uid, const at::Tensor& x) const;
  bool has(const std::string& uid) const { return params_.count(uid) > 0; }

 private:
  std::map<std::string, std::vector<at::Tensor>> params_;  // W1, b1, W2, b2
};

class FakeFinder final : public moe::ExpertFinder {
 public:
  FakeFinder(Runtime& rt, std::string prefix, std::vector<int64_t> grid, PeerId server,
             Time latency)
      : rt_(rt),
        prefix_(std::move(prefix)),
        grid_(std::move(grid)),
        server_(server),
        latency_(latency) {}
  void find(std::vector<std::vector<std::vector<double>>> scores, size_t k, Done done) override;
  std::optional<Status> error;  // when set, every find fails with it
  int64_t calls = 0;

 private:
  Runtime& rt_;
  std::string prefix_;
  std::vector<int64_t> grid_;
  PeerId server_;
  Time latency_;
};

class FakeCaller final : public moe::MixtureCaller {
 public:
  FakeCaller(Runtime& rt, const FakeExperts& experts, Time latency)
      : rt_(rt), experts_(experts), latency_(latency) {}
  void forward(const TensorData& inputs, const std::vector<std::vector<moe::ExpertRef>>& chosen,
               Done done) override;
  void backward(const TensorData& inputs, std::vector<moe::ExpertCall> calls,
                std::vector<TensorData> grad_outputs, Done done) override;

  std::set<std::string> drop_forward, drop_backward, nan_forward;  // by uid
  std::optional<Status> forward_error, backward_error;
  bool hang_forward = false;  // forward never answers (a caller whose time-out is broken)
  uint32_t k_min = 1;
  // What the trainer sent: the latest gradient of each expert's output, its samples, and the
  // uids asked to run backward (cleared by the test).
  std::map<std::string, TensorData> grad_outputs_seen;
  std::map<std::string, std::vector<int64_t>> backward_samples;
  TensorData last_inputs;  // of the latest forward
  int64_t forward_calls = 0, backward_calls = 0;

 private:
  Runtime& rt_;
  const FakeExperts& experts_;
  Time latency_;
};

}  // namespace crowdtrain::train::testing
