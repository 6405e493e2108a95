// Moshpit SGD pieces on the fake runtime, with synthetic data (no MNIST): the TrainerSource over a
// model's parameters (and optimizer state) round-trips and refuses bad deltas; a state response
// installs the exact state and a malformed one is refused without touching the trainer; a joiner
// downloads the exact state of a live peer, or starts from its own init when nobody answers; four
// peers averaging with the real Averager (all-reduce of everybody) end with equal parameters, and
// with tau steps per round take exactly tau steps between rounds;
// member weights (samples trained) pass through matchmaking into the group average.
#include <gtest/gtest.h>

#include <torch/torch.h>
#include <algorithm>

#include "core/averaging/averager.h"
#include "core/tensor_codec.h"
#include "core/train/moshpit_sgd.h"
#include "core/train/state_transfer.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::train {
namespace {

using crowdtrain::testing::FakeWorld;

Dataset noise_data(int64_t n, int64_t dims, uint64_t seed) {
  torch::manual_seed(seed);
  return Dataset(torch::randn({n, dims}), torch::randint(0, 4, {n}, torch::kInt64), 4);
}

std::unique_ptr<LocalTrainer> make_trainer(uint64_t init, int64_t dims = 16, double lr = 0.05) {
  return std::make_unique<LocalTrainer>(
      make_model(ModelOptions().input_dim(dims).hidden(32).depth(1).num_classes(4), init),
      noise_data(64, dims, init + 100),
      LocalTrainerOptions().optimizer(OptimizerKind::kSgd).lr(lr).momentum(0.9).seed(init));
}

TEST(TrainerSource, SnapshotAndDeltaRoundTrip) {
  auto t = make_trainer(1);
  t->step_now();  // creates momentum buffers
  TrainerSource source(*t, /*with_optimizer=*/true);
  const torch::Tensor snap = source.snapshot();
  const int64_t p = t->num_parameters();
  ASSERT_EQ(snap.numel(), 2 * p);
  EXPECT_TRUE(snap.narrow(0, 0, p).equal(t->parameters()));
  EXPECT_TRUE(snap.narrow(0, p, p).equal(t->optimizer_state()));
  // Average with a made-up partner: apply (target - snapshot), get the target.
  const torch::Tensor target = snap + torch::randn_like(snap);
  source.add_samples(96);
  EXPECT_EQ(source.weight(), 96.0);
  source.apply_delta(target - snap);
  EXPECT_TRUE(torch::allclose(t->parameters(), target.narrow(0, 0, p)));
  EXPECT_TRUE(torch::allclose(t->optimizer_state(), target.narrow(0, p, p)));
  EXPECT_EQ(source.deltas_applied(), 1);
  EXPECT_EQ(source.weight(), 1.0);  // samples counted from the last delta
}

TEST(TrainerSource, RefusesWrongSizeAndNonFinite) {
  auto t = make_trainer(2);
  TrainerSource source(*t, false);
  const torch::Tensor before = t->parameters();
  source.apply_delta(torch::ones({before.numel() + 1}));
  torch::Tensor nan = torch::zeros({before.numel()});
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  source.apply_delta(nan);
  EXPECT_EQ(source.deltas_refused(), 2);
  EXPECT_EQ(source.deltas_applied(), 0);
  EXPECT_TRUE(t->parameters().equal(before));
}

TEST(StateTransfer, InstallsTheExactState) {
  auto server = make_trainer(3, 300);
  for (int i = 0; i < 3; ++i) server->step_now();
  auto joiner = make_trainer(4, 300);
  const Message response = make_state_response(*server, true);
  auto r = install_state(response, *joiner, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->server_steps, 3);
  EXPECT_TRUE(joiner->parameters().equal(server->parameters()));
  EXPECT_TRUE(joiner->optimizer_state().equal(server->optimizer_state()));
  // The invariant the state service checks after every download: the joiner holds what was sent.
  EXPECT_TRUE(holds_installed_state(*joiner, r.value()));
  joiner->step_now();
  EXPECT_FALSE(holds_installed_state(*joiner, r.value()));
}

TEST(StateTransfer, LargeStateComesInBoundedChunks) {
  auto server = make_trainer(5, 5000);  // 5000*32 weights: more than one chunk
  const Message response = make_state_response(*server, false);
  const auto chunks = response.all(kTagStateChunk);
  ASSERT_GE(chunks.size(), 2u);
  for (const Field* f : chunks) {
    EXPECT_LE(std::get<TensorData>(f->value).numel(), kStateChunkElements);
  }
  auto joiner = make_trainer(6, 5000);
  ASSERT_TRUE(install_state(response, *joiner, false).ok());
  EXPECT_TRUE(joiner->parameters().equal(server->parameters()));
}

// Replaces the first chunk of `m` with `t`.
Message with_first_chunk(Message m, const torch::Tensor& t) {
  for (Field& f : m.fields) {
    if (f.tag == kTagStateChunk) {
      f.value = to_tensor_data(t);
      break;
    }
  }
  return m;
}

TEST(StateTransfer, MalformedStateIsRefusedAndNothingInstalled) {
  auto server = make_trainer(7);
  server->step_now();
  auto joiner = make_trainer(8);
  const torch::Tensor before = joiner->parameters();
  const Message good = make_state_response(*server, true);
  const torch::Tensor first =
      from_tensor_data(std::get<TensorData>(good.all(kTagStateChunk)[0]->value)).value().clone();

  torch::Tensor nan = first.clone();
  nan[0] = std::numeric_limits<float>::infinity();
  struct Case {
    const char* name;
    Message msg;
    const char* why;
  };
  Message mismatched = make_state_response(*make_trainer(9, 20), true);  // another model's shape
  Message no_stats = make_state_response(*server, false);
  Message refused(MsgType::kTrainStateResponse);
  refused.add_bytes(kTagError, "not ready");
  Message truncated = good;
  truncated.fields.pop_back();
  Message no_digest = good;
  no_digest.fields.erase(std::remove_if(no_digest.fields.begin(), no_digest.fields.end(),
                                        [](const Field& f) { return f.tag == kTagStateDigest; }),
                         no_digest.fields.end());
  std::vector<Case> cases = {
      {"nan", with_first_chunk(good, nan), "non-finite"},
      {"dtype", with_first_chunk(good, first.to(torch::kFloat64)), "1-D float32"},
      {"shape", with_first_chunk(good, first.reshape({1, -1})), "1-D float32"},
      {"mismatched model", mismatched, "parameters, the model has"},
      {"missing statistics", no_stats, "optimizer statistics"},
      {"server refused", refused, "not ready"},
      {"truncated", truncated, "elements, declared"},
      {"tampered", with_first_chunk(good, first + 1e-3f), "do not hash to the digest sent"},
      {"no digest", no_digest, "state: "},
  };
  for (const Case& c : cases) {
    auto r = install_state(c.msg, *joiner, true);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find(c.why), std::string::npos)
        << c.name << ": " << r.status().message();
    EXPECT_TRUE(joiner->parameters().equal(before)) << c.name;
  }
}

