// What an averaging protocol averages (averager.h and the other strategies): one flat floating
// vector that belongs to somebody else — the averaging experiment's values, a model's parameters.
// The protocol takes a snapshot when its round starts, averages the snapshot with its group, and
// hands back the change (average − snapshot), so whatever the owner did to its vector meanwhile
// (local SGD steps during the round) is kept, as in hivemind's delta rule.
//
// Ownership: shared (shared_ptr) between the owner and the protocol. Single-threaded: every call
// runs on the runtime's loop. No LibTorch in this header (at::Tensor is only declared).
#pragma once

#include <functional>
#include <memory>
#include <vector>

namespace at {
class Tensor;
}

namespace crowdtrain {

class AveragingObserver;  // core/averaging/averager.h
class PeerApp;            // core/runtime.h
class AveragingSource;

// Makes the averaging app (an Averager or a GossipAverager) over a peer's source, which tells
// `observer` when each of its rounds ends (core/averaging/averaging_protocol.h builds them).
using AveragingAppFactory = std::function<std::unique_ptr<PeerApp>(
    std::shared_ptr<AveragingSource> source, std::shared_ptr<AveragingObserver> observer)>;

class AveragingSource {
 public:
  virtual ~AveragingSource() = default;
  // The vector now: flat, contiguous, floating, on any device. The protocol may keep it until its
  // round ends, so return a copy if the vector changes in place meanwhile.
  virtual at::Tensor snapshot() = 0;
  // Adds `delta` (same numel as the snapshot; any floating dtype) to the vector.
  virtual void apply_delta(const at::Tensor& delta) = 0;
  // This peer's weight in the group average (e.g. samples seen since the last round).
  virtual double weight() const { return 1.0; }
};

// A std::vector<double> as a source: the averaging experiment's one value (or vector) per peer.
class VectorSource final : public AveragingSource {
 public:
  explicit VectorSource(std::vector<double> values) : values_(std::move(values)) {}
  at::Tensor snapshot() override;                      // float64 copy
  void apply_delta(const at::Tensor& delta) override;  // wrong numel: ignored
  const std::vector<double>& values() const { return values_; }
  std::vector<double>& mutable_values() { return values_; }

 private:
  std::vector<double> values_;
};

}  // namespace crowdtrain
