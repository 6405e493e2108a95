// The zoo's built-in experts against independent LibTorch computations: info() against the built
// module's tensors, forward() against the block written out with torch's functional ops on the
// same weights, backward() against autograd on a copy taken before the step and the step against
// torch::optim on that copy; refusals; seeding; the registry; the cuda device.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "core/moe/expert.h"
#include "core/moe/torch_expert.h"
#include "core/tensor_codec.h"

namespace crowdtrain::moe {
namespace {

namespace F = torch::nn::functional;
using Params = std::map<std::string, at::Tensor>;

TensorData td(const at::Tensor& t) { return to_tensor_data(t); }
at::Tensor tensor(const TensorData& d) { return from_tensor_data(d).value().clone(); }

TorchExpert& as_torch(Expert& e) { return dynamic_cast<TorchExpert&>(e); }

// Detached copies of the expert's parameters, by name; `grad` makes them autograd leaves.
Params copy_params(Expert& e, bool grad = false) {
  Params out;
  for (const auto& p : as_torch(e).module().module().named_parameters()) {
    out[p.key()] = p.value().detach().clone().to(torch::kCPU).requires_grad_(grad);
  }
  return out;
}

at::Tensor linear(const at::Tensor& x, const Params& p, const std::string& name) {
  return F::linear(x, p.at(name + ".weight"), p.at(name + ".bias"));
}
at::Tensor norm(const at::Tensor& x, const Params& p, const std::string& name) {
  return torch::layer_norm(x, {x.size(-1)}, p.at(name + ".weight"), p.at(name + ".bias"), 1e-5);
}

// Multi-head self-attention and the post-norm encoder layer, written out.
at::Tensor transformer_reference(const at::Tensor& batch, const Params& p, int64_t heads) {
  const bool tokens = batch.dim() == 3;
  const at::Tensor x = tokens ? batch : batch.unsqueeze(1);  // [n, s, d]
  const int64_t n = x.size(0), s = x.size(1), d = x.size(2), dh = d / heads;
  const auto qkv =
      F::linear(x, p.at("layer.self_attn.in_proj_weight"), p.at("layer.self_attn.in_proj_bias"))
          .chunk(3, -1);
  auto split = [&](const at::Tensor& t) {
    return t.reshape({n, s, heads, dh}).permute({0, 2, 1, 3});
  };
  const at::Tensor scores =
      torch::matmul(split(qkv[0]), split(qkv[1]).transpose(-1, -2)) / std::sqrt(double(dh));
  const at::Tensor ctx = torch::matmul(torch::softmax(scores, -1), split(qkv[2]))
                             .permute({0, 2, 1, 3})
                             .reshape({n, s, d});
  const at::Tensor x1 = norm(x + linear(ctx, p, "layer.self_attn.out_proj"), p, "layer.norm1");
  const at::Tensor ff = linear(torch::gelu(linear(x1, p, "layer.linear1")), p, "layer.linear2");
  const at::Tensor out = norm(x1 + ff, p, "layer.norm2");
  return tokens ? out : out.squeeze(1);
}

at::Tensor reference(const ExpertConfig& c, const at::Tensor& x, const Params& p) {
  if (c.kind() == "ffn")
    return norm(x + linear(torch::gelu(linear(x, p, "fc1")), p, "fc2"), p, "norm");
  if (c.kind() == "residual_ffn") {
    const at::Tensor a = torch::relu(norm(linear(x, p, "fc1"), p, "norm1"));
    return x + linear(torch::relu(norm(linear(a, p, "fc2"), p, "norm2")), p, "fc3");
  }
  CT_CHECK(c.kind() == "transformer");
  return transformer_reference(x, p, c.heads());
}

std::vector<int64_t> batch_shape(int64_t n, const std::vector<int64_t>& sample) {
  std::vector<int64_t> s = {n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

class BuiltinExpertTest : public ::testing::TestWithParam<ExpertConfig> {};

TEST_P(BuiltinExpertTest, InfoAgreesWithTheBuiltModule) {
  const ExpertConfig c = GetParam();
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  auto info = expert_info(c);
  ASSERT_TRUE(info.ok()) << info.error();
  const ExpertInfo& built = (*e)->info();
  EXPECT_EQ(info->input_shape, built.input_shape);
  EXPECT_EQ(info->output_shape, built.output_shape);
  std::vector<int64_t> sample = {c.hidden()};
  if (c.kind() == "transformer" && c.seq_len() > 0) sample = {c.seq_len(), c.hidden()};
  EXPECT_EQ(built.input_shape, sample);
  EXPECT_EQ(built.output_shape, sample);
  // Parameters and FLOPs from the module's own tensors: every 2-D weight is one matrix product
  // per token; attention adds Q K^T and A V, s*s*d multiply-adds each.
  int64_t params = 0;
  double matmul_macs = 0;
  for (const at::Tensor& p : as_torch(**e).module().module().parameters()) {
    params += p.numel();
    if (p.dim() == 2) matmul_macs += static_cast<double>(p.numel());
  }
  EXPECT_EQ(built.parameters, params);
  const double s = c.kind() == "transformer" ? std::max<int64_t>(c.seq_len(), 1) : 1;
  double flops = 2 * s * matmul_macs;
  if (c.kind() == "transformer") flops += 2 * 2 * s * s * c.hidden();
  EXPECT_DOUBLE_EQ(built.forward_flops_per_sample, flops);
  EXPECT_DOUBLE_EQ(built.backward_flops_per_sample, 3 * flops);
  EXPECT_EQ(info->parameters, built.parameters);
  EXPECT_DOUBLE_EQ(info->forward_flops_per_sample, built.forward_flops_per_sample);
}

TEST_P(BuiltinExpertTest, ForwardEqualsTheBlockWrittenOut) {
  const ExpertConfig c = GetParam();
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  torch::manual_seed(11);
  const at::Tensor x = torch::randn(batch_shape(5, (*e)->info().input_shape));
  auto y = (*e)->forward(td(x));
  ASSERT_TRUE(y.ok()) << y.error();
  const at::Tensor want = reference(c, x, copy_params(**e));
  EXPECT_EQ(y->shape, want.sizes().vec());
  EXPECT_TRUE(torch::allclose(tensor(*y), want, 1e-4, 1e-5));
  EXPECT_EQ((*e)->updates(), 0u);
}

TEST_P(BuiltinExpertTest, BackwardIsAutogradOnACopyAndTheStepIsAdams) {
  const ExpertConfig c = ExpertConfig(GetParam()).lr(1e-2);
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  torch::manual_seed(12);
  const at::Tensor x = torch::randn(batch_shape(6, (*e)->info().input_shape));
  const at::Tensor g = torch::randn(batch_shape(6, (*e)->info().output_shape));
  Params copy = copy_params(**e, /*grad=*/true);

  auto grad_in = (*e)->backward(td(x), td(g));
  ASSERT_TRUE(grad_in.ok()) << grad_in.error();
  EXPECT_EQ((*e)->updates(), 1u);

  const at::Tensor xr = x.clone().requires_grad_(true);
  reference(c, xr, copy).backward(g);
  EXPECT_TRUE(torch::allclose(tensor(*grad_in), xr.grad(), 1e-4, 1e-5));
  std::vector<at::Tensor> leaves;
  for (auto& [name, p] : copy) leaves.push_back(p);
  const Params stepped = copy_params(**e);
  torch::optim::Adam adam(leaves, torch::optim::AdamOptions(1e-2));
  Params start;
  for (auto& [name, p] : copy) start[name] = p.detach().clone();
  adam.step();
  // Where the true gradient is zero (the attention's key bias: softmax ignores a constant added
  // to a row of scores) both gradients are rounding noise, which Adam's first step scales up to
  // anything up to lr; elsewhere the steps agree. Adam's first step never exceeds lr.
  for (const auto& [name, p] : stepped) {
    const at::Tensor ref = copy.at(name).detach();
    const at::Tensor informative = copy.at(name).grad().abs() > 1e-5;
    EXPECT_TRUE(
        torch::allclose(p.masked_select(informative), ref.masked_select(informative), 1e-4, 1e-6))
        << name;
    EXPECT_LE((p - start.at(name)).abs().max().item<double>(), 1e-2 * (1 + 1e-5)) << name;
    EXPECT_FALSE(torch::equal(p, start.at(name))) << name << " did not move";
  }
  EXPECT_GT(copy.begin()->second.grad().abs().gt(1e-5).sum().item<int64_t>(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, BuiltinExpertTest,
    ::testing::Values(
        ExpertConfig().kind("ffn").hidden(16).seed(1),
        ExpertConfig().kind("ffn").hidden(12).ffn_dim(20).seed(2),
        ExpertConfig().kind("residual_ffn").hidden(16).ffn_dim(24).seed(3),
        ExpertConfig().kind("transformer").hidden(16).heads(4).ffn_dim(32).seed(4),
        ExpertConfig().kind("transformer").hidden(16).heads(2).ffn_dim(24).seq_len(5).seed(5)));

TEST(ExpertTest, SgdWithMomentumAndClippingMatchTorch) {
  const ExpertConfig c =
      ExpertConfig().kind("ffn").hidden(8).optimizer("sgd").lr(0.1).momentum(0.9).max_grad_norm(
          0.05);
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  Params copy = copy_params(**e, true);
  std::vector<at::Tensor> leaves;
  for (auto& [name, p] : copy) leaves.push_back(p);
  torch::optim::SGD sgd(leaves, torch::optim::SGDOptions(0.1).momentum(0.9));
  torch::manual_seed(13);
  for (int step = 0; step < 3; ++step) {
    const at::Tensor x = torch::randn({4, 8}), g = torch::randn({4, 8});
    ASSERT_TRUE((*e)->backward(td(x), td(g)).ok());
    sgd.zero_grad();
    reference(c, x, copy).backward(g);
    const double norm = torch::nn::utils::clip_grad_norm_(leaves, 0.05);
    EXPECT_GT(norm, 0.05);  // the clipping did something
    sgd.step();
  }
  for (const auto& [name, p] : copy_params(**e)) {
    EXPECT_TRUE(torch::allclose(p, copy.at(name).detach(), 1e-4, 1e-6)) << name;
  }
  EXPECT_EQ((*e)->updates(), 3u);
}

TEST(ExpertTest, LrScaleScalesTheAdamStepAndZeroTakesNone) {
  const ExpertConfig c = ExpertConfig().kind("ffn").hidden(8).optimizer("adam").lr(1e-2);
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  Params copy = copy_params(**e, true);
  std::vector<at::Tensor> leaves;
  for (auto& [name, p] : copy) leaves.push_back(p);
  torch::optim::Adam adam(leaves, torch::optim::AdamOptions(1e-2));
  torch::manual_seed(17);
  for (double scale : {1.0, 0.25, 0.5}) {
    const at::Tensor x = torch::randn({4, 8}), g = torch::randn({4, 8});
    auto gi = (*e)->backward(td(x), td(g), UpdateRule{scale, true});
    ASSERT_TRUE(gi.ok()) << gi.error();
    adam.zero_grad();
    reference(c, x, copy).backward(g);
    for (auto& group : adam.param_groups()) group.options().set_lr(1e-2 * scale);
    adam.step();
  }
  for (const auto& [name, p] : copy_params(**e)) {
    EXPECT_TRUE(torch::allclose(p, copy.at(name).detach(), 1e-4, 1e-6)) << name;
  }
  EXPECT_EQ((*e)->updates(), 3u);

  // lr_scale 0: the same input gradient as autograd, no step, no update counted.
  const at::Tensor x = torch::randn({3, 8}), g = torch::randn({3, 8});
  Params before = copy_params(**e, false);
  at::Tensor xin = x.clone().requires_grad_(true);
  reference(c, xin, before).backward(g);
  auto gi = (*e)->backward(td(x), td(g), UpdateRule{0.0, true});
  ASSERT_TRUE(gi.ok()) << gi.error();
  EXPECT_TRUE(torch::allclose(tensor(*gi), xin.grad(), 1e-5, 1e-6));
  for (const auto& [name, p] : copy_params(**e)) EXPECT_TRUE(torch::equal(p, before.at(name)));
  EXPECT_EQ((*e)->updates(), 3u);
  // And the next full step starts from clean gradients: it matches the reference again.
  auto full = (*e)->backward(td(x), td(g), UpdateRule{1.0, true});
  ASSERT_TRUE(full.ok());
  adam.zero_grad();
  reference(c, x, copy).backward(g);
  for (auto& group : adam.param_groups()) group.options().set_lr(1e-2);
  adam.step();
  for (const auto& [name, p] : copy_params(**e)) {
    EXPECT_TRUE(torch::allclose(p, copy.at(name).detach(), 1e-4, 1e-6)) << name;
  }
  EXPECT_FALSE((*e)->backward(td(x), td(g), UpdateRule{1.5, true}).ok());
  EXPECT_FALSE((*e)->backward(td(x), td(g), UpdateRule{-0.1, true}).ok());
}

TEST(ExpertTest, AccumulatedCallsStepOnTheMeanOfTheirGradients) {
  const ExpertConfig c = ExpertConfig().kind("ffn").hidden(8).optimizer("sgd").lr(0.1);
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  Params copy = copy_params(**e, true);
  std::vector<at::Tensor> leaves;
  for (auto& [name, p] : copy) leaves.push_back(p);
  torch::manual_seed(19);
  at::Tensor loss = torch::zeros({});
  for (int call = 0; call < 3; ++call) {
    const at::Tensor x = torch::randn({2 + call, 8}), g = torch::randn({2 + call, 8});
    ASSERT_TRUE((*e)->backward(td(x), td(g), UpdateRule{1.0, call == 2}).ok());
    loss = loss + (reference(c, x, copy) * g).sum() / 3;  // the mean of the three calls
    if (call < 2) {
      EXPECT_EQ((*e)->updates(), 0u);
    }
  }
  torch::optim::SGD sgd(leaves, torch::optim::SGDOptions(0.1));
  loss.backward();
  sgd.step();
  for (const auto& [name, p] : copy_params(**e)) {
    EXPECT_TRUE(torch::allclose(p, copy.at(name).detach(), 1e-5, 1e-6)) << name;
  }
  EXPECT_EQ((*e)->updates(), 1u);
}

TEST(ExpertTest, RefusesBadBatchesAndLeavesTheExpertAlone) {
  auto e = make_expert(ExpertConfig().kind("ffn").hidden(8));
  ASSERT_TRUE(e.ok()) << e.error();
  const Params before = copy_params(**e);
  const at::Tensor good = torch::randn({3, 8});
  auto expect_refused = [&](const Result<TensorData>& r, const std::string& words) {
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(words), std::string::npos) << r.error();
  };
  expect_refused((*e)->forward(td(torch::randn({3, 9}))), "shape [3, 9]");
  expect_refused((*e)->forward(td(torch::randn({8}))), "shape [8]");
  expect_refused((*e)->forward(td(torch::randn({0, 8}))), "shape [0, 8]");
  expect_refused((*e)->forward(td(torch::randn({3, 8}, torch::kFloat64))), "float32");
  at::Tensor nan = good.clone();
  nan[1][2] = std::nan("");
  at::Tensor inf = good.clone();
  inf[0][0] = INFINITY;
  expect_refused((*e)->forward(td(nan)), "non-finite");
  expect_refused((*e)->forward(td(inf)), "non-finite");
  expect_refused((*e)->backward(td(nan), td(good)), "non-finite");
  expect_refused((*e)->backward(td(good), td(inf)), "grad_outputs");
  expect_refused((*e)->backward(td(good), td(torch::randn({2, 8}))), "3 inputs but 2");
  // Finite output gradients so large that the weight gradients overflow: no step either.
  expect_refused((*e)->backward(td(good * 100), td(torch::full({3, 8}, 3e38))), "no step taken");
  EXPECT_EQ((*e)->updates(), 0u);
  for (const auto& [name, p] : copy_params(**e)) {
    EXPECT_TRUE(torch::equal(p, before.at(name))) << name;
    const at::Tensor grad = as_torch(**e).module().module().named_parameters()[name].grad();
    EXPECT_TRUE(!grad.defined() || torch::count_nonzero(grad).item<int64_t>() == 0) << name;
  }
  EXPECT_TRUE((*e)->backward(td(good), td(good)).ok());  // still works
}

TEST(ExpertTest, ConfigErrorsNameTheProblem) {
  auto expect_error = [](const ExpertConfig& c, const std::string& words) {
    auto info = expert_info(c);
    ASSERT_FALSE(info.ok());
    EXPECT_NE(info.error().find(words), std::string::npos) << info.error();
    EXPECT_FALSE(make_expert(c).ok());
  };
  expect_error(ExpertConfig().kind("nope"), "unknown expert kind 'nope' (known: ffn,");
  expect_error(ExpertConfig().hidden(0), "hidden 0");
  expect_error(ExpertConfig().ffn_dim(-1), "ffn_dim -1");
  expect_error(ExpertConfig().kind("transformer").hidden(10).heads(4), "divide hidden 10");
  expect_error(ExpertConfig().kind("transformer").seq_len(-2), "seq_len -2");
  expect_error(ExpertConfig().optimizer("rmsprop"), "rmsprop");
  expect_error(ExpertConfig().lr(0), "lr");
  expect_error(ExpertConfig().momentum(1.5), "momentum");
  expect_error(ExpertConfig().device("tpu"), "tpu");
  expect_error(ExpertConfig().hidden(200000).ffn_dim(200000), "exceed the limit");
  expect_error(ExpertConfig().kind("torchscript"), "no script_path");
  expect_error(ExpertConfig().kind("torchscript").script_path("/nonexistent/m.pt"), "cannot load");
}

TEST(ExpertTest, ParametersComeFromTheSeedAndLeaveGlobalRandomnessAlone) {
  torch::manual_seed(99);
  const at::Tensor expected_next = torch::rand({4});
  torch::manual_seed(99);
  auto a = make_expert(ExpertConfig().kind("residual_ffn").hidden(8).seed(7));
  auto b = make_expert(ExpertConfig().kind("residual_ffn").hidden(8).seed(7));
  auto c = make_expert(ExpertConfig().kind("residual_ffn").hidden(8).seed(8));
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_next));
  const Params pa = copy_params(**a), pb = copy_params(**b), pc = copy_params(**c);
  EXPECT_TRUE(torch::equal(pa.at("fc2.weight"), pb.at("fc2.weight")));
  EXPECT_FALSE(torch::equal(pa.at("fc2.weight"), pc.at("fc2.weight")));
}

TEST(ExpertTest, CudaIsRefusedWithAReasonWithoutAGpu) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  auto e = make_expert(ExpertConfig().device("cuda"));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("no CUDA device"), std::string::npos) << e.error();
}

TEST(ExpertTest, CudaExpertMatchesTheCpuOne) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (LibTorch sees none)";
  const ExpertConfig c = ExpertConfig().kind("transformer").hidden(32).seq_len(3).seed(3);
  auto cpu = make_expert(c);
  auto gpu = make_expert(ExpertConfig(c).device("cuda"));
  ASSERT_TRUE(gpu.ok()) << gpu.error();
  EXPECT_TRUE(as_torch(**gpu).module().module().parameters()[0].is_cuda());
  torch::manual_seed(5);
  const at::Tensor x = torch::randn({4, 3, 32}), g = torch::randn({4, 3, 32});
  EXPECT_TRUE(torch::allclose(tensor(*(*cpu)->forward(td(x))), tensor(*(*gpu)->forward(td(x))),
                              1e-3, 1e-4));
  auto gc = (*cpu)->backward(td(x), td(g));
  auto gg = (*gpu)->backward(td(x), td(g));
  ASSERT_TRUE(gg.ok()) << gg.error();
  EXPECT_TRUE(torch::allclose(tensor(*gc), tensor(*gg), 1e-3, 1e-4));
  auto saved = (*gpu)->save_state();
  ASSERT_TRUE(saved.ok()) << saved.error();
  EXPECT_TRUE((*gpu)->load_state(*saved).ok());
}

}  // namespace
}  // namespace crowdtrain::moe

