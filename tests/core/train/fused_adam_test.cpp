// The fused Adam loop against torch::optim::Adam: the same parameters after many steps (to float
// rounding), with and without AMSGrad and weight decay; torch's own step for what it cannot take;
// its state interchangeable with torch's (a checkpoint written after fused steps continues under
// torch's step, and the other way round).
#include "core/train/fused_adam.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

namespace crowdtrain::train {
namespace {

torch::nn::Sequential make_model() {
  torch::manual_seed(1);
  return torch::nn::Sequential(torch::nn::Linear(37, 64),
                               torch::nn::LayerNorm(torch::nn::LayerNormOptions({64})),
                               torch::nn::ReLU(), torch::nn::Linear(64, 29));
}

void backward_on(torch::nn::Sequential& model, int step) {
  torch::manual_seed(100 + step);
  const at::Tensor x = torch::randn({8, 37});
  model->forward(x).pow(2).mean().backward();
}

double max_difference(torch::nn::Sequential& a, torch::nn::Sequential& b) {
  double worst = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  }
  return worst;
}

struct Variant {
  bool amsgrad;
  double weight_decay;
};

class FusedAdam : public ::testing::TestWithParam<Variant> {};

TEST_P(FusedAdam, MatchesTorchAdamOverManySteps) {
  const Variant v = GetParam();
  auto opts = torch::optim::AdamOptions(1e-2).amsgrad(v.amsgrad).weight_decay(v.weight_decay);
  auto reference = make_model(), fused = make_model();
  torch::optim::Adam torch_adam(reference->parameters(), opts);
  torch::optim::Adam fused_adam(fused->parameters(), opts);
  for (int step = 0; step < 50; ++step) {
    backward_on(reference, step);
    backward_on(fused, step);
    torch_adam.step();
    fused_adam_step(fused_adam);
    torch_adam.zero_grad();
    fused_adam.zero_grad();
  }
  // lr 1e-2 for 50 steps moves every parameter by up to 0.5; float rounding stays far below 1e-5.
  EXPECT_GT((reference->parameters()[0] - make_model()->parameters()[0]).abs().max().item<double>(),
            0.05);
  EXPECT_LT(max_difference(reference, fused), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Variants, FusedAdam,
                         ::testing::Values(Variant{false, 0.0}, Variant{true, 0.0},
                                           Variant{false, 0.01}, Variant{true, 0.01}));

TEST(FusedAdamFallback, DoubleParametersTakeTorchsStepExactly) {
  auto reference = make_model(), fused = make_model();
  reference->to(torch::kDouble);
  fused->to(torch::kDouble);
  auto opts = torch::optim::AdamOptions(1e-2).amsgrad(true);
  torch::optim::Adam torch_adam(reference->parameters(), opts);
  torch::optim::Adam fused_adam(fused->parameters(), opts);
  for (int step = 0; step < 5; ++step) {
    torch::manual_seed(step);
    const at::Tensor x = torch::randn({8, 37}, torch::kDouble);
    reference->forward(x).pow(2).mean().backward();
    fused->forward(x).pow(2).mean().backward();
    torch_adam.step();
    fused_adam_step(fused_adam);
    torch_adam.zero_grad();
    fused_adam.zero_grad();
  }
  EXPECT_EQ(max_difference(reference, fused), 0.0);
}

TEST(FusedAdamFallback, ParametersWithoutGradientsAreLeftAlone) {
  auto model = make_model();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-2));
  const at::Tensor before = model->parameters()[0].clone();
  fused_adam_step(adam);  // no backward yet: no gradients, no state
  EXPECT_TRUE(torch::equal(before, model->parameters()[0]));
  EXPECT_TRUE(adam.state().empty());
}

// Steps 0..9 by one optimizer, a checkpoint, steps 10..19 by the other: equal to 20 torch steps.
double interchange(bool fused_first) {
  auto opts = torch::optim::AdamOptions(1e-2).amsgrad(true);
  auto reference = make_model(), mixed = make_model();
  torch::optim::Adam reference_adam(reference->parameters(), opts);
  torch::optim::Adam first(mixed->parameters(), opts);
  for (int step = 0; step < 20; ++step) {
    backward_on(reference, step);
    reference_adam.step();
    reference_adam.zero_grad();
  }
  for (int step = 0; step < 10; ++step) {
    backward_on(mixed, step);
    fused_first ? fused_adam_step(first) : (void)first.step();
    first.zero_grad();
  }
  std::stringstream bytes;
  torch::serialize::OutputArchive out;
  first.save(out);
  out.save_to(bytes);
  torch::optim::Adam second(mixed->parameters(), opts);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  second.load(in);
  for (int step = 10; step < 20; ++step) {
    backward_on(mixed, step);
    fused_first ? (void)second.step() : fused_adam_step(second);
    second.zero_grad();
  }
  return max_difference(reference, mixed);
}

TEST(FusedAdamState, CheckpointsAreInterchangeableWithTorchsAdam) {
  EXPECT_LT(interchange(true), 1e-5);
  EXPECT_LT(interchange(false), 1e-5);
}

}  // namespace
}  // namespace crowdtrain::train
