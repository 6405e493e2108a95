#include "core/averaging/compression.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "core/allocator.h"
#include "core/averaging/compression_kernels.h"
#include "core/tensor_codec.h"

namespace crowdtrain {
namespace {

constexpr double kFp16Max = 65504.0;
constexpr double kUniformRangeSigmas = 6.0;

// Population mean and standard deviation: on the CPU one pass of ours (float64 block sums);
// elsewhere LibTorch's reduction.
std::pair<double, double> mean_std(const at::Tensor& x) {
  if (x.numel() == 0) return {0.0, 0.0};
  const at::Tensor xf = x.reshape(-1).to(torch::kFloat32).contiguous();
  if (xf.is_cpu()) {
    const kernels::MeanStd m = kernels::mean_std(xf.data_ptr<float>(), xf.numel());
    return {m.mean, m.std};
  }
  auto [std, mean] = torch::std_mean(xf, /*unbiased=*/false);
  return {mean.item<double>(), std.item<double>()};
}

// A message buffer for `n` elements of `dtype`, uninitialised; `*ptr` is where to write them.
template <typename T>
TensorData wire_buffer(DType dtype, int64_t n, T** ptr) {
  TensorData d;
  d.dtype = dtype;
  d.shape = {n};
  std::shared_ptr<uint8_t> buf = alloc_bytes(static_cast<size_t>(n) * sizeof(T));
  *ptr = reinterpret_cast<T*>(buf.get());
  d.bytes.data = buf.get();
  d.bytes.size = static_cast<size_t>(n) * sizeof(T);
  d.bytes.owner = std::move(buf);
  return d;
}

// float32[256]: sums / counts, `fallback[k]` for an empty bin.
TensorData codebook(const double* sums, const int64_t* counts, const double* fallback) {
  float* book = nullptr;
  TensorData d = wire_buffer(DType::kFloat32, kQuantBins, &book);
  for (int k = 0; k < kQuantBins; ++k) {
    book[k] =
        static_cast<float>(counts[k] > 0 ? sums[k] / static_cast<double>(counts[k]) : fallback[k]);
  }
  return d;
}

// compress() of a float32 CPU tensor (flat, contiguous): each codec one pass of ours over the
// values after its statistics (core/averaging/compression_kernels.h).
void compress_cpu(const at::Tensor& x, CompressedTensor& out) {
  const float* in = x.data_ptr<float>();
  const int64_t n = x.numel();
  if (out.codec == Compression::kFloat16 || out.codec == Compression::kScaledFloat16) {
    uint16_t* h = nullptr;
    out.data = wire_buffer(DType::kFloat16, n, &h);
    if (out.codec == Compression::kFloat16) return kernels::to_half(in, n, 0.0f, 1.0f, h);
    auto [mean, std] = mean_std(x);
    out.mean = mean;
    out.scale = std::max(std, 1e-30);
    return kernels::to_half(in, n, static_cast<float>(mean), static_cast<float>(1.0 / out.scale),
                            h);
  }
  uint8_t* bins = nullptr;
  out.data = wire_buffer(DType::kUInt8, n, &bins);
  double sums[kQuantBins] = {}, fallback[kQuantBins] = {};
  int64_t counts[kQuantBins] = {};
  if (out.codec == Compression::kUniform8Bit) {
    auto [mean, std] = mean_std(x);
    double width = kUniformRangeSigmas * std / kQuantBins;
    if (!(width > 0)) width = 1.0;
    kernels::uniform_bins(in, n, static_cast<float>(mean), static_cast<float>(1.0 / width), bins,
                          sums, counts);
    for (int k = 0; k < kQuantBins; ++k) fallback[k] = (k - kQuantBins / 2) * width + mean;
  } else {  // quantile 8-bit; an empty bin (repeated borders) falls back to its lower border
    const at::Tensor borders = n > 0 ? quantile_borders(x) : torch::zeros({kQuantBins - 1});
    const float* b = borders.data_ptr<float>();
    kernels::quantile_bins(in, n, b, static_cast<int>(borders.numel()), bins, sums, counts);
    for (int k = 0; k < kQuantBins; ++k) fallback[k] = b[std::max(k - 1, 0)];
  }
  out.codebook = codebook(sums, counts, fallback);
}

// Each bin's average value; an empty bin gets `fallback[k]` (off the CPU: two bincounts).
at::Tensor bin_averages(const at::Tensor& x, const at::Tensor& bins, const at::Tensor& fallback) {
  const at::Tensor sums =
      torch::bincount(bins, x.to(torch::kFloat32), kQuantBins).to(torch::kFloat64);
  const at::Tensor counts = torch::bincount(bins, {}, kQuantBins).to(torch::kFloat64);
  const at::Tensor avg = sums / counts.clamp_min(1.0);
  return torch::where(counts > 0, avg, fallback.to(avg.options())).to(torch::kFloat32);
}

// A floating-point LibTorch type for `d`, or nullopt (the compressors work on floats only).
std::optional<c10::ScalarType> float_type(DType d) {
  const std::optional<c10::ScalarType> t = to_scalar_type(d);
  if (t && c10::isFloatingType(*t)) return t;
  return std::nullopt;
}

// round((x - mean) / width) + 128, clamped to [0, 255], as uint8, in float32 arithmetic (round
// half to even): LibTorch ops, off the CPU (kernels::uniform_bins there).
at::Tensor uniform_bins(const at::Tensor& x, double mean, double width) {
  return (x.reshape(-1).to(torch::kFloat32) - mean)
      .mul_(1.0 / width)
      .round_()
      .add_(kQuantBins / 2)
      .clamp_(0, kQuantBins - 1)
      .to(torch::kUInt8);
}

}  // namespace

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kFloat16:
      return "fp16";
    case Compression::kScaledFloat16:
      return "meanstd_fp16";
    case Compression::kUniform8Bit:
      return "uniform8";
    case Compression::kQuantile8Bit:
      return "quantile8";
  }
  return "?";
}

