// Butterfly all-reduce on the fake world: exact weighted means as deltas for 2, 4 and 8 peers,
// client and aux members, every kind of failure ending within the time-out with the documented
// partial result, malformed and mismatched messages refused and counted, determinism.
#include "core/averaging/allreduce.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <optional>

#include "core/averaging/allreduce_wire.h"
#include "core/tensor_codec.h"
#include "tests/fake_runtime.h"

namespace crowdtrain {
namespace {

using testing::FakeRuntime;
using testing::FakeWorld;

constexpr int64_t kElems = 10000;
const Time kTimeout = std::chrono::seconds(2);

AllReduceOptions test_options() {
  return AllReduceOptions()
      .timeout(kTimeout)
      .sender_timeout(std::chrono::milliseconds(300))
      .reducer_timeout(std::chrono::milliseconds(600))
      .chunk_bytes(4096);  // ~1000 floats: several chunks per part
}

class AvgApp : public PeerApp {
 public:
  AvgApp(FakeRuntime& rt, AllReduceGroup g, at::Tensor local, AllReduceOptions o)
      : rt_(rt), local(local), original(local.clone()) {
    round = std::make_unique<AllReduceRound>(rt, std::move(g), local, o,
                                             [this](Result<AllReduceOutcome> r) {
                                               result.emplace(std::move(r));
                                               done_at = rt_.now();
                                             });
  }
  void start() override { round->start(); }
  void on_message(PeerId from, Message msg) override {
    if (round && !round->handle(from, msg)) ++unhandled;
  }
  FakeRuntime& rt_;
  at::Tensor local, original;
  std::unique_ptr<AllReduceRound> round;
  std::optional<Result<AllReduceOutcome>> result;
  Time done_at{0};
  int unhandled = 0;
};

struct Harness {
  FakeWorld world{5};
  AllReduceGroup group;
  std::vector<std::unique_ptr<AvgApp>> apps;
  std::vector<at::Tensor> inputs;

  Harness(size_t n, uint64_t seed, AllReduceOptions o = test_options(),
          std::vector<AveragingMode> modes = {}, std::vector<double> bandwidths = {}) {
    torch::manual_seed(seed);
    Rng rng(seed);
    group.group_id = 1000 + seed;
    group.round = 7;
    for (size_t i = 0; i < n; ++i) {
      GroupMember m;
      m.peer = static_cast<PeerId>(10 + i);
      m.weight = 0.5 + rng.uniform01();
      m.bandwidth = bandwidths.empty() ? 1.0 : bandwidths[i];
      m.mode = modes.empty() ? AveragingMode::kNode : modes[i];
      group.members.push_back(m);
      inputs.push_back(torch::randn({kElems}));
    }
    for (size_t i = 0; i < n; ++i) {
      auto& rt = world.add_peer(group.members[i].peer);
      apps.push_back(std::make_unique<AvgApp>(rt, group, inputs[i], o));
      world.attach(group.members[i].peer, apps.back().get());
    }
  }
  void start_all() {
    for (auto& a : apps) a->start();
  }
  // Weighted mean of the senders' inputs, optionally leaving some out.
  at::Tensor mean(std::vector<size_t> without = {}) const {
    at::Tensor sum = torch::zeros({kElems});
    double w = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (group.members[i].mode == AveragingMode::kAux) continue;
      if (std::find(without.begin(), without.end(), i) != without.end()) continue;
      sum += inputs[i] * group.members[i].weight;
      w += group.members[i].weight;
    }
    return sum / w;
  }
  const AllReduceOutcome& out(size_t i) const {
    EXPECT_TRUE(apps[i]->result.has_value()) << "peer " << i << " not done";
    EXPECT_TRUE(apps[i]->result->ok()) << apps[i]->result->error();
    return apps[i]->result->value();
  }
  at::Tensor averaged(size_t i) const { return inputs[i] + *out(i).delta; }
  Span part(size_t j) const { return part_spans(apps[0]->round->part_sizes())[j]; }
  void expect_done_in_time() const {
    for (size_t i = 0; i < apps.size(); ++i) {
      ASSERT_TRUE(apps[i]->result.has_value()) << "peer " << i;
      EXPECT_LE(apps[i]->done_at, kTimeout) << "peer " << i;
      EXPECT_TRUE(torch::equal(apps[i]->local, apps[i]->original)) << "local tensor touched";
    }
  }
};

void expect_near(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5))
      << what << ": max diff " << (a - b).abs().max().item<double>();
}

