// libFuzzer target: the mixture-of-experts protocol (core/moe/protocol.h): forward and backward
// requests and responses, expert state requests and responses. Bytes become a message (the
// codec), then every MoE decoder reads it; a decoded batch converts to a LibTorch tensor or is
// refused. Nothing crashes.
#include <cstddef>
#include <cstdint>

#include <torch/torch.h>

#include "core/message.h"
#include "core/moe/protocol.h"
#include "core/tensor_codec.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crowdtrain;
  using namespace crowdtrain::moe;
  auto m = decode_copy(data, size);
  if (!m.ok()) return 0;
  ProtocolLimits limits;
  limits.max_bytes = 1u << 20;
  if (auto r = decode_forward_request(m.value(), limits); r.ok()) {
    FUZZ_CHECK(r->uid.size() <= limits.max_uid_bytes);
    (void)from_tensor_data(r->inputs);
  }
  if (auto r = decode_forward_response(m.value(), limits); r.ok())
    (void)from_tensor_data(r->outputs);
  if (auto r = decode_backward_request(m.value(), limits); r.ok()) {
    (void)from_tensor_data(r->inputs);
    (void)from_tensor_data(r->grad_outputs);
  }
  if (auto r = decode_backward_response(m.value(), limits); r.ok()) {
    (void)from_tensor_data(r->grad_inputs);
  }
  (void)decode_state_request(m.value(), limits);
  (void)decode_state_response(m.value(), limits);
  return 0;
}
