// The LibTorch bridge (core/tensor_codec.h): tensors survive encode/decode bit for bit, any layout
// is accepted, received tensors are views over the received buffer, and bad sizes are errors.
#include "core/tensor_codec.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace crowdtrain {
namespace {

// Sends `t` through a message and back; `wire` receives the buffer the result points into.
at::Tensor round_trip(const at::Tensor& t, Bytes* wire) {
  Message m(MsgType::kProbeRequest);
  m.add_tensor(kTagPayload, to_tensor_data(t));
  *wire = Bytes::adopt(encode(m));
  auto decoded = decode(*wire);
  EXPECT_TRUE(decoded.ok()) << decoded.error();
  auto td = decoded->tensor(kTagPayload);
  EXPECT_TRUE(td.ok()) << td.error();
  auto out = from_tensor_data(*td);
  EXPECT_TRUE(out.ok()) << out.error();
  return *out;
}

void expect_round_trip(const at::Tensor& t) {
  Bytes wire;
  const at::Tensor back = round_trip(t, &wire);
  EXPECT_EQ(back.scalar_type(), t.scalar_type());
  EXPECT_EQ(back.sizes(), t.sizes());
  EXPECT_TRUE(torch::equal(back, t.contiguous()));
}

TEST(TensorCodec, Float32) {
  torch::manual_seed(1);
  expect_round_trip(torch::randn({3, 4, 5}));
}

TEST(TensorCodec, Float16) {
  torch::manual_seed(2);
  expect_round_trip(torch::randn({7, 3}).to(torch::kFloat16));
}

TEST(TensorCodec, Int64) {
  expect_round_trip(torch::arange(-50, 50, torch::kInt64).reshape({10, 10}));
}

TEST(TensorCodec, Bool) { expect_round_trip(torch::arange(0, 13).remainder(3).eq(0)); }

TEST(TensorCodec, OtherDtypesScalarsAndEmptyTensors) {
  expect_round_trip(torch::randn({4}).to(torch::kBFloat16));
  expect_round_trip(torch::randn({4}, torch::kFloat64));
  expect_round_trip(torch::arange(0, 9, torch::kInt32));
  expect_round_trip(torch::arange(0, 9, torch::kUInt8));
  expect_round_trip(torch::arange(-4, 5, torch::kInt8));
  expect_round_trip(torch::tensor(3.5f));   // zero dims
  expect_round_trip(torch::zeros({0, 4}));  // no elements
}

TEST(TensorCodec, NonContiguousInput) {
  const at::Tensor base = torch::arange(0, 24, torch::kFloat32).reshape({4, 6});
  const at::Tensor t = base.t().slice(/*dim=*/1, 1, 4);  // transposed and sliced
  ASSERT_FALSE(t.is_contiguous());
  const TensorData d = to_tensor_data(t);
  EXPECT_EQ(d.shape, (std::vector<int64_t>{6, 3}));
  EXPECT_EQ(d.bytes.size, 6u * 3 * 4);
  expect_round_trip(t);
  expect_round_trip(torch::arange(0, 10, torch::kInt64).expand({3, 10}));  // stride 0
}

TEST(TensorCodec, OutgoingDataIsACopy) {
  at::Tensor t = torch::ones({8});
  const TensorData d = to_tensor_data(t);
  t.mul_(5);  // changing the tensor after sending does not change the message
  auto back = from_tensor_data(d);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_TRUE(torch::equal(*back, torch::ones({8})));
}

TEST(TensorCodec, ReceivedTensorIsAZeroCopyViewThatKeepsTheBufferAlive) {
  Bytes wire;
  at::Tensor back = round_trip(torch::arange(0, 1000, torch::kFloat32), &wire);
  const auto* p = static_cast<const uint8_t*>(back.data_ptr());
  EXPECT_GE(p, wire.data);
  EXPECT_LE(p + back.nbytes(), wire.data + wire.size);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u);
  std::weak_ptr<const void> watch = wire.owner;
  wire = Bytes();
  EXPECT_FALSE(watch.expired());  // the tensor's storage holds the buffer
  EXPECT_EQ(back[999].item<float>(), 999.0f);
  back = at::Tensor();
  EXPECT_TRUE(watch.expired());  // and lets it go with the tensor
}

TEST(TensorCodec, SizeMismatchIsAnError) {
  TensorData d = to_tensor_data(torch::zeros({2, 3}));
  d.shape = {2, 4};
  auto r = from_tensor_data(d);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "from_tensor_data: 24 bytes do not match 8 elements x 4 bytes");
  d.shape = {2, -3};
  EXPECT_FALSE(from_tensor_data(d).ok());
  d.shape = {2, 3};
  d.dtype = static_cast<DType>(42);
  EXPECT_EQ(from_tensor_data(d).error(), "from_tensor_data: unknown dtype 42");
}

}  // namespace
}  // namespace crowdtrain
