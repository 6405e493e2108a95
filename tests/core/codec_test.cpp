// The wire codec (core/message.h): exact layout, round trips of every field kind, one test per
// decoding fault with its message, a seeded property test, and mutated or random input that must
// decode to an error or to a message that re-encodes to the same bytes, never crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/message.h"
#include "core/random.h"

namespace crowdtrain {
namespace {

using Buf = std::vector<uint8_t>;

TensorData make_tensor(DType dtype, std::vector<int64_t> shape, uint8_t fill_start = 0) {
  TensorData t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  std::vector<uint8_t> v(t.numel() * dtype_size(static_cast<uint8_t>(dtype)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(fill_start + i);
  t.bytes = Bytes::adopt(std::move(v));
  return t;
}

bool same_field(const Field& a, const Field& b) {
  if (a.tag != b.tag || a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case FieldKind::kU64:
      return std::get<uint64_t>(a.value) == std::get<uint64_t>(b.value);
    case FieldKind::kI64:
      return std::get<int64_t>(a.value) == std::get<int64_t>(b.value);
    case FieldKind::kF64:  // bit-exact, so NaN and -0.0 count
      return std::memcmp(&std::get<double>(a.value), &std::get<double>(b.value), 8) == 0;
    case FieldKind::kBytes:
      return std::get<std::string>(a.value) == std::get<std::string>(b.value);
    case FieldKind::kFiller:
      return std::get<Filler>(a.value).size == std::get<Filler>(b.value).size;
    case FieldKind::kTensor: {
      const auto& x = std::get<TensorData>(a.value);
      const auto& y = std::get<TensorData>(b.value);
      return x.dtype == y.dtype && x.shape == y.shape && x.bytes.size == y.bytes.size &&
             (x.bytes.size == 0 || std::memcmp(x.bytes.data, y.bytes.data, x.bytes.size) == 0);
    }
  }
  return false;
}

void expect_same(const Message& a, const Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.request_id, b.request_id);
  ASSERT_EQ(a.fields.size(), b.fields.size());
  for (size_t i = 0; i < a.fields.size(); ++i) EXPECT_TRUE(same_field(a.fields[i], b.fields[i]));
}

// Offset of field `i` in the encoding of `msg`.
size_t field_offset(const Message& msg, size_t i) {
  Message prefix = msg;
  prefix.fields.resize(i);
  return prefix.wire_size();
}

template <typename T>
void poke(Buf& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

void expect_error(const Buf& b, const std::string& want, const CodecLimits& limits = {}) {
  auto r = decode_copy(b.data(), b.size(), limits);
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << want;
  EXPECT_NE(r.error().find(want), std::string::npos) << "got: " << r.error();
}

Message every_kind() {
  Message m(MsgType::kProbeRequest);
  m.request_id = 0x0123456789ABCDEFull;
  m.flags = kFlagResponse;
  m.add_u64(1, std::numeric_limits<uint64_t>::max())
      .add_i64(2, std::numeric_limits<int64_t>::min())
      .add_f64(3, -0.0)
      .add_f64(3, std::nan(""))
      .add_bytes(4, "")
      .add_bytes(4, std::string("a\0b", 3))
      .add_tensor(5, make_tensor(DType::kFloat32, {2, 3}))
      .add_tensor(5, make_tensor(DType::kBool, {}))       // a scalar
      .add_tensor(5, make_tensor(DType::kInt64, {0, 4}))  // empty
      .add_tensor(5, make_tensor(DType::kUInt8, {1, 1, 1, 1, 1, 1, 1, 7}))
      .add_filler(6, 0)
      .add_filler(6, 1000);
  return m;
}

TEST(Codec, GoldenLayout) {
  Message m(MsgType::kProbeResponse);
  m.flags = kFlagResponse;
  m.request_id = 0x0807060504030201ull;
  m.add_u64(0x0A0B, 7).add_tensor(2, make_tensor(DType::kInt8, {3}, 0xF0));
  const Buf want = {
      'C',  'T',  1,   1, 11, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 0, 35, 0, 0, 0,  // header
      0x0B, 0x0A, 1,   7, 0,  0, 0, 0, 0, 0, 0,                                          // u64 @24
      2,    0,    5,   8, 1,            // tensor @35: tag, kind, dtype kInt8, ndim 1; at 40, no pad
      3,    0,    0,   0, 0,  0, 0, 0,  // dims
      3,    0,    0,   0, 0,  0, 0, 0,  // nbytes; the data starts at 56
      0xF0, 0xF1, 0xF2};
  EXPECT_EQ(encode(m), want);
  EXPECT_EQ(m.wire_size(), want.size());
}

TEST(Codec, RoundTripsEveryFieldKind) {
  const Message m = every_kind();
  const Buf b = encode(m);
  EXPECT_EQ(b.size(), m.wire_size());
  auto r = decode_copy(b.data(), b.size());
  ASSERT_TRUE(r.ok()) << r.error();
  expect_same(m, *r);
  EXPECT_TRUE(r->is_response());
  EXPECT_EQ(*r->u64(1), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*r->i64(2), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(std::signbit(*r->f64(3)));
  EXPECT_EQ(*r->bytes(4), "");
  EXPECT_EQ(r->tensor(5)->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(*r->filler(6), 0u);
  EXPECT_EQ(r->all(5).size(), 4u);
  EXPECT_EQ(std::get<std::string>(r->all(4)[1]->value), std::string("a\0b", 3));
  EXPECT_EQ(encode(*r), b);
}

TEST(Codec, EmptyMessage) {
  Message m(MsgType::kRpcError);
  const Buf b = encode(m);
  EXPECT_EQ(b.size(), kHeaderBytes);
  auto r = decode_copy(b.data(), b.size());
  ASSERT_TRUE(r.ok()) << r.error();
  expect_same(m, *r);
}

TEST(Codec, AccessorsNameTheTag) {
  Message m(MsgType::kProbeRequest);
  m.add_u64(1, 5);
  EXPECT_EQ(m.bytes(1).error(), "message type 10: field tag 1 is u64, not bytes");
  EXPECT_EQ(m.tensor(9).error(), "message type 10: no field with tag 9 (want tensor)");
  EXPECT_FALSE(m.filler(1).ok());
  EXPECT_FALSE(m.i64(1).ok());
  EXPECT_FALSE(m.f64(1).ok());
  EXPECT_TRUE(m.all(9).empty());
}

TEST(Codec, TensorDataIsAlignedAndAliasesTheInput) {
  const Message m = every_kind();
  Bytes in = Bytes::adopt(encode(m));
  auto r = decode(in);
  ASSERT_TRUE(r.ok()) << r.error();
  for (const Field* f : r->all(5)) {
    const TensorData& t = std::get<TensorData>(f->value);
    EXPECT_EQ((t.bytes.data - in.data) % 8, 0);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.bytes.data) % 8, 0u);
    EXPECT_GE(t.bytes.data, in.data);
    EXPECT_LE(t.bytes.data + t.bytes.size, in.data + in.size);
    EXPECT_EQ(t.bytes.owner.get(), in.owner.get());
  }
  // The decoded message keeps the buffer alive on its own.
  const uint8_t* first = r->tensor(5)->bytes.data;
  in = Bytes();
  EXPECT_EQ(first[5], 5);
}

TEST(Codec, MisalignedInputIsCopiedToAnAlignedBuffer) {
  const Message m = every_kind();
  const Buf b = encode(m);
  Buf shifted(b.size() + 1);
  std::memcpy(shifted.data() + 1, b.data(), b.size());
  Bytes in;
  in.data = shifted.data() + 1;
  in.size = b.size();
  auto r = decode(in);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_same(m, *r);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r->tensor(5)->bytes.data) % 8, 0u);
}

TEST(Codec, PeekMessageSize) {
  const Buf b = encode(every_kind());
  auto n = peek_message_size(b.data(), kHeaderBytes);
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(*n, b.size());
  EXPECT_FALSE(peek_message_size(b.data(), kHeaderBytes - 1).ok());
}

// ------------------------------------------------------------------ one test per decoding fault

TEST(CodecErrors, TruncatedHeader) {
  const Buf b = encode(every_kind());
  expect_error(Buf(b.begin(), b.begin() + 10), "decode: truncated header (10 bytes, need 24)");
  expect_error(Buf(), "decode: truncated header (0 bytes");
}

TEST(CodecErrors, TruncatedMessage) {
  const Buf b = encode(every_kind());
  expect_error(Buf(b.begin(), b.end() - 1), "decode: truncated message (header says " +
                                                std::to_string(b.size()) + " bytes, have " +
                                                std::to_string(b.size() - 1) + ")");
}

TEST(CodecErrors, OverTheSizeLimit) {
  Message m(MsgType::kTransferRequest);
  m.add_filler(kTagPayload, 200);
  CodecLimits limits;
  limits.max_message_bytes = 100;
  expect_error(encode(m), "decode: message of 235 bytes exceeds the limit of 100", limits);
  // A header that claims 4 GiB is refused from the header alone, before anything else is read.
  Buf b = encode(Message(MsgType::kRpcError));
  poke<uint32_t>(b, 20, 0xFFFFFFFFu);
  expect_error(b, "decode: message of 4294967319 bytes exceeds the limit of 268435456");
}

TEST(CodecErrors, WrongMagicVersionReservedType) {
  const Buf good = encode(every_kind());
  Buf b = good;
  b[1] = 'X';
  expect_error(b, "decode: bad magic (bytes 67 88, want \"CT\")");
  b = good;
  b[2] = 2;
  expect_error(b, "decode: unsupported wire version 2 (this build speaks 1)");
  b = good;
  poke<uint16_t>(b, 6, 0x100);
  expect_error(b, "decode: reserved header field is 256 (must be 0)");
  b = good;
  poke<uint16_t>(b, 4, 999);
  expect_error(b, "decode: unknown message type 999");
}

TEST(CodecErrors, UnknownFieldKind) {
  const Message m = every_kind();
  Buf b = encode(m);
  b[field_offset(m, 2) + 2] = 9;
  expect_error(b, "decode: field 2 (tag 3): unknown field kind 9");
}

TEST(CodecErrors, TooManyFields) {
  const Message m = every_kind();
  CodecLimits limits;
  limits.max_fields = 3;
  expect_error(encode(m), "decode: too many fields (12, limit 3)", limits);
  // A field count that the body cannot hold is refused before any field is allocated.
  Buf b = encode(m);
  poke<uint32_t>(b, 16, 60000);
  expect_error(b, "decode: 60000 fields cannot fit in");
}

// Where the parts of a tensor field lie in its message's encoding.
struct TensorAt {
  size_t dtype, ndim, pad, dims;
};

// A message whose field 3 (tag 2) is a float32 tensor of shape [2, 3], at offset 56.
TensorAt tensor_message(Message* m) {
  *m = Message(MsgType::kProbeRequest);
  m->add_u64(1, 1).add_bytes(7, "abc").add_f64(8, 0.5);
  m->add_tensor(2, make_tensor(DType::kFloat32, {2, 3}));
  const size_t off = field_offset(*m, 3);
  EXPECT_EQ(off, 56u);
  return TensorAt{off + 3, off + 4, off + 5, 64};
}

TEST(CodecErrors, TooManyDims) {
  Message m;
  const TensorAt at = tensor_message(&m);
  Buf b = encode(m);
  b[at.ndim] = kMaxTensorDims + 1;
  expect_error(b, "decode: field 3 (tag 2): tensor has 9 dims (at most 8)");
}

TEST(CodecErrors, NegativeDim) {
  Message m;
  const TensorAt at = tensor_message(&m);
  Buf b = encode(m);
  poke<int64_t>(b, at.dims + 8, -4);
  expect_error(b, "decode: field 3 (tag 2): tensor dim 1 is negative (-4)");
}

TEST(CodecErrors, ShapeOverflow) {
  Message m;
  const TensorAt at = tensor_message(&m);
  Buf b = encode(m);
  poke<int64_t>(b, at.dims, int64_t{1} << 40);
  poke<int64_t>(b, at.dims + 8, int64_t{1} << 40);  // numel overflows
  expect_error(b,
               "decode: field 3 (tag 2): tensor shape [1099511627776, 1099511627776] x 4 "
               "bytes overflows");
  b = encode(m);
  poke<int64_t>(b, at.dims, int64_t{1} << 62);  // numel fits, numel * 4 does not
  poke<int64_t>(b, at.dims + 8, 1);
  expect_error(b, "tensor shape [4611686018427387904, 1] x 4 bytes overflows");
}

TEST(CodecErrors, NbytesMismatch) {
  Message m;
  const TensorAt at = tensor_message(&m);
  Buf b = encode(m);
  poke<uint64_t>(b, at.dims + 16, 20);
  expect_error(
      b, "decode: field 3 (tag 2): tensor nbytes 20 does not match shape [2, 3] x 4 bytes (24)");
}

TEST(CodecErrors, UnknownDtype) {
  Message m;
  const TensorAt at = tensor_message(&m);
  for (uint8_t bad : {0, 10, 255}) {
    Buf b = encode(m);
    b[at.dtype] = bad;
    expect_error(b, "decode: field 3 (tag 2): unknown tensor dtype " + std::to_string(bad));
  }
}

TEST(CodecErrors, NonzeroPadding) {
  Message m;
  const TensorAt at = tensor_message(&m);
  Buf b = encode(m);
  b[at.pad + 1] = 1;
  expect_error(b, "decode: field 3 (tag 2): nonzero padding before the tensor dims");
}

TEST(CodecErrors, TrailingBytes) {
  Buf b = encode(every_kind());
  b.push_back(0);
  expect_error(b, "decode: 1 trailing bytes after a message of");
}

TEST(CodecErrors, BodyBytesDoNotMatchTheFields) {
  Message m(MsgType::kProbeRequest);
  m.add_u64(1, 1).add_bytes(4, "hello");
  const Buf good = encode(m);
  // body_bytes larger than the fields: the extra bytes are left over.
  Buf b = good;
  b.resize(b.size() + 8, 0);
  poke<uint32_t>(b, 20, static_cast<uint32_t>(b.size() - kHeaderBytes));
  expect_error(b, "decode: body_bytes is 31 but the 2 fields end 8 bytes before it");
  // body_bytes smaller than the fields: the last field runs past the body's end.
  b = good;
  b.pop_back();
  poke<uint32_t>(b, 20, static_cast<uint32_t>(b.size() - kHeaderBytes));
  expect_error(b,
               "decode: field 1 (tag 4): bytes of 5 bytes runs past the end of the body (4 "
               "bytes left)");
}

TEST(CodecErrors, NonzeroFiller) {
  Message m(MsgType::kTransferRequest);
  m.add_filler(kTagPayload, 64);
  Buf b = encode(m);
  b[b.size() - 3] = 0x55;
  expect_error(b, "decode: field 0 (tag 2): filler byte 61 of 64 is nonzero (85)");
}

// ------------------------------------------------------------------ properties and fuzzing

constexpr MsgType kTypes[] = {MsgType::kRpcError, MsgType::kProbeRequest, MsgType::kProbeResponse,
                              MsgType::kTransferRequest, MsgType::kTransferResponse};
constexpr DType kDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16,
                             DType::kFloat64, DType::kInt64,   DType::kInt32,
                             DType::kUInt8,   DType::kInt8,    DType::kBool};

Message random_message(Rng& rng) {
  Message m(kTypes[rng.uniform_int(5)]);
  m.flags = static_cast<uint8_t>(rng.uniform_int(256));
  m.request_id = rng.next_u64();
  const uint64_t n = rng.uniform_int(9);
  for (uint64_t i = 0; i < n; ++i) {
    const auto tag = static_cast<uint16_t>(rng.uniform_int(5));
    switch (rng.uniform_int(6)) {
      case 0:
        m.add_u64(tag, rng.next_u64());
        break;
      case 1:
        m.add_i64(tag, static_cast<int64_t>(rng.next_u64()));
        break;
      case 2: {
        const uint64_t bits = rng.next_u64();
        double d;
        std::memcpy(&d, &bits, 8);
        m.add_f64(tag, d);
        break;
      }
      case 3: {
        std::string s(rng.uniform_int(40), '\0');
        for (char& c : s) c = static_cast<char>(rng.uniform_int(256));
        m.add_bytes(tag, std::move(s));
        break;
      }
      case 4:
        m.add_filler(tag, rng.uniform_int(100));
        break;
      default: {
        std::vector<int64_t> shape(rng.uniform_int(5));
        for (int64_t& d : shape) d = static_cast<int64_t>(rng.uniform_int(5));
        m.add_tensor(tag, make_tensor(kDTypes[rng.uniform_int(9)], std::move(shape),
                                      static_cast<uint8_t>(rng.next_u64())));
      }
    }
  }
  return m;
}

TEST(CodecProperty, RandomMessagesRoundTripExactly) {
  for (uint64_t seed : {1, 2, 3}) {
    Rng rng(seed);
    for (int i = 0; i < 1500; ++i) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " message " + std::to_string(i));
      const Message m = random_message(rng);
      const Buf b = encode(m);
      ASSERT_EQ(m.wire_size(), b.size());
      auto r = decode(Bytes::adopt(b));
      ASSERT_TRUE(r.ok()) << r.error();
      expect_same(m, *r);
      ASSERT_EQ(encode(*r), b);
    }
  }
}

