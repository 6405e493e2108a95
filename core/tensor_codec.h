// Conversion between LibTorch tensors and the codec's TensorData. Kept out of message.h so that
// only the .cpp files that need LibTorch include <torch/torch.h>. Forward-declares at::Tensor.
#pragma once

#include <optional>

#include "core/message.h"
#include "core/status.h"

namespace at {
class Tensor;
}
namespace c10 {
enum class ScalarType : int8_t;
}

namespace crowdtrain {

// Copies a tensor (any device, any layout) into a contiguous CPU TensorData.
TensorData to_tensor_data(const at::Tensor& t);
// A CPU tensor over the bytes of `d` without a copy; it keeps `d.bytes.owner` alive. Errors on a
// dtype LibTorch cannot represent or on a size mismatch.
Result<at::Tensor> from_tensor_data(const TensorData& d);

// The one mapping between the codec's dtypes and LibTorch's (nullopt where the other has no match).
std::optional<DType> to_dtype(c10::ScalarType t);
std::optional<c10::ScalarType> to_scalar_type(DType d);

}  // namespace crowdtrain