// An averaging app that does nothing (the state-download tests need none).
class NoAveraging final : public PeerApp {
 public:
  void start() override {}
  void on_message(PeerId, Message) override {}
};

class Recorder final : public TrainingObserver {
 public:
  void on_ready(Runtime& rt, LocalTrainer& trainer) override {
    ready[rt.self()] = trainer.parameters();
  }
  void on_step(Runtime&) override {}
  void on_gone(PeerId) override {}
  std::map<PeerId, torch::Tensor> ready;  // parameters when training began
};

AveragingAppFactory no_averaging() {
  return [](std::shared_ptr<AveragingSource>, std::shared_ptr<AveragingObserver>) {
    return std::make_unique<NoAveraging>();
  };
}

TEST(MoshpitSgdPeer, JoinerDownloadsTheExactState) {
  FakeWorld world(1);
  auto recorder = std::make_shared<Recorder>();
  auto& rt0 = world.add_peer(0);
  auto& rt1 = world.add_peer(1);
  MoshpitSgdPeer server(rt0, MoshpitSgdOptions(), make_trainer(10), no_averaging(), recorder);
  MoshpitSgdOptions o;
  o.download_state = true;
  o.average_optimizer_state = true;
  o.state_peers = {0};
  MoshpitSgdPeer joiner(rt1, o, make_trainer(11), no_averaging(), recorder);
  world.attach(0, &server);
  world.attach(1, &joiner);
  // Capture the state as it leaves the server.
  torch::Tensor sent;
  world.filter = [&](PeerId, PeerId, Message& m) {
    if (m.type == MsgType::kTrainStateResponse) {
      auto t = make_trainer(12);
      EXPECT_TRUE(install_state(m, *t, false).ok());
      sent = t->parameters();
    }
    return true;
  };
  server.start();
  world.run_for(std::chrono::milliseconds(50));  // the server trains a few steps
  joiner.start();
  world.run_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(joiner.downloaded_state());
  ASSERT_TRUE(sent.defined());
  ASSERT_TRUE(recorder->ready.count(1));
  EXPECT_TRUE(recorder->ready[1].equal(sent));
  EXPECT_FALSE(sent.equal(recorder->ready[0]));  // the server had trained past its init
  EXPECT_EQ(world.sink.counter("train_state_downloads"), 1);
  world.detach(0);
  world.detach(1);
}

