// The message both worlds carry, and its binary codec.
//
// A Message is a type, a request id (for RPC correlation), flags, and an ordered list of typed
// fields, each with a tag; a tag may repeat (a list). Field kinds: unsigned and signed integers,
// doubles, byte strings, tensors (dtype + shape + raw bytes, no LibTorch here: see
// core/tensor_codec.h), and filler (N bytes of zeros that exist only as a length in memory: probes
// and transfers use it so the simulator can charge a 64 MB message without allocating it).
//
// Wire format (little-endian), version 1:
//   header (24 bytes): magic "CT", version u8, flags u8, type u16, reserved u16 (0),
//                      request_id u64, field_count u32, body_bytes u32
//   body: field_count fields, each: tag u16, kind u8, then
//     kU64/kI64/kF64: 8 bytes; kBytes: len u32 + bytes; kFiller: len u64 + len zero bytes;
//     kTensor: dtype u8, ndim u8, pad to 8, dims i64 x ndim, nbytes u64, pad so the data starts
//              at a multiple of 8 from the start of the message, data.
//   Padding and filler bytes are zeros; every offset counts from the start of the message.
// Decoding is strict and never trusts a length: a truncated, oversized, wrong-version,
// unknown-type, unknown-kind, impossible-shape or inconsistent message is an error that names the
// field and the fault.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/message_types.h"
#include "core/status.h"

namespace crowdtrain {

constexpr uint8_t kWireVersion = 1;
constexpr size_t kHeaderBytes = 24;
constexpr int kMaxTensorDims = 8;

enum MsgFlags : uint8_t { kFlagResponse = 1 };

enum class DType : uint8_t {
  kFloat32 = 1,
  kFloat16 = 2,
  kBFloat16 = 3,
  kFloat64 = 4,
  kInt64 = 5,
  kInt32 = 6,
  kUInt8 = 7,
  kInt8 = 8,
  kBool = 9,
};
// Bytes per element, or 0 for a value that is not a DType.
size_t dtype_size(uint8_t dtype);

// Bytes that stay alive as long as any holder does. A decoded tensor's bytes point into the
// received buffer (no copy); `owner` keeps that buffer alive.
struct Bytes {
  std::shared_ptr<const void> owner;
  const uint8_t* data = nullptr;
  size_t size = 0;

  static Bytes copy_of(const void* data, size_t size);
  static Bytes adopt(std::vector<uint8_t> v);
};

struct TensorData {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  Bytes bytes;  // numel * dtype_size bytes, row-major, contiguous
  int64_t numel() const;
};

struct Filler {
  uint64_t size = 0;
};

enum class FieldKind : uint8_t {
  kU64 = 1,
  kI64 = 2,
  kF64 = 3,
  kBytes = 4,
  kTensor = 5,
  kFiller = 6
};

struct Field {
  uint16_t tag = 0;
  std::variant<uint64_t, int64_t, double, std::string, TensorData, Filler> value;
  FieldKind kind() const;
};
// "u64", "i64", "f64", "bytes", "tensor" or "filler" (for error messages).
const char* field_kind_name(FieldKind k);

struct Message {
  MsgType type = MsgType::kRpcError;
  uint8_t flags = 0;
  uint64_t request_id = 0;
  std::vector<Field> fields;

  Message() = default;
  explicit Message(MsgType t) : type(t) {}

  Message& add_u64(uint16_t tag, uint64_t v);
  Message& add_i64(uint16_t tag, int64_t v);
  Message& add_f64(uint16_t tag, double v);
  Message& add_bytes(uint16_t tag, std::string v);
  Message& add_tensor(uint16_t tag, TensorData v);
  Message& add_filler(uint16_t tag, uint64_t size);

  // The first field with `tag`, checked for kind; an error names the tag and what was found.
  Result<uint64_t> u64(uint16_t tag) const;
  Result<int64_t> i64(uint16_t tag) const;
  Result<double> f64(uint16_t tag) const;
  Result<std::string> bytes(uint16_t tag) const;
  Result<TensorData> tensor(uint16_t tag) const;
  Result<uint64_t> filler(uint16_t tag) const;
  // Every field with `tag`, in order.
  std::vector<const Field*> all(uint16_t tag) const;

  bool is_response() const { return flags & kFlagResponse; }
  // Exactly the number of bytes encode() produces, computed without encoding.
  size_t wire_size() const;
};

struct CodecLimits {
  size_t max_message_bytes = 256u << 20;  // 256 MiB
  size_t max_fields = 1u << 16;
};

std::vector<uint8_t> encode(const Message& msg);
// Decodes a whole message from `bytes`. Tensor fields alias `bytes` (kept alive through its owner).
// Input that does not start at a multiple of 8 in memory is first copied to an aligned buffer, so
// decoded tensor data is always 8-byte aligned.
Result<Message> decode(const Bytes& bytes, const CodecLimits& limits = {});
// Convenience: copies `data` into a fresh buffer first (after checking the header and the size).
Result<Message> decode_copy(const uint8_t* data, size_t size, const CodecLimits& limits = {});
// For stream framing: the whole message's size, read from its first kHeaderBytes (`size` may be
// larger). Checks magic, version, reserved, type, field count and the size limit; nothing more.
Result<size_t> peek_message_size(const uint8_t* data, size_t size, const CodecLimits& limits = {});

}  // namespace crowdtrain