namespace crowdtrain::moe {
namespace {

// The fused AMSGrad step (the default) and torch's own (fused_step false) keep an expert on the
// same parameters over many backward calls, as the MNIST experiment drives it.
TEST(ExpertTest, FusedStepTracksTorchsStepOverManyCalls) {
  const ExpertConfig c = ExpertConfig()
                             .kind("residual_ffn")
                             .hidden(32)
                             .ffn_dim(64)
                             .optimizer("amsgrad")
                             .lr(1e-3)
                             .seed(9);
  auto fused = make_expert(c);
  auto plain = make_expert(ExpertConfig(c).fused_step(false));
  ASSERT_TRUE(fused.ok() && plain.ok());
  torch::manual_seed(21);
  for (int call = 0; call < 200; ++call) {
    const at::Tensor x = torch::randn({4, 32}), g = torch::randn({4, 32}) * 1e-2;
    auto a = (*fused)->backward(td(x), td(g));
    auto b = (*plain)->backward(td(x), td(g));
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(torch::allclose(tensor(*a), tensor(*b), 1e-3, 1e-6)) << "call " << call;
  }
  const Params pa = copy_params(**fused), pb = copy_params(**plain);
  for (const auto& [name, p] : pa) {
    EXPECT_LT((p - pb.at(name)).abs().max().item<double>(), 1e-5) << name;
  }
}

}  // namespace
}  // namespace crowdtrain::moe
