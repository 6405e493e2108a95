// Our wire codec against LibTorch's serialisers, on one 4 MiB float32 tensor (1M floats), plus a
// 100-byte message. Bytes/s counts the tensor's bytes (or the small message's wire size) per round.
//   ./codec_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <sstream>

#include "core/message.h"
#include "core/status.h"
#include "core/tensor_codec.h"

namespace crowdtrain {
namespace {

constexpr int64_t kFloats = 1 << 20;
constexpr int64_t kTensorBytes = kFloats * 4;

at::Tensor big_tensor() {
  torch::manual_seed(7);
  return torch::randn({kFloats});
}

Message tensor_message(const at::Tensor& t) {
  Message m(MsgType::kTransferRequest);
  m.request_id = 42;
  m.add_tensor(kTagPayload, to_tensor_data(t));
  return m;
}

// Sender: tensor -> TensorData (one copy) -> wire bytes. Receiver: decode -> from_blob view.
void BM_Ours_EncodeDecode(benchmark::State& state) {
  const at::Tensor t = big_tensor();
  for (auto _ : state) {
    std::vector<uint8_t> wire = encode(tensor_message(t));
    auto m = decode(Bytes::adopt(std::move(wire)));
    auto back = from_tensor_data(*m->tensor(kTagPayload));
    benchmark::DoNotOptimize(back->data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kTensorBytes);
}
BENCHMARK(BM_Ours_EncodeDecode);

void BM_Ours_EncodeOnly(benchmark::State& state) {
  const Message m = tensor_message(big_tensor());
  for (auto _ : state) {
    std::vector<uint8_t> wire = encode(m);
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetBytesProcessed(state.iterations() * kTensorBytes);
}
BENCHMARK(BM_Ours_EncodeOnly);

void BM_Ours_DecodeOnlyZeroCopy(benchmark::State& state) {
  const Bytes wire = Bytes::adopt(encode(tensor_message(big_tensor())));
  for (auto _ : state) {
    auto m = decode(wire);
    auto back = from_tensor_data(*m->tensor(kTagPayload));
    benchmark::DoNotOptimize(back->data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kTensorBytes);
}
BENCHMARK(BM_Ours_DecodeOnlyZeroCopy);

void BM_TorchSave_Load_Stringstream(benchmark::State& state) {
  const at::Tensor t = big_tensor();
  for (auto _ : state) {
    std::stringstream ss;
    torch::save(t, ss);
    at::Tensor back;
    torch::load(back, ss);
    benchmark::DoNotOptimize(back.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kTensorBytes);
}
BENCHMARK(BM_TorchSave_Load_Stringstream);

void BM_TorchSave_Only(benchmark::State& state) {
  const at::Tensor t = big_tensor();
  for (auto _ : state) {
    std::stringstream ss;
    torch::save(t, ss);
    benchmark::DoNotOptimize(ss.tellp());
  }
  state.SetBytesProcessed(state.iterations() * kTensorBytes);
}
BENCHMARK(BM_TorchSave_Only);

void BM_TorchPickle_SaveLoad(benchmark::State& state) {
  const at::Tensor t = big_tensor();
  for (auto _ : state) {
    std::vector<char> bytes = torch::pickle_save(t);
    at::Tensor back = torch::pickle_load(bytes).toTensor();
    benchmark::DoNotOptimize(back.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kTensorBytes);
}
BENCHMARK(BM_TorchPickle_SaveLoad);

// A typical control message: a few ids and a short string, about 100 bytes on the wire.
void BM_Ours_SmallMessage_EncodeDecode(benchmark::State& state) {
  Message m(MsgType::kProbeRequest);
  m.request_id = 123456789;
  m.add_u64(16, 1).add_u64(17, 2).add_i64(18, -3).add_f64(19, 0.25).add_bytes(20,
                                                                              "peer-0042/expert.3");
  const size_t size = m.wire_size();
  for (auto _ : state) {
    std::vector<uint8_t> wire = encode(m);
    auto back = decode(Bytes::adopt(std::move(wire)));
    benchmark::DoNotOptimize(back->request_id);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
  state.counters["wire_bytes"] = static_cast<double>(size);
}
BENCHMARK(BM_Ours_SmallMessage_EncodeDecode);

}  // namespace
}  // namespace crowdtrain

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