Result<Compression> compression_from_wire(uint64_t v) {
  if (v > static_cast<uint64_t>(Compression::kQuantile8Bit)) {
    return Status::error("unknown compression " + std::to_string(v));
  }
  return static_cast<Compression>(v);
}

Result<Compression> compression_from_name(const std::string& name) {
  for (uint64_t v = 0; v <= static_cast<uint64_t>(Compression::kQuantile8Bit); ++v) {
    if (name == compression_name(static_cast<Compression>(v))) return static_cast<Compression>(v);
  }
  return Status::error("unknown compression '" + name +
                       "' (none, fp16, meanstd_fp16, uniform8, quantile8)");
}

double wire_bytes_per_element(Compression c, DType original) {
  switch (c) {
    case Compression::kNone:
      return static_cast<double>(dtype_size(static_cast<uint8_t>(original)));
    case Compression::kFloat16:
    case Compression::kScaledFloat16:
      return 2.0;
    case Compression::kUniform8Bit:
    case Compression::kQuantile8Bit:
      return 1.0;
  }
  return 4.0;
}

size_t wire_overhead_bytes(Compression c) {
  const bool quantized = c == Compression::kUniform8Bit || c == Compression::kQuantile8Bit;
  return 128 + (quantized ? kQuantBins * sizeof(float) : 0);  // fields and headers, codebook
}

at::Tensor bin_indices(const at::Tensor& x, const at::Tensor& borders) {
  CT_CHECK(borders.dim() == 1 && borders.numel() < kQuantBins);
  const at::Tensor xf = x.reshape(-1).to(torch::kFloat32).contiguous();
  if (!xf.is_cpu()) {
    return torch::bucketize(xf, borders.to(xf.device()), /*out_int32=*/true)
        .clamp(0, kQuantBins - 1)
        .to(torch::kUInt8);
  }
  // On the CPU the pass compress() makes (a grid over the borders; kernels::quantile_bins).
  const at::Tensor b = borders.to(torch::kFloat32).contiguous().cpu();
  at::Tensor out = torch::empty({xf.numel()}, xf.options().dtype(torch::kUInt8));
  double sums[kQuantBins] = {};
  int64_t counts[kQuantBins] = {};
  kernels::quantile_bins(xf.data_ptr<float>(), xf.numel(), b.data_ptr<float>(),
                         static_cast<int>(b.numel()), out.data_ptr<uint8_t>(), sums, counts);
  return out;
}

