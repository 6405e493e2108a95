// Ring gossip and PushSum as network protocols (core/averaging/gossip.h) on the fake world: they
// compute what the strategies' math (strategies.h) computes, peers that sit out neither send nor
// take anything, and bad pushes are refused with a reason and leave the vector alone.
#include "core/averaging/gossip.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/averaging/strategies.h"
#include "core/tensor_codec.h"
#include "tests/fake_runtime.h"

namespace crowdtrain {
namespace {

using testing::FakeWorld;
using namespace std::chrono_literals;

// Counts the peers that reported each round.
class CountingObserver final : public AveragingObserver {
 public:
  void on_round_end(Runtime&, uint64_t round) override { ++reports[round]; }
  bool stop_requested() const override { return false; }
  std::map<uint64_t, int> reports;
};

struct Swarm {
  FakeWorld world{3};
  std::vector<std::shared_ptr<VectorSource>> sources;
  std::vector<std::unique_ptr<GossipAverager>> apps;
  std::shared_ptr<CountingObserver> observer = std::make_shared<CountingObserver>();

  Swarm(GossipMethod method, const std::vector<double>& values, uint32_t rounds,
        double failure_prob = 0.0) {
    const uint32_t n = static_cast<uint32_t>(values.size());
    for (uint32_t i = 0; i < n; ++i) {
      auto& rt = world.add_peer(i);
      GossipOptions o;
      o.method = method;
      o.peers = n;
      o.first_round = 1s;
      o.round_interval = 1s;
      o.exchange_window = 500ms;
      o.rounds = rounds;
      o.failure_prob = failure_prob;
      sources.push_back(std::make_shared<VectorSource>(std::vector<double>{values[i]}));
      apps.push_back(std::make_unique<GossipAverager>(rt, o, sources.back(), observer));
      world.attach(i, apps.back().get());
    }
    for (auto& a : apps) a->start();
  }
  std::vector<double> values() const {
    std::vector<double> v;
    for (const auto& s : sources) v.push_back(s->values()[0]);
    return v;
  }
};

std::vector<double> normal_values(uint32_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

TEST(GossipProtocol, RingMatchesTheMath) {
  const auto start = normal_values(9, 11);
  Swarm swarm(GossipMethod::kRing, start, 6);
  swarm.world.run_for(10s);
  std::vector<double> expect = start;
  const std::vector<bool> alive(start.size(), true);
  for (int r = 0; r < 6; ++r) expect = ring_gossip_round(expect, alive);
  const auto got = swarm.values();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expect[i], 1e-12) << i;
  EXPECT_EQ(swarm.observer->reports.size(), 6u);
  EXPECT_EQ(swarm.observer->reports[5], 9);
}

TEST(GossipProtocol, PushSumMatchesTheMathAndConverges) {
  const auto start = normal_values(16, 12);
  double mean = 0;
  for (double x : start) mean += x / start.size();
  Swarm swarm(GossipMethod::kPushSum, start, 20);
  swarm.world.run_for(30s);
  std::vector<PushSumState> expect;
  for (double x : start) expect.push_back({x, 1.0});
  const std::vector<bool> alive(start.size(), true);
  for (uint64_t r = 0; r < 20; ++r) expect = pushsum_round(expect, r, alive);
  const auto got = swarm.values();
  double weight = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expect[i].estimate(), 1e-12) << i;
    EXPECT_NEAR(swarm.apps[i]->pushsum_weight(), expect[i].weight, 1e-12) << i;
    EXPECT_NEAR(got[i], mean, 1e-4) << i;  // from a spread of ~1
    weight += swarm.apps[i]->pushsum_weight();
  }
  EXPECT_NEAR(weight, 16.0, 1e-9);  // mass is conserved when nobody fails
}

