// Matchmaking through the DHT on the fake world: peers that look under one key form groups of the
// target size (every member handed the same group), leaders hand followers over to better leaders,
// a peer alone under its key times out, a group below the minimum does not begin, every member is
// handed every member's weight, bandwidth and mode, and a group of clients only does not begin.
#include "core/averaging/matchmaking.h"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <optional>
#include <set>

#include "core/averaging/round_slots.h"
#include "tests/fake_runtime.h"

namespace crowdtrain {
namespace {

using namespace std::chrono_literals;
using testing::FakeWorld;

class MmApp : public PeerApp {
 public:
  MmApp(Runtime& rt, std::vector<PeerId> boot, MatchmakingOptions o)
      : rt_(rt), rpc_(rt), boot_(std::move(boot)) {
    node_ = std::make_unique<dht::DhtNode>(rt, rpc_, dht::DhtId::random(rt.rng()),
                                           dht::DhtOptions().rpc_timeout(500ms));
    mm_ = std::make_unique<Matchmaker>(rt, rpc_, *node_, o);
  }
  void start() override {
    node_->start();
    node_->bootstrap(boot_, [](Status) {});
  }
  void on_message(PeerId from, Message msg) override {
    if (mm_->on_message(from, msg)) return;
    rpc_.handle(from, std::move(msg));
  }
  void look(const std::string& key) {
    mm_->look_for_group(key, 3, [this](Result<AllReduceGroup> g) {
      ++calls;
      result.emplace(std::move(g));
    });
  }
  Runtime& rt_;
  RpcEndpoint rpc_;
  std::vector<PeerId> boot_;
  std::unique_ptr<dht::DhtNode> node_;
  std::unique_ptr<Matchmaker> mm_;
  std::optional<Result<AllReduceGroup>> result;
  int calls = 0;
};

struct Swarm {
  FakeWorld world;
  std::vector<std::unique_ptr<MmApp>> apps;
  Swarm(size_t n, uint64_t seed, MatchmakingOptions o) : world(seed) {
    for (size_t i = 0; i < n; ++i) {
      auto& rt = world.add_peer(static_cast<PeerId>(i));
      std::vector<PeerId> boot;
      if (i > 0) boot = {0, static_cast<PeerId>(i - 1)};
      apps.push_back(std::make_unique<MmApp>(rt, boot, o));
      world.attach(static_cast<PeerId>(i), apps.back().get());
      world.schedule_at(Time(10ms) * static_cast<int64_t>(i),
                        [a = apps.back().get()] { a->start(); });
    }
    world.run_for(5s);
  }
};

MatchmakingOptions options(uint32_t target, uint32_t min) {
  return MatchmakingOptions()
      .target_group_size(target)
      .min_group_size(min)
      .declare_time(1s)
      .timeout(3s)
      .poll_interval(200ms)
      .begin_grace(500ms)
      .rpc_timeout(500ms);
}

// Checks that the groups are consistent; returns group id -> members.
std::map<uint64_t, std::vector<PeerId>> groups_of(Swarm& s, size_t first, size_t count) {
  std::map<uint64_t, std::vector<PeerId>> groups;
  for (size_t i = first; i < first + count; ++i) {
    auto& app = *s.apps[i];
    EXPECT_EQ(app.calls, 1) << "peer " << i;
    if (!app.result || !app.result->ok()) {
      ADD_FAILURE() << "peer " << i << " found no group";
      continue;
    }
    const AllReduceGroup& g = app.result->value();
    std::vector<PeerId> members;
    for (const auto& m : g.members) members.push_back(m.peer);
    auto [it, inserted] = groups.emplace(g.group_id, members);
    if (!inserted) EXPECT_EQ(it->second, members) << "peer " << i;
    EXPECT_EQ(g.round, 3u);
  }
  return groups;
}

TEST(Matchmaking, FormsGroupsOfTheTargetSize) {
  Swarm s(24, 1, options(4, 2));
  for (size_t i = 0; i < 12; ++i) s.apps[i]->look("avg.0b01");
  s.world.run_for(5s);
  const auto groups = groups_of(s, 0, 12);
  std::set<PeerId> seen;
  for (const auto& [id, members] : groups) {
    EXPECT_EQ(members.size(), 4u);
    for (PeerId p : members) EXPECT_TRUE(seen.insert(p).second) << "peer " << p << " twice";
  }
  EXPECT_EQ(seen.size(), 12u);
}

TEST(Matchmaking, OneFullGroupBeginsBeforeThePlannedStart) {
  Swarm s(16, 2, options(8, 2));
  const Time t0 = s.world.now();
  for (size_t i = 8; i < 16; ++i) s.apps[i]->look("avg.0b1");
  s.world.run_for(900ms);  // before the planned start (1 s)
  const auto groups = groups_of(s, 8, 8);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups.begin()->second.size(), 8u);
  EXPECT_LT(s.world.now() - t0, Time(1s));
}

TEST(Matchmaking, KeysDoNotMix) {
  Swarm s(20, 3, options(4, 2));
  for (size_t i = 0; i < 8; ++i) s.apps[i]->look(i % 2 ? "avg.0b1" : "avg.0b0");
  s.world.run_for(5s);
  for (const auto& [id, members] : groups_of(s, 0, 8)) {
    ASSERT_EQ(members.size(), 4u);
    for (PeerId p : members) EXPECT_EQ(p % 2, members[0] % 2);
  }
}

TEST(Matchmaking, AlonePeerTimesOut) {
  Swarm s(10, 4, options(4, 2));
  s.apps[5]->look("avg.0b11");
  s.world.run_for(2900ms);
  EXPECT_FALSE(s.apps[5]->result.has_value());
  s.world.run_for(2s);
  ASSERT_TRUE(s.apps[5]->result.has_value());
  EXPECT_FALSE(s.apps[5]->result->ok());
  EXPECT_EQ(s.apps[5]->calls, 1);
  EXPECT_GE(s.world.sink.counter("mm_no_group"), 1);
}

TEST(Matchmaking, BelowTheMinimumNoGroupBegins) {
  Swarm s(10, 5, options(4, 3));
  s.apps[2]->look("avg.0b10");
  s.apps[7]->look("avg.0b10");
  s.world.run_for(6s);
  for (size_t i : {2, 7}) {
    ASSERT_TRUE(s.apps[i]->result.has_value());
    EXPECT_FALSE(s.apps[i]->result->ok()) << "peer " << i;
    EXPECT_EQ(s.apps[i]->calls, 1);
  }
}

TEST(Matchmaking, EveryMemberGetsTheMembersWeightsBandwidthsAndModes) {
  Swarm s(12, 6, options(6, 2));
  for (size_t i = 0; i < 6; ++i) {
    s.apps[i]->mm_->set_weight(1.0 + static_cast<double>(i));
    s.apps[i]->mm_->set_bandwidth(10.0 * static_cast<double>(i + 1));
    s.apps[i]->mm_->set_mode(i == 4 ? AveragingMode::kClient : AveragingMode::kNode);
    s.apps[i]->look("avg.0b0");
  }
  s.world.run_for(5s);
  const auto groups = groups_of(s, 0, 6);
  ASSERT_EQ(groups.size(), 1u);
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(s.apps[i]->result && s.apps[i]->result->ok());
    const AllReduceGroup& g = s.apps[i]->result->value();
    ASSERT_EQ(g.members.size(), 6u);
    for (const GroupMember& m : g.members) {
      EXPECT_EQ(m.weight, 1.0 + m.peer) << "seen by " << i;
      EXPECT_EQ(m.bandwidth, 10.0 * (m.peer + 1)) << "seen by " << i;
      EXPECT_EQ(m.mode, m.peer == 4 ? AveragingMode::kClient : AveragingMode::kNode);
    }
  }
}