// Decoding is canonical: whatever it accepts re-encodes to exactly the input bytes.
void decode_must_not_crash(const Buf& b) {
  auto r = decode_copy(b.data(), b.size());
  if (r.ok()) {
    EXPECT_EQ(encode(*r), b);
  } else {
    EXPECT_EQ(r.error().rfind("decode: ", 0), 0u) << r.error();
  }
}

TEST(CodecFuzz, RandomBytesNeverCrash) {
  Rng rng(11);
  const Buf header = encode(Message(MsgType::kProbeRequest));
  for (int i = 0; i < 3000; ++i) {
    Buf b(rng.uniform_int(200));
    for (uint8_t& x : b) x = static_cast<uint8_t>(rng.next_u64());
    // Half of them start with a plausible header, so they get past the first checks.
    if (i % 2 == 0 && b.size() >= kHeaderBytes) {
      std::memcpy(b.data(), header.data(), 8);
      poke<uint32_t>(b, 16, static_cast<uint32_t>(rng.uniform_int(8)));
      poke<uint32_t>(b, 20, static_cast<uint32_t>(b.size() - kHeaderBytes));
    }
    decode_must_not_crash(b);
  }
}

TEST(CodecFuzz, MutatedEncodingsNeverCrash) {
  Rng rng(12);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    Buf b = encode(random_message(rng));
    const uint64_t n_mutations = 1 + rng.uniform_int(3);
    for (uint64_t k = 0; k < n_mutations; ++k) {
      const size_t pos = rng.uniform_int(b.size());
      switch (rng.uniform_int(4)) {
        case 0:  // bit flip
          b[pos] ^= static_cast<uint8_t>(1u << rng.uniform_int(8));
          break;
        case 1:  // truncation
          b.resize(pos);
          break;
        case 2:  // inserted byte
          b.insert(b.begin() + pos, static_cast<uint8_t>(rng.next_u64()));
          break;
        default:  // deleted byte
          b.erase(b.begin() + pos);
      }
      if (b.empty()) break;
    }
    decode_must_not_crash(b);
    accepted += decode_copy(b.data(), b.size()).ok();
  }
  EXPECT_LT(accepted, 3000 / 2);  // most mutations are caught
}

}  // namespace
}  // namespace crowdtrain
