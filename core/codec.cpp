// The wire layout of a Message (see core/message.h): wire_size, encode and the strict decoder.
// Every offset is counted from the start of the message, so tensor data lands on a multiple of 8.
// The decoder checks every length against the bytes left before reading or allocating anything.
#include <cstring>
#include <string>
#include <utility>

#include "core/message.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

namespace crowdtrain {
namespace {

constexpr size_t kFieldHeadBytes = 3;                   // tag u16, kind u8
constexpr size_t kMinFieldBytes = kFieldHeadBytes + 4;  // an empty kBytes field

size_t align8(size_t off) { return (off + 7) & ~size_t{7}; }

// The offset just past field `f` when it starts at offset `off`.
size_t field_end(size_t off, const Field& f) {
  off += kFieldHeadBytes;
  switch (f.kind()) {
    case FieldKind::kU64:
    case FieldKind::kI64:
    case FieldKind::kF64:
      return off + 8;
    case FieldKind::kBytes:
      return off + 4 + std::get<std::string>(f.value).size();
    case FieldKind::kFiller:
      return off + 8 + std::get<Filler>(f.value).size;
    case FieldKind::kTensor: {
      const TensorData& t = std::get<TensorData>(f.value);
      off = align8(off + 2) + 8 * t.shape.size() + 8;
      return align8(off) + t.bytes.size;
    }
  }
  return off;
}

// Appends to a buffer reserved at its final size, so nothing is written twice.
class Writer {
 public:
  explicit Writer(size_t capacity) { out_.reserve(capacity); }

  void put(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  template <typename T>
  void put_le(T v) {
    put(&v, sizeof v);
  }
  void zeros(size_t n) { out_.insert(out_.end(), n, uint8_t{0}); }
  void pad8() { zeros(align8(out_.size()) - out_.size()); }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

void encode_field(Writer& w, const Field& f) {
  w.put_le<uint16_t>(f.tag);
  w.put_le<uint8_t>(static_cast<uint8_t>(f.kind()));
  switch (f.kind()) {
    case FieldKind::kU64:
      w.put_le(std::get<uint64_t>(f.value));
      break;
    case FieldKind::kI64:
      w.put_le(std::get<int64_t>(f.value));
      break;
    case FieldKind::kF64:
      w.put_le(std::get<double>(f.value));
      break;
    case FieldKind::kBytes: {
      const std::string& s = std::get<std::string>(f.value);
      CT_CHECK(s.size() <= UINT32_MAX);
      w.put_le<uint32_t>(static_cast<uint32_t>(s.size()));
      w.put(s.data(), s.size());
      break;
    }
    case FieldKind::kFiller: {
      const uint64_t n = std::get<Filler>(f.value).size;
      w.put_le<uint64_t>(n);
      w.zeros(n);
      break;
    }
    case FieldKind::kTensor: {
      const TensorData& t = std::get<TensorData>(f.value);
      const size_t elem = dtype_size(static_cast<uint8_t>(t.dtype));
      CT_CHECK(elem != 0);
      CT_CHECK(t.shape.size() <= static_cast<size_t>(kMaxTensorDims));
      uint64_t numel = 1;
      for (int64_t d : t.shape) {
        CT_CHECK(d >= 0);
        CT_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel));
      }
      CT_CHECK(numel * elem == t.bytes.size);  // the tensor's bytes match its shape and dtype
      w.put_le<uint8_t>(static_cast<uint8_t>(t.dtype));
      w.put_le<uint8_t>(static_cast<uint8_t>(t.shape.size()));
      w.pad8();
      for (int64_t d : t.shape) w.put_le<int64_t>(d);
      w.put_le<uint64_t>(t.bytes.size);
      w.pad8();
      if (t.bytes.size > 0) w.put(t.bytes.data, t.bytes.size);
      break;
    }
  }
}

// Reads little-endian values; the caller checks `left()` first.
class Reader {
 public:
  Reader(const uint8_t* base, size_t pos, size_t end) : base_(base), pos_(pos), end_(end) {}

