// libFuzzer target: the all-reduce wire (core/averaging/allreduce_wire.h) and compressed tensors
// (core/averaging/compression.h): a chunk's header, its compressed tensor, and its decompression
// under every codec and both dtypes. Nothing crashes; what decompresses has the element count
// asked for.
#include <cstddef>
#include <cstdint>

#include <torch/torch.h>

#include "core/averaging/allreduce_wire.h"
#include "core/averaging/compression.h"
#include "core/message.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crowdtrain;
  auto m = decode_copy(data, size);
  if (!m.ok()) return 0;
  (void)is_allreduce_message(m.value());
  (void)peek_allreduce_group(m.value());
  (void)read_chunk_header(m.value());
  auto c = read_compressed(m.value());
  if (!c.ok()) return 0;
  const int64_t numel = c->data.numel();
  for (Compression codec : {Compression::kNone, Compression::kFloat16, Compression::kScaledFloat16,
                            Compression::kUniform8Bit, Compression::kQuantile8Bit}) {
    for (DType want : {DType::kFloat32, DType::kFloat64}) {
      if (auto t = decompress(c.value(), codec, want, numel); t.ok()) {
        FUZZ_CHECK(t->numel() == numel);
      }
    }
  }
  return 0;
}
