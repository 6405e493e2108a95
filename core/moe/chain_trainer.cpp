// ChainTrainer (chain_trainer.h): one pass = find the missing layers' experts, forward through
// every layer in order, then (optionally) backward through them in reverse order.

#include "core/moe/chain_trainer.h"

#include <cstring>
#include <functional>
#include <string>
#include <utility>

namespace crowdtrain::moe {

namespace {
constexpr int kMaxDraws = 4;  // lookups of one layer's expert that avoid suspected servers
}  // namespace

ChainTrainer::ChainTrainer(Runtime& rt, std::vector<ChainLayer> layers, MixtureCaller& caller,
                           ChainOptions options)
    : rt_(rt),
      layers_(std::move(layers)),
      caller_(caller),
      o_(std::move(options)),
      experts_(layers_.size()),
      inputs_(layers_.size()),
      grads_(layers_.size()),
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
  forward(0, make_batch(/*random=*/true));
}

bool ChainTrainer::suspected(PeerId server) const {
  auto it = suspects_.find(server);
  return it != suspects_.end() && it->second > rt_.now();
}

// Finds layer `layer`'s expert (a random one of the grid, a random replica); a replica on a server
// that failed recently is drawn again, up to kMaxDraws times.
void ChainTrainer::resolve(size_t layer, std::function<void()> then, int draw) {
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
                 [this, alive, layer, draw, then = std::move(then)](
                     Result<std::vector<std::vector<FoundExpert>>> found) mutable {
                   if (alive.expired()) return;
                   if (!found.ok() || found->empty() || found->front().empty()) {
                     fail(layer, found.ok() ? Status::error("no expert found") : found.status(),
                          [this, layer, then = std::move(then)]() mutable {
                            resolve(layer, std::move(then));
                          });
                     return;
                   }
                   const ExpertRef e = found->front().front().expert;
                   if (suspected(e.server) && draw + 1 < kMaxDraws) {
                     return resolve(layer, std::move(then), draw + 1);
                   }
                   experts_[layer] = e;
                   then();
                 });
}

void ChainTrainer::forward(size_t layer, TensorData x) {
  if (layer == layers_.size()) {
    o_.backward ? backward(layers_.size() - 1, make_batch(/*random=*/false)) : pass_done();
    return;
  }
  inputs_[layer] = std::move(x);
  forward_call(layer);
}

void ChainTrainer::forward_call(size_t layer) {
  if (experts_[layer].uid.empty()) return resolve(layer, [this, layer] { forward_call(layer); });
  const std::vector<std::vector<ExpertRef>> chosen(static_cast<size_t>(o_.batch),
                                                   {experts_[layer]});
  std::weak_ptr<bool> alive = alive_;
  caller_.forward(inputs_[layer], chosen,
                  [this, alive, layer](Result<std::vector<ExpertCall>> calls) {
                    if (alive.expired()) return;
                    if (!calls.ok() || calls->size() != 1 || !calls->front().output) {
                      fail(layer, calls.ok() ? Status::error("no output") : calls.status(),
                           [this, layer] { forward_call(layer); });
                      return;
                    }
                    block_done(static_cast<size_t>(o_.batch));
                    calls_[layer] = std::move(calls->front());
                    TensorData next = *calls_[layer].output;
                    forward(layer + 1, std::move(next));
                  });
}

void ChainTrainer::backward(size_t layer, TensorData grad) {
  grads_[layer] = std::move(grad);
  backward_call(layer);
}

// The backward may go to another replica than the forward did (the server is stateless).
void ChainTrainer::backward_call(size_t layer) {
  if (experts_[layer].uid.empty()) return resolve(layer, [this, layer] { backward_call(layer); });
  calls_[layer].expert = experts_[layer];
  std::weak_ptr<bool> alive = alive_;
  caller_.backward(inputs_[layer], {calls_[layer]}, {grads_[layer]},
                   [this, alive, layer](Result<std::vector<ExpertCall>> calls) {
                     if (alive.expired()) return;
                     if (!calls.ok() || calls->size() != 1 || !calls->front().grad_input) {
                       fail(layer, calls.ok() ? Status::error("no gradient") : calls.status(),
                            [this, layer] { backward_call(layer); });
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

// The layer's server is suspected for `avoid_failed`; the expert of that layer (and of every
// layer on that server) is looked up again and the same step retried after `retry` (the pass goes
// on from there, keeping its batch).
void ChainTrainer::fail(size_t layer, const Status& status, std::function<void()> again) {
  ++failures_;
  rt_.metrics().count("moe_chain_failures");
  rt_.metrics().event("moe_chain_failure", {{"layer", static_cast<int64_t>(layer)},
                                            {"uid", experts_[layer].uid},
                                            {"why", status.message()}});
  // A server that failed one call is presumed down for all of its blocks: every layer resolved to
  // it is looked up again at its next call instead of waiting for its own time-out.
  const PeerId server = experts_[layer].server;
  if (server != kNoPeer) {
    suspects_[server] = rt_.now() + o_.avoid_failed;
    for (ExpertRef& e : experts_) {
      if (e.server == server) e = ExpertRef{};
    }
  }
  experts_[layer] = ExpertRef{};
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(o_.retry, [alive, again = std::move(again)] {
    if (!alive.expired()) again();
  });
}

}  // namespace crowdtrain::moe
