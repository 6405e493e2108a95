// Message, its fields and the byte buffers they share: builders and checked accessors. The wire
// layout (wire_size, encode, decode) lives in core/codec.cpp.
#include "core/message.h"

#include <cstring>
#include <utility>

namespace crowdtrain {

size_t dtype_size(uint8_t dtype) {
  switch (static_cast<DType>(dtype)) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kUInt8:
    case DType::kInt8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

Bytes Bytes::copy_of(const void* data, size_t size) {
  std::vector<uint8_t> v(size);
  if (size > 0) std::memcpy(v.data(), data, size);
  return adopt(std::move(v));
}

Bytes Bytes::adopt(std::vector<uint8_t> v) {
  auto holder = std::make_shared<const std::vector<uint8_t>>(std::move(v));
  Bytes b;
  b.data = holder->data();
  b.size = holder->size();
  b.owner = std::move(holder);
  return b;
}

int64_t TensorData::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

FieldKind Field::kind() const {
  switch (value.index()) {
    case 0:
      return FieldKind::kU64;
    case 1:
      return FieldKind::kI64;
    case 2:
      return FieldKind::kF64;
    case 3:
      return FieldKind::kBytes;
    case 4:
      return FieldKind::kTensor;
    default:
      return FieldKind::kFiller;
  }
}

const char* field_kind_name(FieldKind k) {
  switch (k) {
    case FieldKind::kU64:
      return "u64";
    case FieldKind::kI64:
      return "i64";
    case FieldKind::kF64:
      return "f64";
    case FieldKind::kBytes:
      return "bytes";
    case FieldKind::kTensor:
      return "tensor";
    case FieldKind::kFiller:
      return "filler";
  }
  return "unknown";
}

Message& Message::add_u64(uint16_t tag, uint64_t v) {
  fields.push_back(Field{tag, v});
  return *this;
}

Message& Message::add_i64(uint16_t tag, int64_t v) {
  fields.push_back(Field{tag, v});
  return *this;
}

Message& Message::add_f64(uint16_t tag, double v) {
  fields.push_back(Field{tag, v});
  return *this;
}

Message& Message::add_bytes(uint16_t tag, std::string v) {
  fields.push_back(Field{tag, std::move(v)});
  return *this;
}

Message& Message::add_tensor(uint16_t tag, TensorData v) {
  fields.push_back(Field{tag, std::move(v)});
  return *this;
}

Message& Message::add_filler(uint16_t tag, uint64_t size) {
  fields.push_back(Field{tag, Filler{size}});
  return *this;
}

namespace {

// The first field with `tag` holding alternative T, or an error that names the tag and what was
// found.
template <typename T>
Result<const T*> find_as(const Message& msg, uint16_t tag, FieldKind want) {
  for (const Field& f : msg.fields) {
    if (f.tag != tag) continue;
    if (const T* v = std::get_if<T>(&f.value)) return v;
    return Status::error("message type " + std::to_string(static_cast<int>(msg.type)) +
                         ": field tag " + std::to_string(tag) + " is " + field_kind_name(f.kind()) +
                         ", not " + field_kind_name(want));
  }
  return Status::error("message type " + std::to_string(static_cast<int>(msg.type)) +
                       ": no field with tag " + std::to_string(tag) + " (want " +
                       field_kind_name(want) + ")");
}

}  // namespace

Result<uint64_t> Message::u64(uint16_t tag) const {
  auto r = find_as<uint64_t>(*this, tag, FieldKind::kU64);
  if (!r.ok()) return r.status();
  return **r;
}

Result<int64_t> Message::i64(uint16_t tag) const {
  auto r = find_as<int64_t>(*this, tag, FieldKind::kI64);
  if (!r.ok()) return r.status();
  return **r;
}

Result<double> Message::f64(uint16_t tag) const {
  auto r = find_as<double>(*this, tag, FieldKind::kF64);
  if (!r.ok()) return r.status();
  return **r;
}

Result<std::string> Message::bytes(uint16_t tag) const {
  auto r = find_as<std::string>(*this, tag, FieldKind::kBytes);
  if (!r.ok()) return r.status();
  return **r;
}

Result<TensorData> Message::tensor(uint16_t tag) const {
  auto r = find_as<TensorData>(*this, tag, FieldKind::kTensor);
  if (!r.ok()) return r.status();
  return **r;
}

Result<uint64_t> Message::filler(uint16_t tag) const {
  auto r = find_as<Filler>(*this, tag, FieldKind::kFiller);
  if (!r.ok()) return r.status();
  return (*r)->size;
}

std::vector<const Field*> Message::all(uint16_t tag) const {
  std::vector<const Field*> out;
  for (const Field& f : fields) {
    if (f.tag == tag) out.push_back(&f);
  }
  return out;
}

}  // namespace crowdtrain
