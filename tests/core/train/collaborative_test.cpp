// Collaborative mode on the fake runtime, with synthetic data: the trainer's gradient accumulation
// gives the mean gradient and one step with it; peers that have not reached the target batch
// together never step (parameters stay at their init); once they reach it, they average gradients
// and step together, so peers that started equal stay equal.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/train/collaborative.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::train {
namespace {

using crowdtrain::testing::FakeWorld;

std::unique_ptr<LocalTrainer> make_trainer(uint64_t data_seed) {
  torch::manual_seed(data_seed);
  Dataset data(torch::randn({128, 784}), torch::randint(0, 4, {128}, torch::kInt64), 4);
  return std::make_unique<LocalTrainer>(
      make_model(ModelOptions().input_dim(784).hidden(64).depth(1).num_classes(4), /*init=*/7),
      data,
      LocalTrainerOptions().optimizer(OptimizerKind::kSgd).lr(0.1).momentum(0.0).seed(data_seed));
}

TEST(LocalTrainerAccumulate, MeanGradientAndOneStep) {
  auto a = make_trainer(1);
  a->accumulate_now();
  a->accumulate_now();
  EXPECT_EQ(a->samples_accumulated(), 64);
  EXPECT_EQ(a->steps_done(), 0);
  const torch::Tensor before = a->parameters();
  const torch::Tensor g = a->accumulated_gradients();
  ASSERT_EQ(g.numel(), a->num_parameters());
  EXPECT_GT(g.abs().sum().item<double>(), 0.0);
  ASSERT_TRUE(a->apply_gradients(g).ok());
  EXPECT_EQ(a->steps_done(), 1);
  EXPECT_EQ(a->samples_accumulated(), 0);
  EXPECT_TRUE(a->parameters().allclose(before - 0.1 * g, 1e-6, 1e-7));  // plain SGD
  // Refused: wrong size, non-finite; nothing changes.
  const torch::Tensor after = a->parameters();
  EXPECT_FALSE(a->apply_gradients(torch::zeros({3})).ok());
  EXPECT_FALSE(a->apply_gradients(torch::full({a->num_parameters()}, NAN)).ok());
  EXPECT_TRUE(a->parameters().equal(after));
}

struct Swarm {
  explicit Swarm(uint32_t n, int64_t target) : world(5) {
    for (PeerId p = 0; p < n; ++p) {
      auto& rt = world.add_peer(p);
      CollaborativeOptions o;
      o.target_batch_size = target;
      if (p > 0) o.bootstrap = {0};
      o.matchmaking.target_group_size(n)
          .min_group_size(2)
          .declare_time(std::chrono::seconds(1))
          .timeout(std::chrono::seconds(2));
      o.allreduce.timeout(std::chrono::seconds(3));
      peers.push_back(std::make_unique<CollaborativePeer>(rt, o, make_trainer(10 + p), nullptr));
      world.attach(p, peers.back().get());
    }
    init = peers[0]->trainer().parameters();
    for (auto& peer : peers) peer->start();
  }
  ~Swarm() {
    for (PeerId p = 0; p < peers.size(); ++p) world.detach(p);
  }
  FakeWorld world;
  std::vector<std::unique_ptr<CollaborativePeer>> peers;
  torch::Tensor init;
};

TEST(CollaborativePeer, NoStepBeforeTheTargetBatch) {
  Swarm s(3, 1'000'000'000);
  s.world.run_for(std::chrono::seconds(4));
  for (auto& peer : s.peers) {
    EXPECT_EQ(peer->epoch(), 0u);
    EXPECT_GT(peer->trainer().samples_accumulated(), 1000);
    EXPECT_TRUE(peer->trainer().parameters().equal(s.init));
  }
  EXPECT_GT(s.peers[0]->global_samples(), s.peers[0]->trainer().samples_accumulated());
  EXPECT_EQ(s.world.sink.counter("collab_steps"), 0);
}

TEST(CollaborativePeer, StepTogetherOnceTheTargetIsReached) {
  Swarm s(3, 20'000);
  s.world.run_for(std::chrono::seconds(12));
  EXPECT_GE(s.world.sink.counter("collab_steps"), 3);
  EXPECT_GE(s.world.sink.counter("averaging_groups"), 3);
  for (auto& peer : s.peers) {
    EXPECT_GE(peer->epoch(), 1u);
    EXPECT_FALSE(peer->trainer().parameters().equal(s.init));
  }
  // Same init, same averaged gradient at every step: the peers hold the same parameters.
  EXPECT_EQ(s.peers[0]->epoch(), s.peers[1]->epoch());
  EXPECT_TRUE(
      s.peers[0]->trainer().parameters().allclose(s.peers[1]->trainer().parameters(), 1e-5, 1e-6));
  EXPECT_TRUE(
      s.peers[0]->trainer().parameters().allclose(s.peers[2]->trainer().parameters(), 1e-5, 1e-6));
}

}  // namespace
}  // namespace crowdtrain::train