  size_t pos() const { return pos_; }
  size_t left() const { return end_ - pos_; }
  const uint8_t* here() const { return base_ + pos_; }
  void skip(size_t n) { pos_ += n; }
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, base_ + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }

 private:
  const uint8_t* base_;
  size_t pos_;
  size_t end_;
};

// Index of the first nonzero byte in p[0, n), or n.
size_t first_nonzero(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) break;
  }
  for (; i < n; ++i) {
    if (p[i] != 0) return i;
  }
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Decodes one field at the reader's position; errors name the field and the fault.
class FieldDecoder {
 public:
  FieldDecoder(Reader& r, const Bytes& in, size_t index) : r_(r), in_(in), index_(index) {}

  Status decode(Field* out) {
    if (r_.left() < kFieldHeadBytes) {
      return Status::error("decode: field " + std::to_string(index_) +
                           ": truncated field header (" + std::to_string(r_.left()) +
                           " bytes left in the body)");
    }
    tag_ = r_.get<uint16_t>();
    out->tag = tag_;
    const uint8_t kind = r_.get<uint8_t>();
    switch (static_cast<FieldKind>(kind)) {
      case FieldKind::kU64:
        if (!need(8, "u64")) return status_;
        out->value = r_.get<uint64_t>();
        return status_;
      case FieldKind::kI64:
        if (!need(8, "i64")) return status_;
        out->value = r_.get<int64_t>();
        return status_;
      case FieldKind::kF64:
        if (!need(8, "f64")) return status_;
        out->value = r_.get<double>();
        return status_;
      case FieldKind::kBytes: {
        if (!need(4, "bytes length")) return status_;
        const uint32_t len = r_.get<uint32_t>();
        if (!need(len, "bytes")) return status_;
        out->value = std::string(reinterpret_cast<const char*>(r_.here()), len);
        r_.skip(len);
        return status_;
      }
      case FieldKind::kFiller:
        return decode_filler(out);
      case FieldKind::kTensor:
        return decode_tensor(out);
    }
    return fail("unknown field kind " + std::to_string(kind));
  }

 private:
  Status fail(const std::string& what) {
    status_ = Status::error("decode: field " + std::to_string(index_) + " (tag " +
                            std::to_string(tag_) + "): " + what);
    return status_;
  }
  bool need(uint64_t n, const char* what) {
    if (n <= r_.left()) return true;
    fail(std::string(what) + " of " + std::to_string(n) + " bytes runs past the end of the body (" +
         std::to_string(r_.left()) + " bytes left)");
    return false;
  }
  // Skips padding up to the next multiple of 8, which must be zeros.
  bool pad8(const char* where) {
    const size_t n = align8(r_.pos()) - r_.pos();
    if (!need(n, where)) return false;
    if (first_nonzero(r_.here(), n) != n) {
      fail(std::string("nonzero ") + where);
      return false;
    }
    r_.skip(n);
    return true;
  }

  Status decode_filler(Field* out) {
    if (!need(8, "filler length")) return status_;
    const uint64_t len = r_.get<uint64_t>();
    if (!need(len, "filler")) return status_;
    const size_t bad = first_nonzero(r_.here(), len);
    if (bad != len) {
      return fail("filler byte " + std::to_string(bad) + " of " + std::to_string(len) +
                  " is nonzero (" + std::to_string(r_.here()[bad]) + ")");
    }
    r_.skip(len);
    out->value = Filler{len};
    return status_;
  }

