// Gating: product-key scores, differentiable expert logits with -inf padding, the uid parser and
// the brute-force top-k, each against values written out by hand or LibTorch's own Linear.
#include "core/moe/gating.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace crowdtrain::moe {
namespace {

TEST(GatingTest, ScoresLogitsAndUids) {
  torch::manual_seed(1);
  Gating g(5, {3, 4});
  EXPECT_EQ(g.num_scores(), 7);
  const torch::Tensor x = torch::randn({2, 5});
  const torch::Tensor logits = g.forward(x).detach().requires_grad_();
  const auto p = g.module()->parameters();
  EXPECT_TRUE(torch::allclose(logits, torch::nn::functional::linear(x, p[0], p[1])));
  const GridScores scores = g.grid_scores(logits);
  ASSERT_EQ(scores.size(), 2u);
  ASSERT_EQ(scores[1].size(), 2u);
  EXPECT_EQ(scores[1][0].size(), 3u);
  EXPECT_EQ(scores[1][1].size(), 4u);
  EXPECT_FLOAT_EQ(scores[1][1][2], logits[1][3 + 2].item<float>());
  // Sample 0: experts (0,1) and (2,3); sample 1: (1,0) only, so its second entry is -inf.
  const torch::Tensor e = g.expert_logits(logits, {{{0, 1}, {2, 3}}, {{1, 0}}});
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(e[0][0].item<float>(), (logits[0][0] + logits[0][3 + 1]).item<float>());
  EXPECT_FLOAT_EQ(e[0][1].item<float>(), (logits[0][2] + logits[0][3 + 3]).item<float>());
  EXPECT_FLOAT_EQ(e[1][0].item<float>(), (logits[1][1] + logits[1][3]).item<float>());
  EXPECT_TRUE(std::isinf(e[1][1].item<float>()) && e[1][1].item<float>() < 0);
  // d(sum of the finite entries)/d logits counts how often each score is used.
  const torch::Tensor grad =
      torch::autograd::grad({e.masked_fill(e.isinf(), 0).sum()}, {logits})[0];
  const torch::Tensor want =
      torch::tensor({{1.f, 0.f, 1.f, 0.f, 1.f, 0.f, 1.f}, {0.f, 1.f, 0.f, 1.f, 0.f, 0.f, 0.f}});
  EXPECT_TRUE(torch::equal(grad, want)) << grad;

  EXPECT_EQ(parse_expert_coords("ffn.2.3", {3, 4}).value(), (ExpertCoords{2, 3}));
  // The uid grammar (core/moe/expert_uid.h): one dot-free prefix, no leading zeros.
  for (const char* bad : {"ffn.3.0", "ffn.2", "2.3", "ffn.x.1", ".1.2", "ffn.1.-1", "ffn.1.2.",
                          "a.b.0.1", "ffn.01.2", "ffn.1.2.3"}) {
    EXPECT_FALSE(parse_expert_coords(bad, {3, 4}).ok()) << bad;
  }
  EXPECT_EQ(make_expert_uid("L0", {2, 3}), "L0.2.3");
}

TEST(GatingTest, PreNormStandardisesEachSampleBeforeTheLinear) {
  torch::manual_seed(2);
  Gating g(6, {2, 3}, /*pre_norm=*/true);
  EXPECT_TRUE(g.pre_norm());
  EXPECT_EQ(g.module()->parameters().size(), 2u);  // no parameters of its own
  const torch::Tensor x = torch::randn({3, 6}) * 50 + 7;
  const auto p = g.module()->parameters();
  const torch::Tensor mean = x.mean(1, true);
  const torch::Tensor var = (x - mean).pow(2).mean(1, true);
  const torch::Tensor want =
      torch::nn::functional::linear((x - mean) / torch::sqrt(var + 1e-5), p[0], p[1]);
  EXPECT_TRUE(torch::allclose(g.forward(x), want, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(g.forward(x, {p[0], p[1]}), want, 1e-4, 1e-5));
  // Scaling a sample's hidden state leaves its scores alone.
  EXPECT_TRUE(torch::allclose(g.forward(x * 10), g.forward(x), 1e-4, 1e-4));
  EXPECT_GT(g.forward_flops(1), Gating(6, {2, 3}).forward_flops(1));
}

TEST(GatingTest, BruteForceTopKByHand) {
  // Scores: dim 0 = [1, 0], dim 1 = [0, 5, 5]: (0,1)=6, (0,2)=6, (1,1)=5, (1,2)=5, (0,0)=1.
  const auto top = brute_force_top_k({{{1, 0}, {0, 5, 5}}}, {2, 3}, 3);
  ASSERT_EQ(top.size(), 1u);
  ASSERT_EQ(top[0].size(), 3u);
  EXPECT_EQ(top[0][0].coords, (ExpertCoords{0, 1}));
  EXPECT_EQ(top[0][1].coords, (ExpertCoords{0, 2}));
  EXPECT_EQ(top[0][2].coords, (ExpertCoords{1, 1}));
  EXPECT_DOUBLE_EQ(top[0][2].score, 5.0);
}

}  // namespace
}  // namespace crowdtrain::moe
