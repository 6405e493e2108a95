// core/moe/chain_trainer: a chain of two layers of real ExpertServers (y = w * x experts) on the
// FakeWorld, called through RemoteMixture: forward passes feed each layer's output to the next,
// the backward runs in reverse order and updates the experts, a failed call is retried with the
// same batch on another replica (the failed server avoided), warm-up calls are not counted, and
// timing-only numerics move shapes only.
#include "core/moe/chain_trainer.h"

#include <gtest/gtest.h>

#include <map>

#include "core/moe/client.h"
#include "core/moe/server.h"
#include "tests/core/moe/rpc_app.h"
#include "tests/core/moe/scale_expert.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeRuntime;
using crowdtrain::testing::FakeWorld;
using testing::CallLog;
using testing::RpcApp;
using testing::ScaleExpert;

constexpr PeerId kTrainer = 1;

// Answers with the layer's replicas in turn (one per find()), on the loop, never inside find().
class ListFinder final : public ExpertFinder {
 public:
  ListFinder(Runtime& rt, std::vector<ExpertRef> replicas) : rt_(rt), replicas_(replicas) {}
  void find(std::vector<std::vector<std::vector<double>>> scores, size_t k, Done done) override {
    EXPECT_EQ(k, 1u);
    EXPECT_EQ(scores.size(), 1u);
    ++finds;
    const ExpertRef e = replicas_[next_++ % replicas_.size()];
    rt_.schedule(0ms, [e, done = std::move(done)] {
      done(std::vector<std::vector<FoundExpert>>{{FoundExpert{e, 1.0}}});
    });
  }
  int finds = 0;

 private:
  Runtime& rt_;
  std::vector<ExpertRef> replicas_;
  size_t next_ = 0;
};

struct Server {
  std::unique_ptr<RpcEndpoint> rpc;
  std::unique_ptr<RpcApp> app;
  std::unique_ptr<ExpertServer> server;
  ScaleExpert* expert = nullptr;
};

class ChainTrainerTest : public ::testing::Test {
 protected:
  // Layer 0: "c0.0" (w = 2) on server 10. Layer 1: "c1.0" (w = 3) on servers 11 and 12.
  void start(ChainOptions o, Numerics numerics = Numerics::kReal,
             std::vector<ExpertRef> layer1 = {{"c1.0", 11}, {"c1.0", 12}},
             std::vector<ExpertRef> layer0 = {{"c0.0", 10}}) {
    o.numerics = numerics;
    o.sample_shape = {2};
    FakeRuntime& rt = world_.add_peer(kTrainer);
    rpc_ = std::make_unique<RpcEndpoint>(rt);
    app_ = std::make_unique<RpcApp>(*rpc_);
    world_.attach(kTrainer, app_.get());
    add_server(10, "c0.0", 2, numerics);
    add_server(11, "c1.0", 3, numerics);
    add_server(12, "c1.0", 3, numerics);
    MixtureCallOptions m;
    m.forward_timeout = 2s;
    m.backward_timeout = 2s;
    m.timeout_after_k_min = 0s;
    mixture_ = std::make_unique<RemoteMixture>(rt, *rpc_, m, numerics);
    finders_.push_back(std::make_unique<ListFinder>(rt, layer0));
    finders_.push_back(std::make_unique<ListFinder>(rt, layer1));
    std::vector<ChainLayer> layers{{finders_[0].get(), {1}}, {finders_[1].get(), {1}}};
    trainer_ = std::make_unique<ChainTrainer>(rt, layers, *mixture_, o);
    trainer_->run();
  }
  void add_server(PeerId id, const std::string& uid, float w, Numerics numerics) {
    Server& s = servers_[id];
    FakeRuntime& rt = world_.add_peer(id);
    s.rpc = std::make_unique<RpcEndpoint>(rt);
    s.app = std::make_unique<RpcApp>(*s.rpc);
    world_.attach(id, s.app.get());
    s.server = std::make_unique<ExpertServer>(rt, *s.rpc, ExpertServerOptions().numerics(numerics));
    auto e = std::make_unique<ScaleExpert>(uid, 2, w, 0.0f, log_, 1000);
    s.expert = e.get();
    ASSERT_TRUE((numerics == Numerics::kReal ? s.server->add_expert(uid, std::move(e))
                                             : s.server->add_expert(uid, e->info()))
                    .ok());
    if (id == 11 && numerics == Numerics::kReal) {  // a replica of layer 0's expert too
      ASSERT_TRUE(
          s.server
              ->add_expert("c0.0", std::make_unique<ScaleExpert>("c0.0", 2, 2, 0.0f, log_, 1000))
              .ok());
    }
  }
  int64_t counter(const char* name) const { return world_.sink.counter(name); }

  FakeWorld world_;
  std::shared_ptr<CallLog> log_ = std::make_shared<CallLog>();
  std::unique_ptr<RpcEndpoint> rpc_;
  std::unique_ptr<RpcApp> app_;
  std::map<PeerId, Server> servers_;
  std::unique_ptr<RemoteMixture> mixture_;
  std::vector<std::unique_ptr<ListFinder>> finders_;
  std::unique_ptr<ChainTrainer> trainer_;  // last: destroyed first
};

