// Wire compression of averaged tensors (hivemind's compression/), as LibTorch ops on whatever
// device holds the tensor (only to_tensor_data copies to the CPU for the wire):
//   kNone           the tensor's own dtype;
//   kFloat16        float16, clamped to its finite range;
//   kScaledFloat16  (x - mean) / std as float16, mean and std travel as scalars;
//   kUniform8Bit    256 bins of width 6 std / 256 around the mean (+-3 std), values outside clamp
//   to
//                   the end bins; the codebook (float32[256]) holds each bin's average;
//   kQuantile8Bit   256 bins between quantiles of a strided sample of at most 65,536 values; the
//                   codebook holds each bin's average.
// Pure functions, deterministic on the CPU; a CompressedTensor owns its bytes (no aliasing of the
// source). Decoding validates everything a peer could get wrong.
#pragma once

#include <cstdint>
#include <string>

#include "core/message.h"
#include "core/status.h"

namespace at {
class Tensor;
}

namespace crowdtrain {

enum class Compression : uint8_t {
  kNone = 0,
  kFloat16 = 1,
  kScaledFloat16 = 2,
  kUniform8Bit = 3,
  kQuantile8Bit = 4,
};
constexpr int kQuantBins = 256;
constexpr int64_t kQuantileSample = 65536;

// "none", "fp16", "meanstd_fp16", "uniform8", "quantile8".
const char* compression_name(Compression c);
Result<Compression> compression_from_name(const std::string& name);
Result<Compression> compression_from_wire(uint64_t v);

// Bytes per element on the wire, and the bytes a chunk carries besides its elements.
double wire_bytes_per_element(Compression c, DType original);
size_t wire_overhead_bytes(Compression c);

struct CompressedTensor {
  Compression codec = Compression::kNone;
  TensorData data;    // kNone: original dtype; fp16 kinds: float16; 8-bit kinds: uint8 bin indices
  double mean = 0.0;  // kScaledFloat16: x = data * scale + mean
  double scale = 1.0;
  TensorData codebook;  // 8-bit kinds: float32[256], the value of each bin
};

// Compresses a floating tensor (any shape; it travels flattened). CT_CHECKs a floating dtype.
CompressedTensor compress(const at::Tensor& t, Compression c);
// The flat tensor of dtype `want` (CPU) that `c` encodes. Errors: a codec other than `expect`, a
// wrong dtype or element count, a malformed codebook, non-finite scalars.
Result<at::Tensor> decompress(const CompressedTensor& c, Compression expect, DType want,
                              int64_t expect_numel);

// The 255 inner bin borders kQuantile8Bit uses for `flat` (float32, ascending). For tests.
at::Tensor quantile_borders(const at::Tensor& flat);
// The bin of every value of `x` (any floating dtype, any device) between ascending float32
// `borders` (at most 255): the number of borders strictly below the value, as uint8 — what
// torch::bucketize gives, but on the CPU a branchless search of its own (5x faster in
// averaging_bench). NaN goes to bin 0. For tests and compress().
at::Tensor bin_indices(const at::Tensor& x, const at::Tensor& borders);

// Fields of a compressed tensor inside a Message (tags 40..44), and back.
constexpr uint16_t kTagCodec = 40;
constexpr uint16_t kTagCodecData = 41;
constexpr uint16_t kTagCodecMean = 42;
constexpr uint16_t kTagCodecScale = 43;
constexpr uint16_t kTagCodecBook = 44;
void add_compressed(Message& msg, CompressedTensor c);
Result<CompressedTensor> read_compressed(const Message& msg);

}  // namespace crowdtrain