TEST(Matchmaking, ANonsenseAdvertisementReadsAsTheDefault) {
  Swarm s(8, 7, options(2, 2));
  s.apps[1]->mm_->set_bandwidth(-5);
  s.apps[2]->mm_->set_bandwidth(std::numeric_limits<double>::quiet_NaN());
  s.apps[1]->look("avg.0b1");
  s.apps[2]->look("avg.0b1");
  s.world.run_for(5s);
  ASSERT_EQ(groups_of(s, 1, 2).size(), 1u);
  for (const GroupMember& m : s.apps[1]->result->value().members) EXPECT_EQ(m.bandwidth, 1.0);
}

TEST(Matchmaking, AGroupOfClientsOnlyDoesNotBegin) {
  Swarm s(8, 8, options(2, 2));
  for (size_t i : {3, 6}) {
    s.apps[i]->mm_->set_mode(AveragingMode::kClient);
    s.apps[i]->look("avg.0b11");
  }
  s.world.run_for(6s);
  for (size_t i : {3, 6}) {
    ASSERT_TRUE(s.apps[i]->result.has_value());
    ASSERT_FALSE(s.apps[i]->result->ok()) << "peer " << i;
    EXPECT_EQ(s.apps[i]->calls, 1);
  }
  bool said = false;
  for (size_t i : {3, 6}) {
    said |= s.apps[i]->result->status().message().find("can average") != std::string::npos;
  }
  EXPECT_TRUE(said);
}

// A peer up before round 0 takes it; one up later takes the next slot, or the one that began less
// than the grace ago (its peers still declaring themselves).
TEST(RoundSlots, ALatePeerTakesTheNextRoundOrOneStillGathering) {
  const Time first = 2s, interval = 4s;
  EXPECT_EQ(first_open_round(1s, first, interval), 0u);
  EXPECT_EQ(first_open_round(2s, first, interval), 0u);
  EXPECT_EQ(first_open_round(2045ms, first, interval), 1u);
  EXPECT_EQ(first_open_round(2045ms, first, interval, 250ms), 0u);
  EXPECT_EQ(first_open_round(2300ms, first, interval, 250ms), 1u);
  EXPECT_EQ(first_open_round(6100ms, first, interval, 250ms), 1u);
  EXPECT_EQ(first_open_round(6250ms, first, interval, 250ms), 2u);
  EXPECT_EQ(first_open_round(5900ms, first, interval, 250ms), 1u);
}

}  // namespace
}  // namespace crowdtrain