  Status decode_tensor(Field* out) {
    if (!need(2, "tensor dtype and ndim")) return status_;
    const uint8_t dtype = r_.get<uint8_t>();
    const uint8_t ndim = r_.get<uint8_t>();
    const size_t elem = dtype_size(dtype);
    if (elem == 0) return fail("unknown tensor dtype " + std::to_string(dtype));
    if (ndim > kMaxTensorDims) {
      return fail("tensor has " + std::to_string(ndim) + " dims (at most " +
                  std::to_string(kMaxTensorDims) + ")");
    }
    if (!pad8("padding before the tensor dims")) return status_;
    if (!need(8 * size_t{ndim} + 8, "tensor dims and nbytes")) return status_;
    TensorData t;
    t.dtype = static_cast<DType>(dtype);
    t.shape.resize(ndim);
    uint64_t numel = 1;
    bool overflow = false;
    for (int i = 0; i < ndim; ++i) {
      const int64_t d = r_.get<int64_t>();
      if (d < 0) {
        return fail("tensor dim " + std::to_string(i) + " is negative (" + std::to_string(d) + ")");
      }
      t.shape[i] = d;
      overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
    }
    const uint64_t nbytes = r_.get<uint64_t>();
    uint64_t want = 0;
    if (overflow || numel > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(numel, uint64_t{elem}, &want)) {
      return fail("tensor shape " + shape_str(t.shape) + " x " + std::to_string(elem) +
                  " bytes overflows");
    }
    if (want != nbytes) {
      return fail("tensor nbytes " + std::to_string(nbytes) + " does not match shape " +
                  shape_str(t.shape) + " x " + std::to_string(elem) + " bytes (" +
                  std::to_string(want) + ")");
    }
    if (!pad8("padding before the tensor data")) return status_;
    if (!need(nbytes, "tensor data")) return status_;
    t.bytes.owner = in_.owner;
    t.bytes.data = r_.here();
    t.bytes.size = nbytes;
    r_.skip(nbytes);
    out->value = std::move(t);
    return status_;
  }

  Reader& r_;
  const Bytes& in_;
  size_t index_;
  uint16_t tag_ = 0;
  Status status_;
};

struct Header {
  uint8_t flags = 0;
  uint16_t type = 0;
  uint64_t request_id = 0;
  uint32_t field_count = 0;
  uint32_t body_bytes = 0;
};

Result<Header> decode_header(const uint8_t* data, size_t size, const CodecLimits& limits) {
  if (size < kHeaderBytes) {
    return Status::error("decode: truncated header (" + std::to_string(size) + " bytes, need " +
                         std::to_string(kHeaderBytes) + ")");
  }
  Reader r(data, 0, kHeaderBytes);
  const uint8_t m0 = r.get<uint8_t>(), m1 = r.get<uint8_t>();
  if (m0 != 'C' || m1 != 'T') {
    return Status::error("decode: bad magic (bytes " + std::to_string(m0) + " " +
                         std::to_string(m1) + ", want \"CT\")");
  }
  const uint8_t version = r.get<uint8_t>();
  if (version != kWireVersion) {
    return Status::error("decode: unsupported wire version " + std::to_string(version) +
                         " (this build speaks " + std::to_string(kWireVersion) + ")");
  }
  Header h;
  h.flags = r.get<uint8_t>();
  h.type = r.get<uint16_t>();
  const uint16_t reserved = r.get<uint16_t>();
  h.request_id = r.get<uint64_t>();
  h.field_count = r.get<uint32_t>();
  h.body_bytes = r.get<uint32_t>();
  if (reserved != 0) {
    return Status::error("decode: reserved header field is " + std::to_string(reserved) +
                         " (must be 0)");
  }
  if (!is_known_msg_type(h.type)) {
    return Status::error("decode: unknown message type " + std::to_string(h.type));
  }
  const uint64_t total = uint64_t{kHeaderBytes} + h.body_bytes;
  if (total > limits.max_message_bytes) {
    return Status::error("decode: message of " + std::to_string(total) +
                         " bytes exceeds the limit of " + std::to_string(limits.max_message_bytes));
  }
  if (h.field_count > limits.max_fields) {
    return Status::error("decode: too many fields (" + std::to_string(h.field_count) + ", limit " +
                         std::to_string(limits.max_fields) + ")");
  }
  if (uint64_t{h.field_count} * kMinFieldBytes > h.body_bytes) {
    return Status::error("decode: " + std::to_string(h.field_count) + " fields cannot fit in " +
                         std::to_string(h.body_bytes) + " body bytes");
  }
  return h;
}

}  // namespace

