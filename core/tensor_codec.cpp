// LibTorch <-> TensorData. Outgoing tensors are copied once into a buffer the message owns (so a
// later in-place update of the tensor cannot change a message in flight); incoming tensors are
// views over the received bytes that keep the buffer alive through the storage's deleter.
#include "core/tensor_codec.h"

#include <torch/torch.h>

#include <optional>
#include <string>

#include "core/allocator.h"

namespace crowdtrain {

std::optional<DType> to_dtype(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return DType::kFloat32;
    case torch::kFloat16:
      return DType::kFloat16;
    case torch::kBFloat16:
      return DType::kBFloat16;
    case torch::kFloat64:
      return DType::kFloat64;
    case torch::kInt64:
      return DType::kInt64;
    case torch::kInt32:
      return DType::kInt32;
    case torch::kUInt8:
      return DType::kUInt8;
    case torch::kInt8:
      return DType::kInt8;
    case torch::kBool:
      return DType::kBool;
    default:
      return std::nullopt;
  }
}

std::optional<c10::ScalarType> to_scalar_type(DType d) {
  switch (d) {
    case DType::kFloat32:
      return torch::kFloat32;
    case DType::kFloat16:
      return torch::kFloat16;
    case DType::kBFloat16:
      return torch::kBFloat16;
    case DType::kFloat64:
      return torch::kFloat64;
    case DType::kInt64:
      return torch::kInt64;
    case DType::kInt32:
      return torch::kInt32;
    case DType::kUInt8:
      return torch::kUInt8;
    case DType::kInt8:
      return torch::kInt8;
    case DType::kBool:
      return torch::kBool;
  }
  return std::nullopt;
}

TensorData to_tensor_data(const at::Tensor& t) {
  const std::optional<DType> dtype = to_dtype(t.scalar_type());
  if (!dtype) {
    std::fprintf(stderr, "to_tensor_data: dtype %s has no wire DType\n",
                 c10::toString(t.scalar_type()));
  }
  CT_CHECK(dtype.has_value());
  torch::NoGradGuard no_grad;
  at::Tensor src = t.detach();
  if (src.is_sparse()) src = src.to_dense();

  TensorData d;
  d.dtype = *dtype;
  d.shape = src.sizes().vec();
  const size_t size = static_cast<size_t>(src.numel()) * src.element_size();
  if (size == 0) {
    d.bytes = Bytes::adopt({});
    return d;
  }
  // Left uninitialised (copy_ writes every byte): zero-filling first cost a third of the time.
  std::shared_ptr<uint8_t> buf = alloc_bytes(size);
  // One copy for any device, layout or stride pattern: straight into the message's buffer.
  at::Tensor dst =
      torch::from_blob(buf.get(), src.sizes(), torch::TensorOptions().dtype(src.scalar_type()));
  dst.copy_(src);
  d.bytes.data = buf.get();
  d.bytes.size = size;
  d.bytes.owner = std::move(buf);
  return d;
}

Result<at::Tensor> from_tensor_data(const TensorData& d) {
  const std::optional<c10::ScalarType> st = to_scalar_type(d.dtype);
  const size_t elem = dtype_size(static_cast<uint8_t>(d.dtype));
  if (!st || elem == 0) {
    return Status::error("from_tensor_data: unknown dtype " +
                         std::to_string(static_cast<int>(d.dtype)));
  }
  uint64_t numel = 1;
  for (int64_t dim : d.shape) {
    if (dim < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel)) {
      return Status::error("from_tensor_data: impossible shape (dim " + std::to_string(dim) + ")");
    }
  }
  uint64_t want = 0;
  if (__builtin_mul_overflow(numel, uint64_t{elem}, &want) || want != d.bytes.size) {
    return Status::error("from_tensor_data: " + std::to_string(d.bytes.size) +
                         " bytes do not match " + std::to_string(numel) + " elements x " +
                         std::to_string(elem) + " bytes");
  }
  // The deleter holds a reference to the owner for as long as the tensor's storage lives.
  std::shared_ptr<const void> owner = d.bytes.owner;
  return torch::from_blob(
      const_cast<uint8_t*>(d.bytes.data), d.shape, [owner](void*) mutable { owner.reset(); },
      torch::TensorOptions().dtype(*st));
}

}  // namespace crowdtrain
