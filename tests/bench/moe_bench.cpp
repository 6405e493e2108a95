// One Learning@home training step of an "ffn" expert (Adam), samples/s: through the expert server
// (a forward and a backward request through RpcEndpoint, task pools and batching), through the
// Expert interface (forward(), then backward() which recomputes the forward, back-propagates and
// steps, with the TensorData conversions and the checks), against bare LibTorch doing the same work
// on the same module (a no-grad forward, a forward with a graph, backward, step), and bare
// LibTorch's ordinary step without the recomputation (what statelessness costs). Arguments:
// hidden, batch. Run with OMP_NUM_THREADS=1 (and OPENBLAS_CORETYPE as ./crowdtrain sets it).
//   ./moe_bench --benchmark_min_time=1 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true (one command line)
// Figures: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "core/moe/expert.h"
#include "core/moe/protocol.h"
#include "core/moe/server.h"
#include "core/moe/torch_expert.h"
#include "core/rpc.h"
#include "core/tensor_codec.h"
#include "core/train/fused_adam.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

constexpr int kWarmUpSteps = 2;

std::unique_ptr<Expert> ffn_expert(int64_t hidden) {
  auto e = make_expert(ExpertConfig().kind("ffn").hidden(hidden).seed(1));
  CT_CHECK(e.ok());
  return std::move(*e);
}

