// ChainTrainer (chain_trainer.h): one pass = find the missing layers' experts, forward through
// every layer in order, then (optionally) backward through them in reverse order.

#include "core/moe/chain_trainer.h"

#include <cstring>
#include <string>
#include <utility>

namespace crowdtrain::moe {

ChainTrainer::ChainTrainer(Runtime& rt, std::vector<ChainLayer> layers, MixtureCaller& caller,
                           ChainOptions options)
    : rt_(rt),
      layers_(std::move(layers)),
      caller_(caller),
      o_(std::move(options)),
      experts_(layers_.size()),
      inputs_(layers_.size()),
      calls_(layers_.size()),
      alive_(std::make_shared<bool>(true)) {}

ChainTrainer::~ChainTrainer() { *alive_ = false; }

void ChainTrainer::run() { start_pass(); }

TensorData ChainTrainer::make_batch(bool random) {
  std::vector<int64_t> shape{o_.batch};
  shape.insert(shape.end(), o_.sample_shape.begin(), o_.sample_shape.end());
  if (o_.numerics == Numerics::kTiming) return shape_only(std::move(shape));
  TensorData t;
  t.shape = std::move(shape);
  const int64_t n = t.numel();
  std::vector<uint8_t> bytes(static_cast<size_t>(n) * sizeof(float));
  for (int64_t i = 0; i < n; ++i) {
    const float v = random ? static_cast<float>(rt_.rng().normal()) : 1.0f;
    std::memcpy(bytes.data() + i * sizeof(float), &v, sizeof v);
  }
  t.bytes = Bytes::adopt(std::move(bytes));
  return t;
}

void ChainTrainer::start_pass() {
  pass_start_ = rt_.now();
  // Find the first layer that has no expert yet; when all have one, run the forward.
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (experts_[l].uid.empty()) {
      resolve(l, [this] { start_pass(); });
      return;
    }
  }
  forward(0, make_batch(/*random=*/true));
}

void ChainTrainer::resolve(size_t layer, std::function<void()> then) {
  rt_.metrics().count("moe_chain_resolves");
  const ChainLayer& L = layers_[layer];
  std::vector<std::vector<double>> scores;
  for (uint32_t size : L.grid_sizes) {
    std::vector<double> dim(size);
    for (double& v : dim) v = rt_.rng().uniform01();
    scores.push_back(std::move(dim));
  }
  std::weak_ptr<bool> alive = alive_;
  L.finder->find({std::move(scores)}, 1,
                 [this, alive, layer,
                  then = std::move(then)](Result<std::vector<std::vector<FoundExpert>>> found) {
                   if (alive.expired()) return;
                   if (!found.ok() || found->empty() || found->front().empty()) {
                     fail(layer, found.ok() ? Status::error("no expert found") : found.status());
                     return;
                   }
                   experts_[layer] = found->front().front().expert;
                   then();
                 });
}

void ChainTrainer::forward(size_t layer, TensorData x) {
  if (layer == layers_.size()) {
    o_.backward ? backward(layers_.size() - 1, make_batch(/*random=*/false)) : pass_done();
    return;
  }
  inputs_[layer] = std::move(x);
  const std::vector<std::vector<ExpertRef>> chosen(static_cast<size_t>(o_.batch),
                                                   {experts_[layer]});
  std::weak_ptr<bool> alive = alive_;
  caller_.forward(inputs_[layer], chosen,
                  [this, alive, layer](Result<std::vector<ExpertCall>> calls) {
                    if (alive.expired()) return;
                    if (!calls.ok() || calls->size() != 1 || !calls->front().output) {
                      fail(layer, calls.ok() ? Status::error("no output") : calls.status());
                      return;
                    }
                    block_done(static_cast<size_t>(o_.batch));
                    calls_[layer] = std::move(calls->front());
                    TensorData next = *calls_[layer].output;
                    forward(layer + 1, std::move(next));
                  });
}

void ChainTrainer::backward(size_t layer, TensorData grad) {
  std::weak_ptr<bool> alive = alive_;
  caller_.backward(inputs_[layer], {calls_[layer]}, {std::move(grad)},
                   [this, alive, layer](Result<std::vector<ExpertCall>> calls) {
                     if (alive.expired()) return;
                     if (!calls.ok() || calls->size() != 1 || !calls->front().grad_input) {
                       fail(layer, calls.ok() ? Status::error("no gradient") : calls.status());
                       return;
                     }
                     block_done(static_cast<size_t>(o_.batch));
                     if (layer == 0) return pass_done();
                     TensorData next = *calls->front().grad_input;
                     backward(layer - 1, std::move(next));
                   });
}

void ChainTrainer::pass_done() {
  ++passes_;
  rt_.metrics().count("moe_chain_passes");
  rt_.metrics().observe("moe_chain_pass_s", to_seconds(rt_.now() - pass_start_));
  start_pass();
}

void ChainTrainer::block_done(size_t samples) {
  if (rt_.now() >= o_.warmup) {
    rt_.metrics().count("moe_chain_block_samples", static_cast<int64_t>(samples));
  }
}

// The layer's expert is looked up again before the next pass, after `retry`.
void ChainTrainer::fail(size_t layer, const Status& status) {
  ++failures_;
  rt_.metrics().count("moe_chain_failures");
  rt_.metrics().event("moe_chain_failure", {{"layer", static_cast<int64_t>(layer)},
                                            {"uid", experts_[layer].uid},
                                            {"why", status.message()}});
  experts_[layer] = ExpertRef{};
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(o_.retry, [this, alive] {
    if (!alive.expired()) start_pass();
  });
}

}  // namespace crowdtrain::moe
