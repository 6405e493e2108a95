// The averaging kernels on one 16M-float (64 MiB) tensor, next to a plain memcpy and a torch copy
// of the same bytes in the same run, so the figures read as fractions of memory bandwidth.
// Bytes/s counts the float32 input (64 MiB) per iteration for every benchmark; one torch thread.
//   ./averaging_bench --benchmark_min_time=0.5
// Runs with the crowdtrain binary's allocator settings (bench_main.cpp); the codec benchmarks
// also run with large blocks on 4 KiB pages, side by side.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/averaging/accumulator.h"
#include "core/averaging/compression.h"

namespace crowdtrain {
namespace {

constexpr int64_t kFloats = 16 << 20;
constexpr int64_t kBytes = kFloats * 4;

const at::Tensor& input() {
  static const at::Tensor t = [] {
    torch::set_num_threads(1);
    torch::manual_seed(3);
    return torch::randn({kFloats});
  }();
  return t;
}

void BM_Memcpy(benchmark::State& state) {
  const at::Tensor& x = input();
  std::vector<float> dst(kFloats);
  for (auto _ : state) {
    std::memcpy(dst.data(), x.data_ptr<float>(), kBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

void BM_TorchCopy(benchmark::State& state) {
  const at::Tensor& x = input();
  at::Tensor dst = torch::empty_like(x);
  for (auto _ : state) {
    dst.copy_(x);
    benchmark::DoNotOptimize(dst.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_TorchCopy)->Unit(benchmark::kMillisecond);

// Arguments of the codec benchmarks: the codec, then whether large blocks are advised as huge
// pages (core/allocator.h; 0 = 4 KiB pages, what every fresh 64 MiB buffer paid before).
void codec_args(benchmark::internal::Benchmark* b) {
  for (int huge : {1, 0}) {
    for (int c = 0; c <= 4; ++c) b->Args({c, huge});
  }
}

std::string codec_label(Compression c, bool huge) {
  return std::string(compression_name(c)) + (huge ? "" : ", 4 KiB pages");
}

// compress(): the codec's kernels plus the one copy into the message's buffer.
void BM_Compress(benchmark::State& state) {
  const auto c = static_cast<Compression>(state.range(0));
  set_huge_blocks(state.range(1) != 0);
  const at::Tensor& x = input();
  for (auto _ : state) {
    CompressedTensor out = compress(x, c);
    benchmark::DoNotOptimize(out.data.bytes.data);
  }
  set_huge_blocks(true);
  state.SetBytesProcessed(state.iterations() * kBytes);
  state.SetLabel(codec_label(c, state.range(1) != 0));
}
BENCHMARK(BM_Compress)->Apply(codec_args)->Unit(benchmark::kMillisecond);

void BM_Decompress(benchmark::State& state) {
  const auto c = static_cast<Compression>(state.range(0));
  const CompressedTensor in = compress(input(), c);
  set_huge_blocks(state.range(1) != 0);
  for (auto _ : state) {
    auto out = decompress(in, c, DType::kFloat32, kFloats);
    benchmark::DoNotOptimize(out->data_ptr());
  }
  set_huge_blocks(true);
  state.SetBytesProcessed(state.iterations() * kBytes);
  state.SetLabel(codec_label(c, state.range(1) != 0));
}
BENCHMARK(BM_Decompress)->Apply(codec_args)->Unit(benchmark::kMillisecond);

// Quantile 8-bit's binning of 16M values into 256 bins: torch::bucketize against our branchless
// CPU search (bin_indices), the same borders, in the same run.
void BM_BinsTorchBucketize(benchmark::State& state) {
  const at::Tensor& x = input();
  const at::Tensor borders = quantile_borders(x);
  for (auto _ : state) {
    at::Tensor b = torch::bucketize(x, borders, /*out_int32=*/true).clamp(0, 255).to(torch::kUInt8);
    benchmark::DoNotOptimize(b.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_BinsTorchBucketize)->Unit(benchmark::kMillisecond);

void BM_BinsOurs(benchmark::State& state) {
  const at::Tensor& x = input();
  const at::Tensor borders = quantile_borders(x);
  for (auto _ : state) {
    at::Tensor b = bin_indices(x, borders);
    benchmark::DoNotOptimize(b.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_BinsOurs)->Unit(benchmark::kMillisecond);

// sum += w * part: reads the part and the sum, writes the sum (3 x 64 MiB of traffic).
void BM_Accumulate(benchmark::State& state) {
  const at::Tensor& x = input();
  WeightedAccumulator acc(x);
  for (auto _ : state) {
    acc.add(x, 0.7);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_Accumulate)->Unit(benchmark::kMillisecond);

void BM_AccumulateMean(benchmark::State& state) {
  const at::Tensor& x = input();
  WeightedAccumulator acc(x);
  acc.add(x, 0.7);
  for (auto _ : state) {
    at::Tensor m = acc.mean();
    benchmark::DoNotOptimize(m.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_AccumulateMean)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace crowdtrain