at::Tensor quantile_borders(const at::Tensor& flat) {
  const at::Tensor x = flat.reshape(-1).to(torch::kFloat32);
  const int64_t n = x.numel();
  CT_CHECK(n > 0);
  const int64_t stride = (n + kQuantileSample - 1) / kQuantileSample;
  const at::Tensor sorted = std::get<0>(x.slice(0, 0, n, stride).sort());
  const int64_t s = sorted.numel();
  // Nearest-rank quantiles k/256, k = 1..255.
  const at::Tensor ranks =
      (torch::arange(1, kQuantBins, x.options().dtype(torch::kFloat64)) * (s - 1) / kQuantBins)
          .round()
          .to(torch::kLong);
  return sorted.index_select(0, ranks);
}

CompressedTensor compress(const at::Tensor& t, Compression c) {
  CT_CHECK(t.is_floating_point());
  torch::NoGradGuard no_grad;
  const at::Tensor x = t.detach().reshape(-1);
  CompressedTensor out;
  out.codec = c;
  if (c != Compression::kNone && x.is_cpu() && x.scalar_type() == torch::kFloat32) {
    compress_cpu(x.contiguous(), out);
    return out;
  }
  switch (c) {
    case Compression::kNone:
      out.data = to_tensor_data(x);
      break;
    case Compression::kFloat16:
      out.data = to_tensor_data(x.clamp(-kFp16Max, kFp16Max).to(torch::kFloat16));
      break;
    case Compression::kScaledFloat16: {
      auto [mean, std] = mean_std(x);
      const double scale = std::max(std, 1e-30);
      out.mean = mean;
      out.scale = scale;
      out.data = to_tensor_data((x.to(torch::kFloat32) - mean)
                                    .mul_(1.0 / scale)
                                    .clamp_(-kFp16Max, kFp16Max)
                                    .to(torch::kFloat16));
      break;
    }
    case Compression::kUniform8Bit: {
      auto [mean, std] = mean_std(x);
      double width = kUniformRangeSigmas * std / kQuantBins;
      if (!(width > 0)) width = 1.0;
      const at::Tensor bins = uniform_bins(x, mean, width);
      const at::Tensor centres =
          (torch::arange(kQuantBins, x.options().dtype(torch::kFloat64)) - kQuantBins / 2) * width +
          mean;
      out.data = to_tensor_data(bins);
      out.codebook = to_tensor_data(bin_averages(x, bins, centres));
      break;
    }
    case Compression::kQuantile8Bit: {
      if (x.numel() == 0) {
        out.data = to_tensor_data(torch::zeros({0}, x.options().dtype(torch::kUInt8)));
        out.codebook =
            to_tensor_data(torch::zeros({kQuantBins}, x.options().dtype(torch::kFloat32)));
        break;
      }
      const at::Tensor borders = quantile_borders(x);
      const at::Tensor bins = bin_indices(x, borders);
      // An empty bin (repeated borders) falls back to its lower border.
      const at::Tensor fallback = torch::cat({borders.slice(0, 0, 1), borders});
      out.data = to_tensor_data(bins);
      out.codebook = to_tensor_data(bin_averages(x, bins, fallback));
      break;
    }
  }
  return out;
}

