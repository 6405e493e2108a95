// Kinds beyond the built-in blocks: a TorchScript module built and saved from C++ here, loaded
// through the zoo (forward and backward checked by hand, its parameters trained in place,
// checkpointed), and a kind registered in C++ over TorchExpert, with the registry's refusals.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "core/moe/expert.h"
#include "core/moe/torch_expert.h"
#include "core/tensor_codec.h"

namespace crowdtrain::moe {
namespace {

TensorData td(const at::Tensor& t) { return to_tensor_data(t); }
at::Tensor tensor(const TensorData& d) { return from_tensor_data(d).value().clone(); }

// Saves a one-method TorchScript module with the given parameters; returns its path.
std::string save_script(const std::string& file,
                        const std::vector<std::pair<std::string, at::Tensor>>& params,
                        const std::string& forward_source) {
  torch::jit::Module m("m");
  for (const auto& [name, value] : params) m.register_parameter(name, value, false);
  m.define(forward_source);
  const std::string path = ::testing::TempDir() + "/" + file;
  m.save(path);
  return path;
}

// The tanh script's initial parameters.
at::Tensor script_w() { return torch::tensor({0.5f, -1.0f, 2.0f, 0.25f}); }
at::Tensor script_b() { return torch::tensor({0.1f, 0.2f, -0.3f, 0.0f}); }

std::string tanh_script() {
  return save_script("tanh_expert.pt", {{"w", script_w()}, {"b", script_b()}},
                     "def forward(self, x):\n    return torch.tanh(x * self.w + self.b)\n");
}

TEST(TorchScriptExpertTest, ForwardAndBackwardByHandTrainTheScriptsParameters) {
  const double lr = 0.01;
  const ExpertConfig c =
      ExpertConfig().kind("torchscript").hidden(4).script_path(tanh_script()).lr(lr);
  auto info = expert_info(c);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->input_shape, std::vector<int64_t>({4}));
  EXPECT_EQ(info->output_shape, std::vector<int64_t>({4}));
  EXPECT_EQ(info->parameters, 8);
  EXPECT_DOUBLE_EQ(info->forward_flops_per_sample, 16);
  EXPECT_DOUBLE_EQ(info->backward_flops_per_sample, 48);
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  const at::Tensor w0 = script_w(), b0 = script_b();

  const at::Tensor x = torch::tensor({{1.0f, 2.0f, -1.0f, 0.5f}, {-0.5f, 0.0f, 0.3f, 2.0f}});
  const at::Tensor y = torch::tanh(x * w0 + b0);
  EXPECT_TRUE(torch::allclose(tensor((*e)->forward(td(x)).value()), y));

  const at::Tensor g = torch::tensor({{1.0f, -1.0f, 0.5f, 2.0f}, {0.2f, 0.3f, -0.4f, 1.0f}});
  const at::Tensor local = g * (1 - y * y);  // d loss / d (x*w + b)
  auto grad_in = (*e)->backward(td(x), td(g));
  ASSERT_TRUE(grad_in.ok()) << grad_in.error();
  EXPECT_TRUE(torch::allclose(tensor(*grad_in), local * w0, 1e-5, 1e-6));
  // Adam's first step moves each parameter by lr * grad / (|grad| + eps).
  const at::Tensor gw = (local * x).sum(0), gb = local.sum(0);
  const at::Tensor w1 = w0 - lr * gw / (gw.abs() + 1e-8);
  const at::Tensor b1 = b0 - lr * gb / (gb.abs() + 1e-8);
  EXPECT_EQ((*e)->updates(), 1u);
  EXPECT_TRUE(
      torch::allclose(tensor((*e)->forward(td(x)).value()), torch::tanh(x * w1 + b1), 1e-5, 1e-6));
  // A checkpoint of the trained script restores it in a fresh expert.
  auto saved = (*e)->save_state();
  ASSERT_TRUE(saved.ok()) << saved.error();
  auto fresh = make_expert(c);
  ASSERT_TRUE((*fresh)->load_state(*saved).ok());
  EXPECT_TRUE(
      torch::equal(tensor((*fresh)->forward(td(x)).value()), tensor((*e)->forward(td(x)).value())));
}

TEST(TorchScriptExpertTest, SampleShapeAndProbedOutputShape) {
  const at::Tensor w = torch::arange(6, torch::kFloat32).reshape({2, 3});
  const std::string path = save_script("sum_expert.pt", {{"w", w}},
                                       "def forward(self, x):\n    return (x * self.w).sum(1)\n");
  const ExpertConfig c = ExpertConfig().kind("torchscript").script_path(path).sample_shape({2, 3});
  auto e = make_expert(c);
  ASSERT_TRUE(e.ok()) << e.error();
  EXPECT_EQ((*e)->info().input_shape, std::vector<int64_t>({2, 3}));
  EXPECT_EQ((*e)->info().output_shape, std::vector<int64_t>({3}));
  const at::Tensor x = torch::ones({5, 2, 3});
  const at::Tensor y = tensor((*e)->forward(td(x)).value());
  EXPECT_TRUE(torch::equal(y, torch::tensor({3.0f, 5.0f, 7.0f}).expand({5, 3})));
  EXPECT_FALSE((*e)->forward(td(torch::ones({5, 3}))).ok());

  // The same file with a sample shape it cannot take, and a script returning no tensor.
  auto bad = expert_info(ExpertConfig(c).sample_shape({5}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("forward on a [1, 5] batch failed"), std::string::npos) << bad.error();
  const std::string pair =
      save_script("pair_expert.pt", {{"w", w}}, "def forward(self, x):\n    return (x, x)\n");
  auto no_tensor = expert_info(ExpertConfig(c).script_path(pair));
  ASSERT_FALSE(no_tensor.ok());
  EXPECT_NE(no_tensor.error().find("does not return a tensor"), std::string::npos);
}

// A script that passes the probe (one sample) but throws on larger batches: forward and backward
// answer with the interpreter's error, and no step is taken.
TEST(TorchScriptExpertTest, AScriptThatThrowsIsAnErrorNotACrash) {
  const std::string path = save_script("picky_expert.pt", {{"w", script_w()}},
                                       "def forward(self, x):\n"
                                       "    assert x.size(0) == 1, 'one sample at a time'\n"
                                       "    return x * self.w\n");
  auto e = make_expert(ExpertConfig().kind("torchscript").hidden(4).script_path(path));
  ASSERT_TRUE(e.ok()) << e.error();
  const at::Tensor x = torch::ones({2, 4});
  auto y = (*e)->forward(td(x));
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.error().find("one sample at a time"), std::string::npos) << y.error();
  auto g = (*e)->backward(td(x), td(x));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().find("one sample at a time"), std::string::npos) << g.error();
  EXPECT_EQ((*e)->updates(), 0u);
  EXPECT_TRUE(torch::equal(tensor((*e)->forward(td(torch::ones({1, 4}))).value()),
                           script_w().unsqueeze(0)));
}