TEST(AllReduce, ExactWeightedMean) {
  for (size_t n : {2, 4, 8}) {
    // Unequal bandwidths: the slowest member's own traffic bounds the round, so it averages nothing
    // and faster members take larger parts.
    std::vector<double> bw;
    for (size_t i = 0; i < n; ++i) bw.push_back(1.0 + static_cast<double>(i % 3));
    Harness h(n, n, test_options(), {}, bw);
    h.start_all();
    h.world.run_for(std::chrono::seconds(3));
    h.expect_done_in_time();
    const at::Tensor want = h.mean();
    for (size_t i = 0; i < n; ++i) {
      expect_near(h.averaged(i), want, "n=" + std::to_string(n) + " peer " + std::to_string(i));
      const AllReduceStats& s = h.out(i).stats;
      EXPECT_EQ(s.elements_averaged, kElems);
      EXPECT_EQ(s.elements_local, 0);
      EXPECT_EQ(s.refused, 0);
      EXPECT_FALSE(s.timed_out);
      EXPECT_LT(s.duration, std::chrono::milliseconds(100));  // a few latencies, no time-out
    }
    EXPECT_EQ(h.world.sink.counter("allreduce_rounds"), static_cast<int64_t>(n));
  }
}

TEST(AllReduce, ClientAndAuxMembers) {
  using M = AveragingMode;
  Harness h(4, 21, test_options(), {M::kNode, M::kClient, M::kAux, M::kNode}, {1, 0, 4, 1});
  EXPECT_EQ(h.apps[0]->round->part_sizes()[1], 0);  // the client averages nothing
  EXPECT_GT(h.apps[0]->round->part_sizes()[2], 0);  // the aux member does
  h.start_all();
  h.world.run_for(std::chrono::seconds(3));
  h.expect_done_in_time();
  const at::Tensor want = h.mean();  // without the aux member's vector
  for (size_t i : {0, 1, 3}) expect_near(h.averaged(i), want, "peer " + std::to_string(i));
  EXPECT_EQ(h.out(2).stats.elements, 0);
  EXPECT_EQ(h.out(2).delta->abs().sum().item<double>(), 0.0);
}

TEST(AllReduce, SingleMemberAndBadGroups) {
  Harness one(1, 3);
  one.start_all();
  one.world.run_for(std::chrono::milliseconds(1));
  EXPECT_LT(one.out(0).delta->abs().max().item<double>(), 1e-6);  // (w x) / w
  FakeWorld w;
  auto& rt = w.add_peer(99);
  AllReduceGroup g{1, 1, {{10}, {11}}};
  std::optional<Result<AllReduceOutcome>> r;
  AllReduceRound round(rt, g, torch::zeros({10}), test_options(),
                       [&](Result<AllReduceOutcome> x) { r.emplace(std::move(x)); });
  round.start();
  w.run_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->error().find("not in the group"), std::string::npos);
  AllReduceGroup dup{1, 1, {{99}, {99}}};
  AllReduceRound round2(rt, dup, torch::zeros({10}), test_options(),
                        [&](Result<AllReduceOutcome> x) { r.emplace(std::move(x)); });
  round2.start();
  w.run_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(r->ok());
  AllReduceRound round3(rt, AllReduceGroup{1, 1, {{99}}}, torch::zeros({10}, torch::kLong),
                        test_options(),
                        [&](Result<AllReduceOutcome> x) { r.emplace(std::move(x)); });
  round3.start();
  w.run_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(r->ok());
}

// Peer 2's chunks never leave it (it is alive and averages its own part).
TEST(AllReduce, SenderThatNeverSends) {
  Harness h(4, 31);
  const PeerId x = h.group.members[2].peer;
  h.world.filter = [x](PeerId from, PeerId, Message& m) {
    return !(from == x && m.type == MsgType::kAvgPart);
  };
  h.start_all();
  h.world.run_for(std::chrono::seconds(3));
  h.expect_done_in_time();
  const at::Tensor without = h.mean({2}), full = h.mean();
  const Span p2 = h.part(2);
  for (size_t i : {0, 1, 3}) {
    const at::Tensor got = h.averaged(i);
    // Part 2 is averaged by peer 2 itself, with everyone; the others leave peer 2 out.
    expect_near(got.narrow(0, p2.offset, p2.size), full.narrow(0, p2.offset, p2.size), "part 2");
    for (size_t j : {0, 1, 3}) {
      const Span p = h.part(j);
      expect_near(got.narrow(0, p.offset, p.size), without.narrow(0, p.offset, p.size), "part");
    }
    EXPECT_EQ(h.out(i).stats.elements_local, 0);
  }
  for (size_t j : {0, 1, 3}) {
    EXPECT_EQ(h.out(j).stats.senders_left_out, std::vector<PeerId>{x});
  }
  // Peer 2 hears the refusals: its other parts stay local; its own part is averaged.
  EXPECT_EQ(h.out(2).stats.elements_local, kElems - p2.size);
  EXPECT_EQ(h.out(2).stats.reducers_failed.size(), 3u);
  EXPECT_GE(h.world.sink.counter("allreduce_senders_left_out"), 3);
}