Result<at::Tensor> decompress(const CompressedTensor& c, Compression expect, DType want,
                              int64_t expect_numel) {
  torch::NoGradGuard no_grad;
  if (c.codec != expect) {
    return Status::error(std::string("codec ") + compression_name(c.codec) + ", expected " +
                         compression_name(expect));
  }
  DType data_dtype = want;
  if (c.codec == Compression::kFloat16 || c.codec == Compression::kScaledFloat16) {
    data_dtype = DType::kFloat16;
  } else if (c.codec == Compression::kUniform8Bit || c.codec == Compression::kQuantile8Bit) {
    data_dtype = DType::kUInt8;
  }
  if (c.data.dtype != data_dtype) return Status::error("data dtype does not match the codec");
  if (c.data.shape.size() != 1 || c.data.numel() != expect_numel) {
    return Status::error("data has " + std::to_string(c.data.numel()) + " elements, expected " +
                         std::to_string(expect_numel));
  }
  auto data = from_tensor_data(c.data);
  if (!data.ok()) return data.status();
  const auto want_type_or = float_type(want);
  if (!want_type_or) return Status::error("decompress: the wanted dtype is not floating");
  const c10::ScalarType want_type = *want_type_or;
  const bool half = c.codec == Compression::kFloat16 || c.codec == Compression::kScaledFloat16;
  if (half && c.codec == Compression::kScaledFloat16 &&
      (!std::isfinite(c.mean) || !std::isfinite(c.scale))) {
    return Status::error("non-finite mean or scale");
  }
  if (half && want_type == torch::kFloat32 && data->is_cpu()) {  // one pass of ours
    const at::Tensor h = data->contiguous();
    at::Tensor out = torch::empty({h.numel()}, torch::kFloat32);
    kernels::from_half(reinterpret_cast<const uint16_t*>(h.data_ptr()), h.numel(),
                       c.codec == Compression::kScaledFloat16, static_cast<float>(c.scale),
                       static_cast<float>(c.mean), out.data_ptr<float>());
    return out;
  }
  switch (c.codec) {
    case Compression::kNone:
    case Compression::kFloat16:
      return data->to(want_type);
    case Compression::kScaledFloat16:  // mean and scale checked above
      return data->to(torch::kFloat32).mul_(c.scale).add_(c.mean).to(want_type);
    case Compression::kUniform8Bit:
    case Compression::kQuantile8Bit: {
      if (c.codebook.dtype != DType::kFloat32 || c.codebook.shape.size() != 1 ||
          c.codebook.numel() != kQuantBins) {
        return Status::error("codebook is not float32[256]");
      }
      auto book = from_tensor_data(c.codebook);
      if (!book.ok()) return book.status();
      // A lookup per byte (the wire's tensors are on the CPU): index_select would first widen
      // every index to int64.
      const at::Tensor idx = data->reshape(-1).contiguous();
      const at::Tensor table = book->contiguous();
      at::Tensor out = torch::empty({idx.numel()}, torch::kFloat32);
      const uint8_t* in = idx.data_ptr<uint8_t>();
      const float* lut = table.data_ptr<float>();
      float* o = out.data_ptr<float>();
      for (int64_t i = 0, n = idx.numel(); i < n; ++i) o[i] = lut[in[i]];
      return out.to(want_type);
    }
  }
  return Status::error("unknown codec");
}

void add_compressed(Message& msg, CompressedTensor c) {
  msg.add_u64(kTagCodec, static_cast<uint64_t>(c.codec));
  msg.add_tensor(kTagCodecData, std::move(c.data));
  if (c.codec == Compression::kScaledFloat16) {
    msg.add_f64(kTagCodecMean, c.mean);
    msg.add_f64(kTagCodecScale, c.scale);
  }
  if (c.codec == Compression::kUniform8Bit || c.codec == Compression::kQuantile8Bit) {
    msg.add_tensor(kTagCodecBook, std::move(c.codebook));
  }
}

Result<CompressedTensor> read_compressed(const Message& msg) {
  CompressedTensor c;
  auto codec = msg.u64(kTagCodec);
  if (!codec.ok()) return codec.status();
  auto kind = compression_from_wire(*codec);
  if (!kind.ok()) return kind.status();
  c.codec = *kind;
  auto data = msg.tensor(kTagCodecData);
  if (!data.ok()) return data.status();
  c.data = std::move(*data);
  if (c.codec == Compression::kScaledFloat16) {
    auto mean = msg.f64(kTagCodecMean);
    auto scale = msg.f64(kTagCodecScale);
    if (!mean.ok()) return mean.status();
    if (!scale.ok()) return scale.status();
    c.mean = *mean;
    c.scale = *scale;
  }
  if (c.codec == Compression::kUniform8Bit || c.codec == Compression::kQuantile8Bit) {
    auto book = msg.tensor(kTagCodecBook);
    if (!book.ok()) return book.status();
    c.codebook = std::move(*book);
  }
  return c;
}

}  // namespace crowdtrain