void set_counters(benchmark::State& state, int64_t batch) {
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_Expert_ForwardBackwardStep(benchmark::State& state) {
  const int64_t hidden = state.range(0), batch = state.range(1);
  auto expert = ffn_expert(hidden);
  torch::manual_seed(2);
  const TensorData x = to_tensor_data(torch::randn({batch, hidden}));
  const TensorData g = to_tensor_data(torch::randn({batch, hidden}) * 1e-3);
  // Untimed warm-up: the first steps allocate Adam's moments and the gradient buffers.
  for (int i = 0; i < kWarmUpSteps; ++i) CT_CHECK(expert->backward(x, g).ok());
  for (auto _ : state) {
    auto y = expert->forward(x);
    auto grad_in = expert->backward(x, g);
    CT_CHECK(y.ok() && grad_in.ok());
    benchmark::DoNotOptimize(grad_in->bytes.data);
  }
  set_counters(state, batch);
}

// The same module (built by the zoo, then used directly) and the same Adam settings.
void bare_torch_step(benchmark::State& state, bool recompute) {
  const int64_t hidden = state.range(0), batch = state.range(1);
  auto expert = ffn_expert(hidden);
  auto& module = dynamic_cast<TorchExpert&>(*expert).module();
  torch::optim::Adam adam(module.module().parameters(), torch::optim::AdamOptions(1e-3));
  torch::manual_seed(2);
  const at::Tensor x = torch::randn({batch, hidden});
  const at::Tensor g = torch::randn({batch, hidden}) * 1e-3;
  for (int i = 0; i < kWarmUpSteps; ++i) {
    module.forward(x.detach().requires_grad_(true)).backward(g);
    adam.step();
    adam.zero_grad();
  }
  for (auto _ : state) {
    if (recompute) {
      torch::NoGradGuard no_grad;
      benchmark::DoNotOptimize(module.forward(x).data_ptr());
    }
    const at::Tensor input = x.detach().requires_grad_(true);
    module.forward(input).backward(g);
    adam.step();
    adam.zero_grad();
    benchmark::DoNotOptimize(input.grad().data_ptr());
  }
  set_counters(state, batch);
}

// The whole server path in one process: a client's forward request, then its backward request,
// through RpcEndpoints, the ExpertServer's task pools and batching, the protocol's checks and the
// expert, on a FakeWorld with zero latency (no network, no serialisation: the engine's cost).
struct Endpoint final : PeerApp {
  explicit Endpoint(RpcEndpoint& r) : rpc(r) {}
  void start() override {}
  void on_message(PeerId from, Message msg) override { rpc.handle(from, std::move(msg)); }
  RpcEndpoint& rpc;
};

void BM_Server_ForwardBackwardStep(benchmark::State& state) {
  const int64_t hidden = state.range(0), batch = state.range(1);
  testing::FakeWorld world(1);
  world.latency = Time(0);
  auto& server_rt = world.add_peer(0);
  auto& client_rt = world.add_peer(1);
  RpcEndpoint server_rpc(server_rt), client_rpc(client_rt);
  ExpertServer server(server_rt, server_rpc, ExpertServerOptions().max_batch_size(4096));
  CT_CHECK(server.add_expert("ffn.0", ffn_expert(hidden)).ok());
  Endpoint server_app(server_rpc), client_app(client_rpc);
  world.attach(0, &server_app);
  world.attach(1, &client_app);
  torch::manual_seed(2);
  const TensorData x = to_tensor_data(torch::randn({batch, hidden}));
  const TensorData g = to_tensor_data(torch::randn({batch, hidden}) * 1e-3);
  auto step = [&] {
    bool done = false;
    client_rpc.call(0, encode_forward_request({"ffn.0", Numerics::kReal, x}), CallOptions(),
                    [&](Result<Message> fwd) {
                      CT_CHECK(fwd.ok());
                      client_rpc.call(0, encode_backward_request({"ffn.0", Numerics::kReal, x, g}),
                                      CallOptions(), [&](Result<Message> bwd) {
                                        CT_CHECK(bwd.ok());
                                        done = true;
                                      });
                    });
    while (!done) world.run_for(std::chrono::hours(1));
  };
  for (int i = 0; i < kWarmUpSteps; ++i) step();
  for (auto _ : state) step();
  set_counters(state, batch);
}

// The optimizer step alone over a residual_ffn expert's parameters (hidden 512: 6.3 M, the MNIST
// experiment's expert) with gradients from one backward at batch 4: torch::optim::Adam's step
// against the fused loop (core/train/fused_adam.h), AMSGrad as the experiment runs it.
void adam_step(benchmark::State& state, bool fused) {
  auto expert = make_expert(ExpertConfig().kind("residual_ffn").hidden(512).seed(1));
  CT_CHECK(expert.ok());
  auto& module = dynamic_cast<TorchExpert&>(**expert).module();
  torch::optim::Adam adam(module.module().parameters(),
                          torch::optim::AdamOptions(1e-4).amsgrad(true));
  torch::manual_seed(2);
  module.forward(torch::randn({4, 512})).backward(torch::randn({4, 512}) * 1e-3);
  for (int i = 0; i < kWarmUpSteps; ++i) fused ? train::fused_adam_step(adam) : (void)adam.step();
  for (auto _ : state) fused ? train::fused_adam_step(adam) : (void)adam.step();
  state.SetItemsProcessed(state.iterations());
}
void BM_AdamStep_Torch(benchmark::State& state) { adam_step(state, false); }
void BM_AdamStep_Fused(benchmark::State& state) { adam_step(state, true); }

void BM_Torch_ForwardBackwardStep(benchmark::State& state) { bare_torch_step(state, true); }
void BM_Torch_TrainStepNoRecompute(benchmark::State& state) { bare_torch_step(state, false); }

BENCHMARK(BM_Expert_ForwardBackwardStep)
    ->Args({1024, 64})
    ->Args({512, 4})
    ->Args({256, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Server_ForwardBackwardStep)
    ->Args({1024, 64})
    ->Args({256, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Torch_ForwardBackwardStep)
    ->Args({1024, 64})
    ->Args({512, 4})
    ->Args({256, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AdamStep_Torch)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AdamStep_Fused)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Torch_TrainStepNoRecompute)
    ->Args({1024, 64})
    ->Args({256, 256})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace crowdtrain::moe

BENCHMARK_MAIN();