// Peer 1 sends the first chunk of every part, then stalls.
TEST(AllReduce, SenderThatStallsMidStream) {
  Harness h(4, 41);
  const PeerId x = h.group.members[1].peer;
  h.world.filter = [x](PeerId from, PeerId, Message& m) {
    return !(from == x && m.type == MsgType::kAvgPart && *m.u64(kTagAvgChunk) >= 1);
  };
  h.start_all();
  h.world.run_for(std::chrono::seconds(3));
  h.expect_done_in_time();
  const at::Tensor without = h.mean({1}), full = h.mean();
  const int64_t chunk = 4096 / 4 - 32;  // chunk_elements(4096, 4, 128)
  for (size_t i : {0, 2, 3}) {
    const at::Tensor got = h.averaged(i);
    for (size_t j : {0, 2, 3}) {
      const Span p = h.part(j);
      const Span first{p.offset, std::min(chunk, p.size)};
      expect_near(got.narrow(0, first.offset, first.size), full.narrow(0, first.offset, first.size),
                  "first chunk");
      expect_near(got.narrow(0, p.offset + first.size, p.size - first.size),
                  without.narrow(0, p.offset + first.size, p.size - first.size), "rest");
    }
  }
}

// Peer 3 dies at the start: it never averages its part, and its vector is not in the others'.
TEST(AllReduce, ReducerThatDies) {
  Harness h(4, 51);
  const PeerId x = h.group.members[3].peer;
  h.world.detach(x);
  h.apps[3]->round.reset();
  for (size_t i = 0; i < 3; ++i) h.apps[i]->start();
  h.world.run_for(std::chrono::seconds(3));
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(h.apps[i]->result.has_value());
    EXPECT_LE(h.apps[i]->done_at, kTimeout);
  }
  const at::Tensor without = h.mean({3});
  const Span p3 = h.part(3);
  for (size_t i = 0; i < 3; ++i) {
    const at::Tensor got = h.averaged(i);
    EXPECT_TRUE(
        torch::equal(got.narrow(0, p3.offset, p3.size), h.inputs[i].narrow(0, p3.offset, p3.size)));
    for (size_t j = 0; j < 3; ++j) {
      const Span p = h.part(j);
      expect_near(got.narrow(0, p.offset, p.size), without.narrow(0, p.offset, p.size), "part");
    }
    EXPECT_EQ(h.out(i).stats.elements_local, p3.size);
    EXPECT_EQ(h.out(i).stats.reducers_failed, std::vector<PeerId>{x});
  }
}

// Peer 2 dies after its first averaged chunk went out: the rest of part 2 stays local.
TEST(AllReduce, ReducerThatDiesMidStream) {
  Harness h(4, 55);
  const PeerId x = h.group.members[2].peer;
  h.world.filter = [x](PeerId from, PeerId, Message& m) {
    return !(from == x && m.type == MsgType::kAvgResult && *m.u64(kTagAvgChunk) >= 1);
  };
  h.start_all();
  h.world.run_for(std::chrono::milliseconds(15));  // chunks delivered, first results out
  h.world.detach(x);
  h.apps[2]->round.reset();
  h.world.run_for(std::chrono::seconds(3));
  const at::Tensor full = h.mean();
  const Span p2 = h.part(2);
  const int64_t chunk = 4096 / 4 - 32;
  ASSERT_GT(p2.size, chunk);
  for (size_t i : {0, 1, 3}) {
    ASSERT_TRUE(h.apps[i]->result.has_value());
    EXPECT_LE(h.apps[i]->done_at, kTimeout);
    const at::Tensor got = h.averaged(i);
    expect_near(got.narrow(0, p2.offset, chunk), full.narrow(0, p2.offset, chunk), "first");
    EXPECT_TRUE(torch::equal(got.narrow(0, p2.offset + chunk, p2.size - chunk),
                             h.inputs[i].narrow(0, p2.offset + chunk, p2.size - chunk)));
    EXPECT_EQ(h.out(i).stats.elements_local, p2.size - chunk);
    EXPECT_EQ(h.out(i).stats.reducers_failed, std::vector<PeerId>{x});
  }
}