TEST(GossipProtocol, PeerThatSitsOutKeepsItsValueAndOthersRenormalise) {
  // failure_prob 1 for peer 0 only: give it its own options.
  const auto start = normal_values(5, 13);
  FakeWorld world{4};
  std::vector<std::shared_ptr<VectorSource>> sources;
  std::vector<std::unique_ptr<GossipAverager>> apps;
  for (uint32_t i = 0; i < 5; ++i) {
    GossipOptions o;
    o.peers = 5;
    o.first_round = 1s;
    o.round_interval = 1s;
    o.exchange_window = 500ms;
    o.rounds = 1;
    o.failure_prob = i == 0 ? 1.0 : 0.0;
    sources.push_back(std::make_shared<VectorSource>(std::vector<double>{start[i]}));
    apps.push_back(std::make_unique<GossipAverager>(world.add_peer(i), o, sources.back(), nullptr));
    world.attach(i, apps.back().get());
  }
  for (auto& a : apps) a->start();
  world.run_for(5s);
  std::vector<bool> alive{false, true, true, true, true};
  const auto expect = ring_gossip_round(start, alive);
  for (uint32_t i = 0; i < 5; ++i) EXPECT_NEAR(sources[i]->values()[0], expect[i], 1e-12) << i;
  EXPECT_EQ(sources[0]->values()[0], start[0]);
  EXPECT_EQ(world.sink.counter("gossip_sat_out"), 1);
}

// A lone receiver (peer 1 of a ring of 3) gets crafted pushes; none may change its value.
class LoneReceiver : public ::testing::Test {
 protected:
  void SetUp() override {
    world.add_peer(0);
    world.add_peer(2);
    GossipOptions o;
    o.peers = 3;
    o.first_round = 1s;
    o.round_interval = 1s;
    o.exchange_window = 500ms;
    o.rounds = 1;
    app = std::make_unique<GossipAverager>(world.add_peer(1), o, source, nullptr);
    world.attach(1, app.get());
    app->start();
  }
  Message push(uint64_t round, double weight, at::Tensor t) {
    return make_gossip_message(round, weight, compress(t, Compression::kNone));
  }
  FakeWorld world{5};
  std::shared_ptr<VectorSource> source = std::make_shared<VectorSource>(std::vector<double>{2.0});
  std::unique_ptr<GossipAverager> app;
};

TEST_F(LoneReceiver, RefusesBadPushesWithReasons) {
  const auto one = torch::tensor({5.0}, torch::kFloat64);
  app->on_message(0, push(0, 1.0, torch::tensor({1.0, 2.0}, torch::kFloat64)));  // wrong size
  app->on_message(0, push(0, 1.0, one.to(torch::kFloat32)));                     // wrong dtype
  app->on_message(0, push(0, 1.0, torch::tensor({NAN}, torch::kFloat64)));       // not finite
  app->on_message(0, push(0, 0.5, one));                                         // ring weight
  app->on_message(0, push(9, 1.0, one));                                         // far ahead
  app->on_message(7, push(0, 1.0, one));                                         // not on ring
  Message bare(MsgType::kGossipPush);
  app->on_message(0, bare);  // no fields
  world.run_for(5s);
  EXPECT_EQ(source->values()[0], 2.0);
  const auto& c = world.sink;
  EXPECT_EQ(c.counter("gossip_refused_bad_tensor"), 2);
  EXPECT_EQ(c.counter("gossip_refused_not_finite"), 1);
  EXPECT_EQ(c.counter("gossip_refused_bad_weight"), 1);
  EXPECT_EQ(c.counter("gossip_refused_too_far_ahead"), 1);
  EXPECT_EQ(c.counter("gossip_refused_not_a_neighbour"), 1);
  EXPECT_EQ(c.counter("gossip_refused_malformed"), 1);
}

TEST_F(LoneReceiver, TakesOnePushPerNeighbourAndRefusesLateOnes) {
  const auto five = torch::tensor({5.0}, torch::kFloat64);
  app->on_message(0, push(0, 1.0, five));  // early (before round 0 began): kept
  app->on_message(0, push(0, 1.0, five));  // the same neighbour again
  world.run_for(5s);                       // round 0 mixes {2, 5} (peer 2 sent nothing)
  EXPECT_DOUBLE_EQ(source->values()[0], 3.5);
  app->on_message(2, push(0, 1.0, five));  // after the mix
  EXPECT_DOUBLE_EQ(source->values()[0], 3.5);
  EXPECT_EQ(world.sink.counter("gossip_refused_duplicate"), 1);
  EXPECT_EQ(world.sink.counter("gossip_refused_late"), 1);
}

}  // namespace
}  // namespace crowdtrain
