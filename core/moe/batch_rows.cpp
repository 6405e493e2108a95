// The batch helpers of core/moe/protocol.h that need no message: shapes, the finiteness scan, and
// row gathers, slices and concatenations of float32 batches (memcpy, no LibTorch).
#include <cmath>
#include <cstring>

#include "core/moe/protocol.h"

namespace crowdtrain::moe {
namespace {

constexpr size_t kFloatBytes = 4;

}  // namespace

const char* numerics_name(Numerics n) { return n == Numerics::kReal ? "real" : "timing"; }

TensorData shape_only(std::vector<int64_t> shape) {
  TensorData t;
  t.dtype = DType::kFloat32;
  t.shape = std::move(shape);
  return t;
}

std::vector<int64_t> sample_shape_of(const TensorData& t) {
  if (t.shape.empty()) return {};
  return std::vector<int64_t>(t.shape.begin() + 1, t.shape.end());
}

uint64_t float_bytes(const std::vector<int64_t>& shape) {
  uint64_t n = kFloatBytes;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

bool all_finite(const TensorData& t) {
  CT_CHECK(t.dtype == DType::kFloat32);
  const size_t n = t.bytes.size / kFloatBytes;
  for (size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, t.bytes.data + i * kFloatBytes, kFloatBytes);
    if (!std::isfinite(v)) return false;
  }
  return true;
}

TensorData gather_rows(const TensorData& t, const std::vector<int64_t>& rows) {
  CT_CHECK(!t.shape.empty() && t.shape[0] > 0);
  const size_t row_bytes = t.bytes.size / static_cast<size_t>(t.shape[0]);
  std::vector<uint8_t> out(row_bytes * rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CT_CHECK(rows[i] >= 0 && rows[i] < t.shape[0]);
    if (row_bytes > 0) {
      std::memcpy(out.data() + i * row_bytes, t.bytes.data + rows[i] * row_bytes, row_bytes);
    }
  }
  TensorData g;
  g.dtype = t.dtype;
  g.shape = t.shape;
  g.shape[0] = static_cast<int64_t>(rows.size());
  g.bytes = Bytes::adopt(std::move(out));
  return g;
}

TensorData slice_rows(const TensorData& t, int64_t begin, int64_t count) {
  CT_CHECK(!t.shape.empty() && begin >= 0 && count >= 0 && begin + count <= t.shape[0]);
  const size_t row_bytes = t.shape[0] ? t.bytes.size / static_cast<size_t>(t.shape[0]) : 0;
  TensorData s;
  s.dtype = t.dtype;
  s.shape = t.shape;
  s.shape[0] = count;
  s.bytes.owner = t.bytes.owner;
  s.bytes.data = t.bytes.data ? t.bytes.data + begin * row_bytes : nullptr;
  s.bytes.size = static_cast<size_t>(count) * row_bytes;
  return s;
}

TensorData concat_rows(const std::vector<const TensorData*>& parts) {
  CT_CHECK(!parts.empty());
  if (parts.size() == 1) return *parts[0];
  size_t total = 0;
  int64_t rows = 0;
  for (const TensorData* p : parts) {
    CT_CHECK(p->dtype == parts[0]->dtype && sample_shape_of(*p) == sample_shape_of(*parts[0]));
    total += p->bytes.size;
    rows += p->shape[0];
  }
  std::vector<uint8_t> out(total);
  size_t at = 0;
  for (const TensorData* p : parts) {
    if (p->bytes.size) std::memcpy(out.data() + at, p->bytes.data, p->bytes.size);
    at += p->bytes.size;
  }
  TensorData c;
  c.dtype = parts[0]->dtype;
  c.shape = parts[0]->shape;
  c.shape[0] = rows;
  c.bytes = Bytes::adopt(std::move(out));
  return c;
}

}  // namespace crowdtrain::moe