// Heavy random loss: whatever arrives, every round ends by its time-out with a finite result, and
// every element is either the exact average of some subset or the local value.
TEST(AllReduce, HeavyLossEndsInTime) {
  Harness h(8, 57);
  h.world.loss = 0.3;
  h.start_all();
  h.world.run_for(std::chrono::seconds(3));
  h.expect_done_in_time();
  int64_t averaged = 0;
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_TRUE(torch::isfinite(h.averaged(i)).all().item<bool>());
    averaged += h.out(i).stats.elements_averaged;
  }
  EXPECT_GT(averaged, 0);
}

// Every message from peer 0 to peer 1 is lost.
TEST(AllReduce, OneLinkLosesEverything) {
  Harness h(4, 61);
  const PeerId a = h.group.members[0].peer, b = h.group.members[1].peer;
  h.world.filter = [a, b](PeerId from, PeerId to, Message&) { return !(from == a && to == b); };
  h.start_all();
  h.world.run_for(std::chrono::seconds(3));
  h.expect_done_in_time();
  const at::Tensor full = h.mean(), without_a = h.mean({0});
  // Peer 1 leaves peer 0 out of part 1 (and tells it, over the working direction): peer 0 keeps its
  // part 1 local. Peer 0's results for part 0 never reach peer 1: peer 1 keeps its part 0 local.
  for (size_t i = 0; i < 4; ++i) {
    const at::Tensor got = h.averaged(i);
    for (size_t j = 0; j < 4; ++j) {
      const Span p = h.part(j);
      at::Tensor want = full.narrow(0, p.offset, p.size);
      if (j == 1) want = (i == 0 ? h.inputs[0] : without_a).narrow(0, p.offset, p.size);
      if (j == 0 && i == 1) want = h.inputs[1].narrow(0, p.offset, p.size);
      expect_near(got.narrow(0, p.offset, p.size), want,
                  "peer " + std::to_string(i) + " part " + std::to_string(j));
    }
  }
  EXPECT_EQ(h.out(0).stats.elements_local, h.part(1).size);
  EXPECT_EQ(h.out(1).stats.elements_local, h.part(0).size);
  EXPECT_EQ(h.out(0).stats.reducers_failed, std::vector<PeerId>{b});
  EXPECT_EQ(h.out(1).stats.reducers_failed, std::vector<PeerId>{a});
  EXPECT_EQ(h.out(1).stats.senders_left_out, std::vector<PeerId>{a});
}

// Mismatched and malformed messages are refused, counted, and change nothing.
TEST(AllReduce, MismatchedMessagesRefused) {
  Harness h(3, 71);
  const PeerId p0 = h.group.members[0].peer, p1 = h.group.members[1].peer;
  auto& outsider = h.world.add_peer(500);
  h.start_all();
  const Span part1 = h.part(1);
  auto chunk = [&](uint64_t group, uint64_t round, uint64_t part, uint64_t k, at::Tensor t) {
    return make_chunk_message(MsgType::kAvgPart, ChunkHeader{group, round, part, k},
                              compress(t, Compression::kNone));
  };
  const at::Tensor ok = torch::ones({std::min<int64_t>(part1.size, 992)});
  const uint64_t g = h.group.group_id;
  outsider.send(p1, chunk(g, 7, 1, 0, ok));         // not a member
  h.world.send(p0, p1, chunk(g + 1, 7, 1, 0, ok));  // wrong group
  h.world.send(p0, p1, chunk(g, 8, 1, 0, ok));      // wrong round
  Message no_fields(MsgType::kAvgPart);
  h.world.send(p0, p1, no_fields);                           // malformed
  h.world.send(p0, p1, make_refuse_message(g, 6, "stale"));  // wrong round
  h.world.run_for(std::chrono::seconds(3));
  h.expect_done_in_time();
  const at::Tensor want = h.mean();
  for (size_t i = 0; i < 3; ++i) expect_near(h.averaged(i), want, "peer " + std::to_string(i));
  const auto& s = h.out(1).stats;
  EXPECT_EQ(s.refused_by_reason.at("not_member"), 1);
  EXPECT_EQ(s.refused_by_reason.at("wrong_group"), 1);
  EXPECT_EQ(s.refused_by_reason.at("wrong_round"), 2);
  EXPECT_EQ(s.refused_by_reason.at("malformed"), 1);
  EXPECT_EQ(h.world.sink.counter("allreduce_refused_wrong_round"), 2);
  EXPECT_EQ(h.apps[1]->unhandled, 1);  // the wrong group is offered back to the router
}

