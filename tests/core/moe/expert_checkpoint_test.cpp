// Expert checkpoints: a round trip restores the outputs and the optimizer's moments exactly
// (the next step after a load equals the step the expert took after the save); bytes of another
// architecture or optimizer, or corrupt bytes, are refused and leave the expert as it was.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <string>

#include "core/moe/expert.h"
#include "core/moe/torch_expert.h"
#include "core/tensor_codec.h"

namespace crowdtrain::moe {
namespace {

TensorData td(const at::Tensor& t) { return to_tensor_data(t); }
at::Tensor tensor(const TensorData& d) { return from_tensor_data(d).value().clone(); }

std::unique_ptr<Expert> make(const ExpertConfig& c) {
  auto e = make_expert(c);
  CT_CHECK(e.ok());
  return std::move(*e);
}

std::vector<int64_t> batch_shape(int64_t n, const std::vector<int64_t>& sample) {
  std::vector<int64_t> s = {n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

// Trains `e` for `steps` steps on batches drawn from `seed`.
void train(Expert& e, int steps, uint64_t seed) {
  torch::manual_seed(seed);
  for (int i = 0; i < steps; ++i) {
    const at::Tensor x = torch::randn(batch_shape(4, e.info().input_shape));
    const at::Tensor g = torch::randn(batch_shape(4, e.info().output_shape));
    ASSERT_TRUE(e.backward(td(x), td(g)).ok());
  }
}

at::Tensor outputs(Expert& e, const at::Tensor& x) { return tensor(e.forward(td(x)).value()); }

class CheckpointTest : public ::testing::TestWithParam<ExpertConfig> {};

TEST_P(CheckpointTest, RoundTripRestoresOutputsAndOptimizerState) {
  auto e = make(ExpertConfig(GetParam()).lr(1e-2));
  train(*e, 2, 1);
  torch::manual_seed(2);
  const at::Tensor probe = torch::randn(batch_shape(3, e->info().input_shape));
  const at::Tensor at_save = outputs(*e, probe);
  auto saved = e->save_state();
  ASSERT_TRUE(saved.ok()) << saved.error();

  train(*e, 1, 3);  // the step to replay after the load
  const at::Tensor after_one = outputs(*e, probe);
  train(*e, 2, 4);
  EXPECT_FALSE(torch::allclose(outputs(*e, probe), at_save));
  EXPECT_EQ(e->updates(), 5u);

  ASSERT_TRUE(e->load_state(*saved).ok());
  EXPECT_EQ(e->updates(), 2u);
  EXPECT_TRUE(torch::equal(outputs(*e, probe), at_save));
  // Adam's moments came back too: the same step lands on the same parameters.
  train(*e, 1, 3);
  EXPECT_TRUE(torch::equal(outputs(*e, probe), after_one));

  // A fresh expert of the same config (another seed) becomes the saved one.
  auto other = make(ExpertConfig(GetParam()).lr(1e-2).seed(1234));
  EXPECT_FALSE(torch::allclose(outputs(*other, probe), at_save));
  ASSERT_TRUE(other->load_state(*saved).ok());
  EXPECT_TRUE(torch::equal(outputs(*other, probe), at_save));
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, CheckpointTest,
    ::testing::Values(ExpertConfig().kind("ffn").hidden(8),
                      ExpertConfig().kind("residual_ffn").hidden(8).ffn_dim(16),
                      ExpertConfig().kind("transformer").hidden(8).heads(2).ffn_dim(16).seq_len(3),
                      ExpertConfig().kind("ffn").hidden(8).optimizer("sgd").momentum(0.9)));

// Loads `bytes` into `e`, expects a refusal containing `words`, and the expert unchanged: same
// outputs, same updates, and the same next step as a twin that never saw the bytes.
void expect_refused_and_unchanged(const ExpertConfig& config, const std::string& bytes,
                                  const std::string& words) {
  auto e = make(config);
  auto twin = make(config);
  train(*e, 2, 5);
  train(*twin, 2, 5);
  torch::manual_seed(6);
  const at::Tensor probe = torch::randn(batch_shape(3, e->info().input_shape));
  const at::Tensor before = outputs(*e, probe);
  const Status s = e->load_state(bytes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  EXPECT_TRUE(torch::equal(outputs(*e, probe), before));
  EXPECT_EQ(e->updates(), 2u);
  train(*e, 1, 7);
  train(*twin, 1, 7);
  EXPECT_TRUE(torch::equal(outputs(*e, probe), outputs(*twin, probe)));
}

TEST(CheckpointRefusalTest, AnotherArchitectureIsRefused) {
  const ExpertConfig ffn8 = ExpertConfig().kind("ffn").hidden(8);
  auto wider = make(ExpertConfig().kind("ffn").hidden(16));
  expect_refused_and_unchanged(ffn8, wider->save_state().value(), "architecture");
  auto inner = make(ExpertConfig().kind("ffn").hidden(8).ffn_dim(12));
  expect_refused_and_unchanged(ffn8, inner->save_state().value(), "ffn_dim=12");
  auto residual = make(ExpertConfig().kind("residual_ffn").hidden(8));
  expect_refused_and_unchanged(ffn8, residual->save_state().value(), "residual_ffn");
  auto sgd = make(ExpertConfig().kind("ffn").hidden(8).optimizer("sgd"));
  expect_refused_and_unchanged(ffn8, sgd->save_state().value(), "optimizer_kind 'sgd'");
}

TEST(CheckpointRefusalTest, CorruptBytesAreRefused) {
  const ExpertConfig c = ExpertConfig().kind("residual_ffn").hidden(8);
  const std::string good = make(c)->save_state().value();
  expect_refused_and_unchanged(c, "", "unreadable checkpoint");
  expect_refused_and_unchanged(c, "not a checkpoint at all", "unreadable checkpoint");
  expect_refused_and_unchanged(c, good.substr(0, good.size() / 2), "unreadable checkpoint");
  // A real archive that is not a checkpoint: a bare tensor saved by torch::save.
  std::ostringstream other;
  torch::save(torch::ones({8}), other);
  expect_refused_and_unchanged(c, other.str(), "format");
}

// The header and module of a real checkpoint of another seed, with an optimizer part that fails
// to load: the module is applied first, so the refusal must roll it back.
TEST(CheckpointRefusalTest, AHalfAppliedLoadIsRolledBack) {
  const ExpertConfig c = ExpertConfig().kind("ffn").hidden(8);
  auto donor = make(ExpertConfig(c).seed(77));
  torch::serialize::InputArchive in;
  std::istringstream donor_bytes(donor->save_state().value());
  in.load_from(donor_bytes);
  torch::serialize::OutputArchive out, module_part, optimizer_part;
  for (const char* key : {"format", "architecture", "optimizer_kind", "updates"}) {
    c10::IValue v;
    in.read(key, v);
    out.write(key, v);
  }
  dynamic_cast<TorchExpert&>(*donor).module().module().save(module_part);
  optimizer_part.write("pytorch_version", c10::IValue(std::string("1.13.0")));
  out.write("module", module_part);
  out.write("optimizer", optimizer_part);
  std::ostringstream bytes;
  out.save_to(bytes);
  expect_refused_and_unchanged(c, bytes.str(), "unreadable checkpoint");
}

}  // namespace
}  // namespace crowdtrain::moe