TEST_F(ChainTrainerTest, ForwardPassesGoThroughEveryLayerInOrder) {
  ChainOptions o;
  o.batch = 3;
  start(o);
  world_.run_for(1s);
  ASSERT_GT(trainer_->passes(), 3u);
  EXPECT_EQ(trainer_->failures(), 0u);
  // Layer 0 then layer 1 (alternating replicas only when a lookup is repeated: found once).
  ASSERT_GE(log_->calls.size(), 4u);
  EXPECT_EQ(log_->calls[0], "c0.0.f");
  EXPECT_EQ(log_->calls[1], "c1.0.f");
  EXPECT_EQ(log_->calls[2], "c0.0.f");
  for (int64_t b : log_->batch_sizes) EXPECT_EQ(b, 3);
  EXPECT_EQ(finders_[0]->finds, 1);
  EXPECT_EQ(finders_[1]->finds, 1);
  // Every answered block call counted its samples (no warm-up); one may still be on its way back.
  const int64_t computed = 3 * static_cast<int64_t>(log_->calls.size());
  EXPECT_LE(counter("moe_chain_block_samples"), computed);
  EXPECT_GE(counter("moe_chain_block_samples"), computed - 3);
  EXPECT_EQ(counter("moe_chain_passes"), static_cast<int64_t>(trainer_->passes()));
}

TEST_F(ChainTrainerTest, BackwardRunsInReverseOrder) {
  ChainOptions o;
  o.batch = 2;
  o.backward = true;
  start(o);
  world_.run_for(1s);
  ASSERT_GT(trainer_->passes(), 1u);
  ASSERT_GE(log_->calls.size(), 8u);
  const std::vector<std::string> pass{"c0.0.f", "c1.0.f", "c1.0.b", "c0.0.b"};
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(log_->calls[i], pass[i % 4]) << i;
  EXPECT_GT(servers_[10].server->hosted().size(), 0u);
}

TEST_F(ChainTrainerTest, AFailedCallIsRetriedWithTheSameBatchOnAnotherReplica) {
  ChainOptions o;
  o.batch = 2;
  o.retry = 100ms;
  o.avoid_failed = 60s;
  start(o);
  world_.detach(11);  // layer 1's first replica is gone before anything reaches it
  world_.run_for(10s);
  EXPECT_EQ(trainer_->failures(), 1u);  // one time-out, then server 12 for good
  EXPECT_GT(trainer_->passes(), 10u);
  // The retried call went to 12 with the batch layer 0 produced: no pass restarted from layer 0
  // (as many layer-0 calls as layer-1 calls, give or take the one in flight).
  int64_t f0 = 0, f1 = 0;
  for (const std::string& c : log_->calls) (c == "c0.0.f" ? f0 : f1)++;
  EXPECT_LE(f0 - f1, 1);
  // Lookups of layer 1: the first (11), the one after the failure (12, not suspected).
  EXPECT_EQ(finders_[1]->finds, 2);
  EXPECT_EQ(counter("moe_chain_failures"), 1);
}

TEST_F(ChainTrainerTest, AReplicaOnASuspectedServerIsDrawnAgain) {
  ChainOptions o;
  o.batch = 2;
  o.retry = 100ms;
  // Lookups of layer 1 answer 11, 11, 12, 11, ...: after 11 fails, the second 11 is suspected.
  start(o, Numerics::kReal, {{"c1.0", 11}, {"c1.0", 11}, {"c1.0", 12}});
  world_.detach(11);
  world_.run_for(5s);
  EXPECT_EQ(trainer_->failures(), 1u);
  EXPECT_EQ(finders_[1]->finds, 3);
  EXPECT_GT(trainer_->passes(), 5u);
  // 11 comes back: nothing fails, so the trainer stays on 12 and looks nothing up.
  world_.attach(11, servers_[11].app.get());
  world_.run_for(5s);
  EXPECT_EQ(finders_[1]->finds, 3);
  EXPECT_EQ(trainer_->failures(), 1u);
}

// Both layers run on server 11 until it dies: the first time-out makes the trainer drop 11 for
// the other layer as well, so only one call ever waits for a time-out.
TEST_F(ChainTrainerTest, AFailedServerIsDroppedForEveryLayerItServes) {
  ChainOptions o;
  o.batch = 2;
  o.retry = 100ms;
  o.avoid_failed = 60s;
  start(o, Numerics::kReal, {{"c1.0", 11}, {"c1.0", 11}, {"c1.0", 12}},
        {{"c0.0", 11}, {"c0.0", 10}});
  world_.run_for(1s);
  ASSERT_GT(trainer_->passes(), 3u);
  ASSERT_EQ(trainer_->failures(), 0u);
  world_.detach(11);
  world_.run_for(10s);
  EXPECT_EQ(trainer_->failures(), 1u);
  EXPECT_GT(trainer_->passes(), 10u);
  EXPECT_EQ(finders_[0]->finds, 2);  // 11, then 10
  EXPECT_EQ(finders_[1]->finds, 3);  // 11; after the failure 11 (suspected: drawn again), 12
}

TEST_F(ChainTrainerTest, WarmUpCallsAreNotCounted) {
  ChainOptions o;
  o.batch = 4;
  o.warmup = 500ms;
  start(o);
  world_.run_for(500ms);
  EXPECT_EQ(counter("moe_chain_block_samples"), 0);
  const size_t before = log_->calls.size();
  world_.run_for(500ms);
  const int64_t after = static_cast<int64_t>(log_->calls.size() - before);
  // The calls answered after the warm-up (the one in flight at 500 ms may count too).
  EXPECT_GE(counter("moe_chain_block_samples"), 4 * (after - 1));
  EXPECT_LE(counter("moe_chain_block_samples"), 4 * (after + 1));
}

TEST_F(ChainTrainerTest, TimingNumericsMovesShapesOnly) {
  ChainOptions o;
  o.batch = 5;
  o.backward = true;
  start(o, Numerics::kTiming);
  world_.run_for(1s);
  EXPECT_GT(trainer_->passes(), 1u);
  EXPECT_EQ(trainer_->failures(), 0u);
  EXPECT_TRUE(log_->calls.empty());  // timing servers run no expert code
  EXPECT_GT(counter("moe_chain_block_samples"), 0);
}

}  // namespace
}  // namespace crowdtrain::moe
