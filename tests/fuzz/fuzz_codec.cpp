// libFuzzer target: the message codec (core/message.h), what every peer runs on every byte it
// receives. Any input: decode must return a message or an error, never crash; what it accepts
// re-encodes to the same bytes; peek_message_size agrees with decode; every tensor field converts
// to a LibTorch tensor or is refused (core/tensor_codec.h).
#include <cstddef>
#include <cstdint>

#include <torch/torch.h>

#include "core/message.h"
#include "core/tensor_codec.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crowdtrain;
  CodecLimits limits;
  limits.max_message_bytes = 1u << 20;
  limits.max_fields = 1u << 12;
  auto m = decode_copy(data, size, limits);
  auto peek = peek_message_size(data, size, limits);
  if (!m.ok()) return 0;
  FUZZ_CHECK(peek.ok() && peek.value() == size);
  const std::vector<uint8_t> again = encode(m.value());
  FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  for (const Field& f : m.value().fields) {
    if (const TensorData* t = std::get_if<TensorData>(&f.value)) (void)from_tensor_data(*t);
  }
  return 0;
}