size_t Message::wire_size() const {
  size_t off = kHeaderBytes;
  for (const Field& f : fields) off = field_end(off, f);
  return off;
}

std::vector<uint8_t> encode(const Message& msg) {
  CT_CHECK(is_known_msg_type(static_cast<uint16_t>(msg.type)));
  CT_CHECK(msg.fields.size() <= UINT32_MAX);
  const size_t total = msg.wire_size();
  CT_CHECK(total - kHeaderBytes <= UINT32_MAX);
  Writer w(total);
  w.put("CT", 2);
  w.put_le<uint8_t>(kWireVersion);
  w.put_le<uint8_t>(msg.flags);
  w.put_le<uint16_t>(static_cast<uint16_t>(msg.type));
  w.put_le<uint16_t>(0);
  w.put_le<uint64_t>(msg.request_id);
  w.put_le<uint32_t>(static_cast<uint32_t>(msg.fields.size()));
  w.put_le<uint32_t>(static_cast<uint32_t>(total - kHeaderBytes));
  for (const Field& f : msg.fields) encode_field(w, f);
  std::vector<uint8_t> out = w.take();
  CT_CHECK(out.size() == total);
  return out;
}

Result<size_t> peek_message_size(const uint8_t* data, size_t size, const CodecLimits& limits) {
  auto h = decode_header(data, size, limits);
  if (!h.ok()) return h.status();
  return kHeaderBytes + size_t{h->body_bytes};
}

Result<Message> decode(const Bytes& bytes, const CodecLimits& limits) {
  auto h = decode_header(bytes.data, bytes.size, limits);
  if (!h.ok()) return h.status();
  const size_t total = kHeaderBytes + size_t{h->body_bytes};
  if (bytes.size < total) {
    return Status::error("decode: truncated message (header says " + std::to_string(total) +
                         " bytes, have " + std::to_string(bytes.size) + ")");
  }
  if (bytes.size > total) {
    return Status::error("decode: " + std::to_string(bytes.size - total) +
                         " trailing bytes after a message of " + std::to_string(total) + " bytes");
  }
  // Tensor data is aligned relative to the message start; keep it aligned in memory too.
  if (reinterpret_cast<uintptr_t>(bytes.data) % 8 != 0) {
    return decode(Bytes::copy_of(bytes.data, bytes.size), limits);
  }
  Message msg(static_cast<MsgType>(h->type));
  msg.flags = h->flags;
  msg.request_id = h->request_id;
  msg.fields.reserve(h->field_count);  // bounded by body_bytes / kMinFieldBytes
  Reader r(bytes.data, kHeaderBytes, total);
  for (size_t i = 0; i < h->field_count; ++i) {
    Field f;
    FieldDecoder fd(r, bytes, i);
    Status s = fd.decode(&f);
    if (!s.ok()) return s;
    msg.fields.push_back(std::move(f));
  }
  if (r.left() != 0) {
    return Status::error("decode: body_bytes is " + std::to_string(h->body_bytes) + " but the " +
                         std::to_string(h->field_count) + " fields end " +
                         std::to_string(r.left()) + " bytes before it");
  }
  return msg;
}

Result<Message> decode_copy(const uint8_t* data, size_t size, const CodecLimits& limits) {
  // Check the header before copying, so an oversized or foreign message costs no allocation.
  auto h = decode_header(data, size, limits);
  if (!h.ok()) return h.status();
  Bytes view;
  view.data = data;
  view.size = size;
  if (size != kHeaderBytes + size_t{h->body_bytes}) return decode(view, limits);  // the error
  return decode(Bytes::copy_of(data, size), limits);
}

}  // namespace crowdtrain