// A C++ kind: y = x * scale, one parameter per feature, initialised to 2.
struct ScaleImpl : torch::nn::Module {
  explicit ScaleImpl(int64_t h) : scale(register_parameter("scale", torch::full({h}, 2.0f))) {}
  at::Tensor scale;
};
class ScaleModule final : public ExpertModule {
 public:
  explicit ScaleModule(int64_t h) : impl_(std::make_shared<ScaleImpl>(h)) {}
  torch::nn::Module& module() override { return *impl_; }
  at::Tensor forward(const at::Tensor& x) override { return x * impl_->scale; }
  std::string architecture() const override {
    return "scale " + std::to_string(impl_->scale.numel());
  }

 private:
  std::shared_ptr<ScaleImpl> impl_;
};

ExpertFactory scale_factory(int64_t claimed_extra_parameters) {
  ExpertFactory f;
  f.info = [claimed_extra_parameters](const ExpertConfig& c) -> Result<ExpertInfo> {
    ExpertInfo info;
    info.input_shape = info.output_shape = {c.hidden()};
    info.parameters = c.hidden() + claimed_extra_parameters;
    info.forward_flops_per_sample = static_cast<double>(c.hidden());
    info.backward_flops_per_sample = 3 * info.forward_flops_per_sample;
    return info;
  };
  f.make = [info = f.info](const ExpertConfig& c) -> Result<std::unique_ptr<Expert>> {
    auto e = TorchExpert::create(c, info(c).value(), std::make_unique<ScaleModule>(c.hidden()));
    if (!e.ok()) return e.status();
    return std::unique_ptr<Expert>(std::move(*e));
  };
  return f;
}

TEST(ExpertRegistryTest, ACppKindIsBuiltThroughTheZoo) {
  ASSERT_TRUE(register_expert_kind("test_scale", scale_factory(0)).ok());
  const std::vector<std::string> kinds = expert_kinds();
  EXPECT_TRUE(std::is_sorted(kinds.begin(), kinds.end()));
  for (const char* k : {"ffn", "residual_ffn", "test_scale", "torchscript", "transformer"}) {
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << k;
  }
  auto e = make_expert(ExpertConfig().kind("test_scale").hidden(3).optimizer("sgd").lr(0.5));
  ASSERT_TRUE(e.ok()) << e.error();
  const at::Tensor x = torch::tensor({{1.0f, 2.0f, 3.0f}, {-1.0f, 0.0f, 1.0f}});
  EXPECT_TRUE(torch::equal(tensor((*e)->forward(td(x)).value()), 2 * x));
  const at::Tensor g = torch::tensor({{1.0f, 1.0f, 1.0f}, {2.0f, 0.5f, -1.0f}});
  EXPECT_TRUE(torch::equal(tensor((*e)->backward(td(x), td(g)).value()), 2 * g));
  // scale -= lr * sum_n g * x = 2 - 0.5 * {-1, 2, 2}
  EXPECT_TRUE(
      torch::equal(tensor((*e)->forward(td(x)).value()), x * torch::tensor({2.5f, 1.0f, 1.0f})));
}

TEST(ExpertRegistryTest, RefusesDuplicatesBadNamesAndWrongInfo) {
  ASSERT_TRUE(register_expert_kind("test_scale_dup", scale_factory(0)).ok());
  auto expect_refused = [](const std::string& kind, ExpertFactory f, const std::string& words) {
    const Status s = register_expert_kind(kind, std::move(f));
    ASSERT_FALSE(s.ok()) << kind;
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  };
  expect_refused("test_scale_dup", scale_factory(0), "already registered");
  expect_refused("ffn", scale_factory(0), "already registered");
  for (const char* bad : {"", "Scale", "9lives", "a-b", "a.b", "a b"}) {
    expect_refused(bad, scale_factory(0), "[a-z][a-z0-9_]*");
  }
  expect_refused(std::string(65, 'a'), scale_factory(0), "at most 64");
  expect_refused("test_no_make", ExpertFactory{scale_factory(0).info, nullptr}, "lacks");
  // A factory whose info miscounts the module's parameters: TorchExpert refuses to build it.
  ASSERT_TRUE(register_expert_kind("test_scale_miscounted", scale_factory(1)).ok());
  auto e = make_expert(ExpertConfig().kind("test_scale_miscounted").hidden(3));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("the module has 3 parameters, its info says 4"), std::string::npos)
      << e.error();
}

}  // namespace
}  // namespace crowdtrain::moe
