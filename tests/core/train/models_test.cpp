// Models: output shapes, seeded initialisation, FLOP estimates, and the flat-vector round trip that
// Moshpit averaging relies on.
#include "core/train/models.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace crowdtrain::train {
namespace {

TEST(ModelsTest, ShapesOfEveryKind) {
  const torch::Tensor x = torch::rand({5, 784});
  auto mlp = make_model(ModelOptions().hidden(32).depth(3), 1);
  EXPECT_EQ(mlp->forward(x).sizes(), (std::vector<int64_t>{5, 10}));
  auto cnn = make_model(
      ModelOptions().kind(ModelKind::kCnn).conv1_channels(4).conv2_channels(8).hidden(16), 1);
  EXPECT_EQ(cnn->forward(x).sizes(), (std::vector<int64_t>{5, 10}));
  auto net = make_model(ModelOptions().kind(ModelKind::kFfnNet).hidden(16).depth(2), 1);
  EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{5, 10}));
  auto block = make_model(ModelOptions().kind(ModelKind::kFfnBlock).hidden(16), 1);
  const torch::Tensor h = torch::rand({5, 16});
  EXPECT_EQ(block->forward(h).sizes(), h.sizes());
  // LayerNorm(16) + Linear(16, 64) + Linear(64, 16).
  EXPECT_EQ(count_parameters(block->module()), 2 * 16 + (16 * 64 + 64) + (64 * 16 + 16));
  EXPECT_FALSE(mlp->describe().empty());
}

TEST(ModelsTest, SameInitSeedSameParameters) {
  const ModelOptions o = ModelOptions().hidden(16).depth(2);
  auto a = make_model(o, 7);
  torch::rand({100});  // draws in between must not matter
  auto b = make_model(o, 7);
  auto c = make_model(o, 8);
  EXPECT_TRUE(torch::equal(flatten_parameters(a->module()), flatten_parameters(b->module())));
  EXPECT_FALSE(torch::equal(flatten_parameters(a->module()), flatten_parameters(c->module())));
}

TEST(ModelsTest, FlopEstimates) {
  EXPECT_DOUBLE_EQ(linear_flops(784, 10, 3), 2.0 * 784 * 10 * 3);
  auto mlp = make_model(ModelOptions().hidden(100).depth(2), 1);
  const double fwd = 2.0 * (784 * 100 + 100 * 100 + 100 * 10);
  EXPECT_DOUBLE_EQ(mlp->forward_flops(1), fwd);
  EXPECT_DOUBLE_EQ(mlp->train_flops(32), 3 * 32 * fwd);
  // For an MLP the estimate is 2 * weights per sample (biases aside).
  EXPECT_NEAR(mlp->forward_flops(1), 2.0 * count_parameters(mlp->module()), 2.0 * 210);
  auto cnn = make_model(
      ModelOptions().kind(ModelKind::kCnn).conv1_channels(4).conv2_channels(8).hidden(16), 1);
  const double conv = 2.0 * 25 * 1 * 4 * 28 * 28 + 2.0 * 25 * 4 * 8 * 14 * 14;
  EXPECT_DOUBLE_EQ(cnn->forward_flops(1), conv + 2.0 * (8 * 49 * 16 + 16 * 10));
  auto block = make_model(ModelOptions().kind(ModelKind::kFfnBlock).hidden(64), 1);
  EXPECT_DOUBLE_EQ(block->forward_flops(2), 2 * 2.0 * (64 * 256 * 2));
}

TEST(ModelsTest, FlattenUnflattenRoundTrip) {
  auto a = make_model(
      ModelOptions().kind(ModelKind::kCnn).conv1_channels(4).conv2_channels(8).hidden(16), 1);
  auto b = make_model(
      ModelOptions().kind(ModelKind::kCnn).conv1_channels(4).conv2_channels(8).hidden(16), 2);
  const torch::Tensor fa = flatten_parameters(a->module());
  EXPECT_EQ(fa.dim(), 1);
  EXPECT_EQ(fa.numel(), count_parameters(a->module()));
  EXPECT_TRUE(fa.is_contiguous());
  ASSERT_TRUE(unflatten_parameters(fa, b->module()).ok());
  EXPECT_TRUE(torch::equal(flatten_parameters(b->module()), fa));
  const torch::Tensor x = torch::rand({3, 784});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
  // The flat vector is a copy: changing it leaves the model alone.
  torch::Tensor copy = flatten_parameters(a->module());
  copy.zero_();
  EXPECT_TRUE(torch::equal(flatten_parameters(a->module()), fa));
  // A double-precision or strided vector is accepted; a wrong size is refused and changes nothing.
  ASSERT_TRUE(unflatten_parameters((fa * 2).to(torch::kFloat64), b->module()).ok());
  EXPECT_TRUE(torch::allclose(flatten_parameters(b->module()), fa * 2));
  const Status bad = unflatten_parameters(fa.narrow(0, 1, fa.numel() - 1), b->module());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("elements"), std::string::npos) << bad.message();
  EXPECT_TRUE(torch::allclose(flatten_parameters(b->module()), fa * 2));
  EXPECT_FALSE(unflatten_parameters(fa.view({1, -1}), b->module()).ok());
}

}  // namespace
}  // namespace crowdtrain::train