// A member's chunks arrive with NaN, the wrong size, the wrong dtype or an index out of range:
// the reducer refuses them, leaves the sender out, and the result stays finite and correct.
TEST(AllReduce, CorruptChunksLeaveTheSenderOut) {
  for (int fault = 0; fault < 4; ++fault) {
    Harness h(3, 80 + fault);
    const PeerId x = h.group.members[0].peer, r = h.group.members[2].peer;
    h.world.filter = [&, fault](PeerId from, PeerId to, Message& m) {
      if (from != x || to != r || m.type != MsgType::kAvgPart) return true;
      auto t = from_tensor_data(*m.tensor(kTagCodecData))->clone();
      Message out = m;
      out.fields.clear();
      ChunkHeader hd = *read_chunk_header(m);
      if (fault == 0) t[0] = NAN;
      if (fault == 1) t = t.narrow(0, 0, t.numel() - 1);
      if (fault == 2) t = t.to(torch::kFloat64);
      if (fault == 3) hd.chunk = 1000;
      m = make_chunk_message(MsgType::kAvgPart, hd, compress(t, Compression::kNone));
      return true;
    };
    h.start_all();
    h.world.run_for(std::chrono::seconds(3));
    h.expect_done_in_time();
    const at::Tensor without = h.mean({0}), full = h.mean();
    const Span p2 = h.part(2);
    for (size_t i : {1, 2}) {
      const at::Tensor got = h.averaged(i);
      EXPECT_TRUE(torch::isfinite(got).all().item<bool>());
      expect_near(got.narrow(0, p2.offset, p2.size), without.narrow(0, p2.offset, p2.size),
                  "fault " + std::to_string(fault));
      const Span p1 = h.part(1);
      expect_near(got.narrow(0, p1.offset, p1.size), full.narrow(0, p1.offset, p1.size), "p1");
    }
    EXPECT_EQ(h.out(2).stats.senders_left_out, std::vector<PeerId>{x});
    const char* reasons[] = {"non_finite", "bad_tensor", "bad_tensor", "chunk_out_of_range"};
    EXPECT_GE(h.out(2).stats.refused_by_reason.at(reasons[fault]), 1) << fault;
    // The sender is told and stops waiting for that reducer: its part 2 stays local.
    EXPECT_EQ(h.out(0).stats.reducers_failed, std::vector<PeerId>{r});
  }
}

TEST(AllReduce, CompressedOnTheWire) {
  for (auto c : {Compression::kFloat16, Compression::kScaledFloat16, Compression::kUniform8Bit,
                 Compression::kQuantile8Bit}) {
    Harness h(4, 91, test_options().compression(c));
    h.start_all();
    h.world.run_for(std::chrono::seconds(3));
    h.expect_done_in_time();
    const at::Tensor want = h.mean();
    // fp16 kinds: elementwise; 8-bit kinds: RMS (values beyond +-3 sigma clamp to the end bins).
    const bool fp16 = c == Compression::kFloat16 || c == Compression::kScaledFloat16;
    for (size_t i = 0; i < 4; ++i) {
      const at::Tensor err = h.averaged(i) - want;
      const double e =
          fp16 ? err.abs().max().item<double>() : err.square().mean().sqrt().item<double>();
      EXPECT_LT(e, fp16 ? 5e-3 : 0.03) << compression_name(c);
      EXPECT_EQ(h.out(i).stats.elements_local, 0);
    }
  }
}

TEST(AllReduce, Deterministic) {
  auto run = [](std::vector<at::Tensor>* deltas) {
    Harness h(8, 101);
    h.world.loss = 0.02;
    h.start_all();
    h.world.run_for(std::chrono::seconds(3));
    for (size_t i = 0; i < 8; ++i) deltas->push_back(h.out(i).delta->clone());
    return h.world.sink.event_log_sha256();
  };
  std::vector<at::Tensor> a, b;
  EXPECT_EQ(run(&a), run(&b));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i]));
}

}  // namespace
}  // namespace crowdtrain