TEST(MoshpitSgdPeer, StartsFromItsInitWhenNobodyAnswers) {
  FakeWorld world(2);
  auto recorder = std::make_shared<Recorder>();
  auto& rt1 = world.add_peer(1);
  MoshpitSgdOptions o;
  o.download_state = true;
  o.state_peers = {0, 2};  // neither exists
  o.state_timeout = std::chrono::milliseconds(200);
  auto trainer = make_trainer(13);
  const torch::Tensor init = trainer->parameters();
  MoshpitSgdPeer joiner(rt1, o, std::move(trainer), no_averaging(), recorder);
  world.attach(1, &joiner);
  joiner.start();
  world.run_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(joiner.training());
  EXPECT_FALSE(joiner.downloaded_state());
  ASSERT_TRUE(recorder->ready.count(1));
  EXPECT_TRUE(recorder->ready[1].equal(init));
  EXPECT_EQ(world.sink.counter("train_state_failed"), 2);
  EXPECT_EQ(world.sink.counter("train_state_from_init"), 1);
  world.detach(1);
}

// Four peers whose Averagers all-reduce everybody (rounds at 3 s and 13 s), from inits 20..23.
std::vector<std::unique_ptr<MoshpitSgdPeer>> four_averaging_peers(FakeWorld& world,
                                                                  MoshpitSgdOptions o,
                                                                  uint32_t rounds, double lr,
                                                                  torch::Tensor* mean_init) {
  std::vector<std::unique_ptr<MoshpitSgdPeer>> peers;
  for (PeerId p = 0; p < 4; ++p) {
    auto& rt = world.add_peer(p);
    AveragerOptions a;
    a.key_mode = GroupKeyMode::kEveryone;
    a.key_prefix = "t";
    if (p > 0) a.bootstrap = {0};
    a.first_round = std::chrono::seconds(3);
    a.round_interval = std::chrono::seconds(10);
    a.rounds = rounds;
    a.matchmaking.target_group_size(4).min_group_size(4).timeout(std::chrono::seconds(4));
    a.allreduce.timeout(std::chrono::seconds(4));
    AveragingAppFactory factory = [&rt, a](std::shared_ptr<AveragingSource> source,
                                           std::shared_ptr<AveragingObserver> observer) {
      return std::unique_ptr<PeerApp>(std::make_unique<Averager>(rt, a, source, observer));
    };
    auto trainer = make_trainer(20 + p, 784, lr);
    if (mean_init) {
      const torch::Tensor init = trainer->parameters();
      *mean_init = mean_init->defined() ? *mean_init + init / 4 : init / 4;
    }
    peers.push_back(std::make_unique<MoshpitSgdPeer>(rt, o, std::move(trainer), factory, nullptr));
    world.attach(p, peers.back().get());
  }
  return peers;
}

