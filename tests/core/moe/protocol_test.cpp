// core/moe/protocol: round trips through the binary codec, every malformed field refused with its
// name, and the row helpers against hand-computed values.
#include "core/moe/protocol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>

#include "tests/core/moe/scale_expert.h"

namespace crowdtrain::moe {
namespace {

using testing::floats;
using testing::rows_of;
using testing::values_of;

// Encodes and decodes the message through the wire codec, as the live transport does.
Message over_the_wire(const Message& m) {
  auto bytes = encode(m);
  EXPECT_EQ(bytes.size(), m.wire_size());
  auto back = decode(Bytes::adopt(std::move(bytes)));
  EXPECT_TRUE(back.ok()) << back.error();
  return back.value();
}

TEST(MoeProtocol, RealRequestsAndResponsesRoundTrip) {
  const TensorData x = rows_of(3, 4, 0.5f);
  const TensorData g = rows_of(3, 2, -7.f);
  auto fwd = decode_forward_request(
      over_the_wire(encode_forward_request({"ffn.1.2", Numerics::kReal, x})), {});
  ASSERT_TRUE(fwd.ok()) << fwd.error();
  EXPECT_EQ(fwd->uid, "ffn.1.2");
  EXPECT_EQ(fwd->numerics, Numerics::kReal);
  EXPECT_EQ(fwd->inputs.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(values_of(fwd->inputs), values_of(x));

  auto bwd = decode_backward_request(
      over_the_wire(encode_backward_request({"e", Numerics::kReal, x, g})), {});
  ASSERT_TRUE(bwd.ok()) << bwd.error();
  EXPECT_EQ(bwd->uid, "e");
  EXPECT_EQ(values_of(bwd->inputs), values_of(x));
  EXPECT_EQ(bwd->grad_outputs.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(values_of(bwd->grad_outputs), values_of(g));

  auto fr =
      decode_forward_response(over_the_wire(encode_forward_response({Numerics::kReal, g})), {});
  ASSERT_TRUE(fr.ok()) << fr.error();
  EXPECT_EQ(values_of(fr->outputs), values_of(g));
  auto br =
      decode_backward_response(over_the_wire(encode_backward_response({Numerics::kReal, x})), {});
  ASSERT_TRUE(br.ok()) << br.error();
  EXPECT_EQ(values_of(br->grad_inputs), values_of(x));
}

TEST(MoeProtocol, TimingBatchesTravelAsFillersOfTheirByteSize) {
  const Message m =
      encode_backward_request({"e", Numerics::kTiming, shape_only({5, 3, 2}), shape_only({5, 7})});
  ASSERT_TRUE(m.filler(kTagInputs).ok());
  EXPECT_EQ(m.filler(kTagInputs).value(), 5u * 3 * 2 * 4);
  EXPECT_EQ(m.filler(kTagGradOutputs).value(), 5u * 7 * 4);
  EXPECT_GT(m.wire_size(), 5u * (6 + 7) * 4);  // the simulator charges the bytes
  auto back = decode_backward_request(over_the_wire(m), {});
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->numerics, Numerics::kTiming);
  EXPECT_EQ(back->inputs.shape, (std::vector<int64_t>{5, 3, 2}));
  EXPECT_EQ(back->grad_outputs.shape, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(back->inputs.bytes.size, 0u);

  auto fr = decode_forward_response(
      over_the_wire(encode_forward_response({Numerics::kTiming, shape_only({4})})), {});
  ASSERT_TRUE(fr.ok()) << fr.error();
  EXPECT_EQ(fr->outputs.shape, (std::vector<int64_t>{4}));  // [n] with a scalar per sample
}

// A forward request built field by field, so that each test can break one.
struct Fields {
  MsgType type = MsgType::kMoeForwardRequest;
  uint8_t flags = 0;
  std::function<void(Message&)> uid = [](Message& m) { m.add_bytes(kTagUid, "e.0"); };
  std::function<void(Message&)> mode = [](Message& m) { m.add_u64(kTagMode, 0); };
  std::function<void(Message&)> inputs = [](Message& m) {
    m.add_tensor(kTagInputs, rows_of(2, 3, 0));
  };
  std::function<void(Message&)> extra = [](Message&) {};
  Message build() const {
    Message m(type);
    m.flags = flags;
    uid(m);
    mode(m);
    inputs(m);
    extra(m);
    return m;
  }
};

void expect_refused(const Fields& f, const std::string& needle, ProtocolLimits limits = {}) {
  auto r = decode_forward_request(f.build(), limits);
  ASSERT_FALSE(r.ok()) << "accepted; expected an error about " << needle;
  EXPECT_NE(r.error().find(needle), std::string::npos) << r.error();
}

TEST(MoeProtocol, WellFormedBaselineDecodes) {
  auto r = decode_forward_request(Fields().build(), {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->inputs.shape, (std::vector<int64_t>{2, 3}));
}

TEST(MoeProtocol, EveryMalformedRequestFieldIsRefusedByName) {
  Fields f;
  f.type = MsgType::kMoeBackwardRequest;
  expect_refused(f, "message type 302");
  f = Fields();
  f.flags = kFlagResponse;
  expect_refused(f, "flagged as a response");
  f = Fields();
  f.uid = [](Message&) {};
  expect_refused(f, "(uid): expected tag 16");
  f.uid = [](Message& m) { m.add_bytes(kTagUid, ""); };
  expect_refused(f, "(uid): empty");
  f.uid = [](Message& m) { m.add_bytes(kTagUid, std::string(257, 'a')); };
  expect_refused(f, "(uid): 257 bytes, limit 256");
  f.uid = [](Message& m) { m.add_u64(kTagUid, 3); };
  expect_refused(f, "(uid): expected bytes, got u64");
  f = Fields();
  f.mode = [](Message& m) { m.add_u64(kTagMode, 2); };
  expect_refused(f, "(mode): must be 0 (real) or 1 (timing), got 2");
  f.mode = [](Message& m) { m.add_i64(kTagMode, 0); };
  expect_refused(f, "(mode): expected u64");
  f = Fields();
  f.inputs = [](Message&) {};
  expect_refused(f, "(inputs): missing");
  f.inputs = [](Message& m) { m.add_filler(kTagInputs, 24); };  // real mode: a tensor
  expect_refused(f, "(inputs): expected tensor, got filler");
  f.inputs = [](Message& m) { m.add_tensor(kTagInputs, floats({0, 3}, {})); };
  expect_refused(f, "(inputs): no rows");
  f.inputs = [](Message& m) { m.add_tensor(kTagInputs, floats({}, {1.f})); };
  expect_refused(f, "(inputs): needs 1..8 dims");
  f.inputs = [](Message& m) { m.add_tensor(kTagInputs, floats({2, -3}, {})); };
  expect_refused(f, "(inputs): negative dimension");
  f.inputs = [](Message& m) { m.add_tensor(kTagInputs, floats({2, 3}, {1, 2, 3})); };
  expect_refused(f, "(inputs): 12 data bytes for shape [2, 3], expected 24");
  f.inputs = [](Message& m) {
    TensorData t = rows_of(2, 3, 0);
    t.dtype = static_cast<DType>(42);
    m.add_tensor(kTagInputs, t);
  };
  expect_refused(f, "(inputs): unknown dtype 42");
  f = Fields();
  ProtocolLimits small;
  small.max_samples = 1;
  expect_refused(f, "(inputs): 2 rows, limit 1", small);
  small = ProtocolLimits();
  small.max_bytes = 23;
  expect_refused(f, "exceeds the 23-byte message limit", small);
  f.extra = [](Message& m) { m.add_u64(kTagRows, 1); };
  expect_refused(f, "(end): unexpected field with tag 18");
}

TEST(MoeProtocol, MalformedTimingBatchesAreRefused) {
  Fields f;
  f.mode = [](Message& m) { m.add_u64(kTagMode, 1); };
  f.inputs = [](Message& m) {
    m.add_u64(kTagRows, 2).add_i64(kTagSampleDim, 3).add_filler(kTagInputs, 24);
  };
  auto ok = decode_forward_request(f.build(), {});
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->inputs.shape, (std::vector<int64_t>{2, 3}));

  f.inputs = [](Message& m) {
    m.add_u64(kTagRows, 2).add_i64(kTagSampleDim, 3).add_filler(kTagInputs, 20);
  };
  expect_refused(f, "(inputs): filler of 20 bytes for shape [2, 3], expected 24");
  f.inputs = [](Message& m) { m.add_tensor(kTagInputs, rows_of(2, 3, 0)); };
  expect_refused(f, "(inputs rows): expected tag 18");
  f.inputs = [](Message& m) {
    m.add_u64(kTagRows, 2).add_i64(kTagSampleDim, -1).add_filler(kTagInputs, 0);
  };
  expect_refused(f, "negative dimension");
  f.inputs = [](Message& m) {
    m.add_u64(kTagRows, 0).add_i64(kTagSampleDim, 3).add_filler(kTagInputs, 0);
  };
  expect_refused(f, "(inputs): no rows");
  f.inputs = [](Message& m) {
    m.add_u64(kTagRows, 1);
    for (int i = 0; i < 8; ++i) m.add_i64(kTagSampleDim, 1);
    m.add_filler(kTagInputs, 4);
  };
  expect_refused(f, "more than 8 dims");
  f.inputs = [](Message& m) { m.add_u64(kTagRows, uint64_t{1} << 40).add_filler(kTagInputs, 4); };
  expect_refused(f, "(inputs rows): 1099511627776 rows, limit 65536");
  f.inputs = [](Message& m) { m.add_u64(kTagRows, 2).add_i64(kTagSampleDim, 3); };
  expect_refused(f, "(inputs): missing");
}

TEST(MoeProtocol, BackwardRequestNeedsMatchingRowsAndResponsesTheFlag) {
  const Message m =
      encode_backward_request({"e", Numerics::kReal, rows_of(3, 2, 0), rows_of(2, 2, 0)});
  auto r = decode_backward_request(m, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("(grad_outputs): 2 rows for 3 input rows"), std::string::npos)
      << r.error();

  Message resp = encode_forward_response({Numerics::kReal, rows_of(1, 1, 0)});
  resp.flags = 0;
  auto fr = decode_forward_response(resp, {});
  ASSERT_FALSE(fr.ok());
  EXPECT_NE(fr.error().find("not flagged as a response"), std::string::npos) << fr.error();
  Message wrong = encode_backward_response({Numerics::kReal, rows_of(1, 1, 0)});
  EXPECT_FALSE(decode_forward_response(wrong, {}).ok());
  Message no_mode(MsgType::kMoeBackwardResponse);
  no_mode.flags = kFlagResponse;
  no_mode.add_tensor(kTagGradInputs, rows_of(1, 1, 0));
  auto br = decode_backward_response(no_mode, {});
  ASSERT_FALSE(br.ok());
  EXPECT_NE(br.error().find("(mode)"), std::string::npos) << br.error();
}

TEST(MoeProtocol, TheExpertVersionIsAnOptionalLastU64) {
  const TensorData x = rows_of(2, 2, 0);
  for (Numerics mode : {Numerics::kReal, Numerics::kTiming}) {
    const TensorData b = mode == Numerics::kReal ? x : shape_only({2, 2});
    auto fr = decode_forward_response(over_the_wire(encode_forward_response({mode, b, 7u})), {});
    ASSERT_TRUE(fr.ok()) << fr.error();
    EXPECT_EQ(fr->version, std::optional<uint64_t>(7));
    auto br = decode_backward_request(
        over_the_wire(encode_backward_request({"e", mode, b, b, uint64_t{1} << 40})), {});
    ASSERT_TRUE(br.ok()) << br.error();
    EXPECT_EQ(br->version, std::optional<uint64_t>(uint64_t{1} << 40));
    auto none = decode_backward_request(encode_backward_request({"e", mode, b, b}), {});
    ASSERT_TRUE(none.ok()) << none.error();
    EXPECT_FALSE(none->version.has_value());
  }
  // Another kind under the tag, a second version, or the version before the batch: refused.
  Message bad_kind = encode_forward_response({Numerics::kReal, x});
  bad_kind.add_i64(kTagVersion, 3);
  auto r1 = decode_forward_response(bad_kind, {});
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().find("(version): expected u64"), std::string::npos) << r1.error();
  Message twice = encode_backward_request({"e", Numerics::kReal, x, x, 1u});
  twice.add_u64(kTagVersion, 2);
  auto r2 = decode_backward_request(twice, {});
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().find("(end)"), std::string::npos) << r2.error();
  Message early(MsgType::kMoeBackwardRequest);
  early.add_bytes(kTagUid, "e").add_u64(kTagMode, 0).add_u64(kTagVersion, 1);
  early.add_tensor(kTagInputs, x).add_tensor(kTagGradOutputs, x);
  auto r3 = decode_backward_request(early, {});
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().find("(inputs): expected tag 20"), std::string::npos) << r3.error();
}

TEST(MoeProtocol, RowHelpersMatchHandComputedValues) {
  const TensorData x = rows_of(4, 2, 0);  // rows {0,1} {2,3} {4,5} {6,7}
  const TensorData g = gather_rows(x, {3, 1});
  EXPECT_EQ(g.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(values_of(g), (std::vector<float>{6, 7, 2, 3}));
  const TensorData s = slice_rows(x, 1, 2);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(values_of(s), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(s.bytes.data, x.bytes.data + 8);  // shares the bytes
  const TensorData c = concat_rows({&s, &g});
  EXPECT_EQ(c.shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(values_of(c), (std::vector<float>{2, 3, 4, 5, 6, 7, 2, 3}));
  EXPECT_TRUE(all_finite(x));
  EXPECT_FALSE(all_finite(floats({2}, {1.f, std::numeric_limits<float>::quiet_NaN()})));
  EXPECT_FALSE(all_finite(floats({1}, {-std::numeric_limits<float>::infinity()})));
  EXPECT_EQ(shape_string({2, 3}), "[2, 3]");
  EXPECT_EQ(float_bytes({2, 3}), 24u);
}

}  // namespace
}  // namespace crowdtrain::moe