TEST(MoshpitSgdPeer, FourPeersAveragingEndWithEqualParameters) {
  FakeWorld world(3);
  torch::Tensor mean_init;
  // A tiny learning rate: local steps barely move the parameters, averaging must make them equal.
  auto peers = four_averaging_peers(world, MoshpitSgdOptions(), 1, 1e-9, &mean_init);
  for (auto& peer : peers) peer->start();
  world.run_for(std::chrono::seconds(2));
  EXPECT_FALSE(peers[0]->trainer().parameters().allclose(peers[1]->trainer().parameters()));
  world.run_for(std::chrono::seconds(6));
  EXPECT_EQ(world.sink.counter("averaging_groups"), 4);
  for (auto& peer : peers) {
    EXPECT_GT(peer->trainer().steps_done(), 10);
    EXPECT_EQ(peer->source().deltas_applied(), 1);
    EXPECT_TRUE(peer->trainer().parameters().allclose(mean_init, 1e-5, 1e-6));
  }
  for (PeerId p = 0; p < 4; ++p) world.detach(p);
}

TEST(MoshpitSgdPeer, TauStepsPerRoundThenWaitForTheRound) {
  FakeWorld world(4);
  MoshpitSgdOptions o;
  o.steps_per_round = 3;
  auto peers = four_averaging_peers(world, o, 2, 0.05, nullptr);
  for (auto& peer : peers) peer->start();
  world.run_for(std::chrono::seconds(2));  // before the first round ends: tau steps, then waiting
  for (auto& peer : peers) EXPECT_EQ(peer->trainer().steps_done(), 3);
  world.run_for(std::chrono::seconds(30));  // both rounds ended: tau more steps after each
  EXPECT_EQ(world.sink.counter("averaging_groups"), 8);
  EXPECT_EQ(world.sink.counter("train_waited_for_round"), 8);
  for (auto& peer : peers) {
    EXPECT_EQ(peer->trainer().steps_done(), 9);
    EXPECT_EQ(peer->source().deltas_applied(), 2);
  }
  for (PeerId p = 0; p < 4; ++p) world.detach(p);
}

// A fixed vector with a chosen weight.
class WeightedSource final : public AveragingSource {
 public:
  WeightedSource(float value, double weight) : value_(torch::full({4}, value)), weight_(weight) {}
  at::Tensor snapshot() override { return value_.clone(); }
  void apply_delta(const at::Tensor& delta) override { value_ += delta; }
  double weight() const override { return weight_; }
  torch::Tensor value_;
  double weight_;
};

// Member weights travel through matchmaking: a peer that trained 3x the samples counts 3x.
TEST(MoshpitSgdPeer, GroupAverageIsWeightedBySamples) {
  FakeWorld world(4);
  std::vector<std::shared_ptr<WeightedSource>> sources = {
      std::make_shared<WeightedSource>(0.0f, 3.0), std::make_shared<WeightedSource>(4.0f, 1.0),
      std::make_shared<WeightedSource>(8.0f, 0.0)};
  std::vector<std::unique_ptr<Averager>> peers;
  for (PeerId p = 0; p < 3; ++p) {
    AveragerOptions a;
    a.key_mode = GroupKeyMode::kEveryone;
    if (p > 0) a.bootstrap = {0};
    a.first_round = std::chrono::seconds(2);
    a.rounds = 1;
    a.matchmaking.target_group_size(3).min_group_size(3).timeout(std::chrono::seconds(4));
    a.allreduce.timeout(std::chrono::seconds(4));
    peers.push_back(std::make_unique<Averager>(world.add_peer(p), a, sources[p], nullptr));
    world.attach(p, peers.back().get());
  }
  for (auto& peer : peers) peer->start();
  world.run_for(std::chrono::seconds(9));
  EXPECT_EQ(world.sink.counter("averaging_groups"), 3);
  for (const auto& source : sources) {  // (3 * 0 + 1 * 4 + 0 * 8) / 4
    EXPECT_TRUE(source->value_.allclose(torch::full({4}, 1.0f))) << source->value_;
  }
  for (PeerId p = 0; p < 3; ++p) world.detach(p);
}

}  // namespace
}  // namespace crowdtrain::train
