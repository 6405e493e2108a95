// core/moe/server: batching up to max_batch_size (FIFO within a pool), the oldest pool first across
// experts and directions, every refusal with the server alive afterwards, non-finite backward not
// applied, timing-only mode (fillers, compute charged as FakeRuntime's 1 flop = 1 ns), and
// checkpoints written atomically and resumed by a new server. On the FakeWorld.
#include "core/moe/server.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "tests/core/moe/rpc_app.h"
#include "tests/core/moe/scale_expert.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeRuntime;
using crowdtrain::testing::FakeWorld;
using testing::CallLog;
using testing::floats;
using testing::rows_of;
using testing::RpcApp;
using testing::ScaleExpert;
using testing::values_of;

constexpr PeerId kServer = 1, kClient = 2;

struct Answer {
  bool done = false;
  Time at{0};
  Result<Message> result = Status::error("no answer yet");
};

class ServerTest : public ::testing::Test {
 protected:
  void start(ExpertServerOptions options) {
    server_rt_ = &world_.add_peer(kServer);
    client_rt_ = &world_.add_peer(kClient);
    server_rpc_ = std::make_unique<RpcEndpoint>(*server_rt_);
    client_rpc_ = std::make_unique<RpcEndpoint>(*client_rt_);
    server_app_ = std::make_unique<RpcApp>(*server_rpc_);
    client_app_ = std::make_unique<RpcApp>(*client_rpc_);
    world_.attach(kServer, server_app_.get());
    world_.attach(kClient, client_app_.get());
    server_ = std::make_unique<ExpertServer>(*server_rt_, *server_rpc_, std::move(options));
  }
  ScaleExpert* add(const std::string& uid, float w, double flops = 1000, int64_t dim = 2) {
    auto e = std::make_unique<ScaleExpert>(uid, dim, w, 0.5f, log_, flops);
    ScaleExpert* raw = e.get();
    EXPECT_TRUE(server_->add_expert(uid, std::move(e)).ok());
    return raw;
  }
  // Sends `request` after `delay`; the answer lands in the returned slot.
  std::shared_ptr<Answer> send(Message request, Time delay = 0ms) {
    auto slot = std::make_shared<Answer>();
    client_rt_->schedule(delay, [this, slot, request = std::move(request)]() mutable {
      client_rpc_->call(kServer, std::move(request), CallOptions().with_timeout(100s),
                        [this, slot](Result<Message> r) {
                          EXPECT_FALSE(slot->done) << "answered twice";
                          slot->done = true;
                          slot->at = world_.now();
                          slot->result = std::move(r);
                        });
    });
    return slot;
  }
  std::shared_ptr<Answer> forward(const std::string& uid, TensorData x, Time delay = 0ms) {
    return send(encode_forward_request({uid, Numerics::kReal, std::move(x)}), delay);
  }
  std::shared_ptr<Answer> backward(const std::string& uid, TensorData x, TensorData g,
                                   Time delay = 0ms) {
    return send(encode_backward_request({uid, Numerics::kReal, std::move(x), std::move(g)}), delay);
  }
  int64_t counter(const std::string& name) { return world_.sink.counter(name); }

  FakeWorld world_{3};
  FakeRuntime* server_rt_ = nullptr;
  FakeRuntime* client_rt_ = nullptr;
  std::unique_ptr<RpcEndpoint> server_rpc_, client_rpc_;
  std::unique_ptr<RpcApp> server_app_, client_app_;
  std::unique_ptr<ExpertServer> server_;
  std::shared_ptr<CallLog> log_ = std::make_shared<CallLog>();
};

// The floats of the batch `field` of an answer decoded by `decode` ({} after a test failure when
// there is no good answer).
template <typename Decoded>
std::vector<float> answer_values(const Answer& a,
                                 Result<Decoded> (*decode)(const Message&, const ProtocolLimits&),
                                 TensorData Decoded::*field) {
  EXPECT_TRUE(a.done);
  if (!a.result.ok()) {
    ADD_FAILURE() << a.result.error();
    return {};
  }
  auto r = decode(a.result.value(), {});
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? values_of((*r).*field) : std::vector<float>{};
}

std::vector<float> outputs(const Answer& a) {
  return answer_values(a, decode_forward_response, &ForwardResponse::outputs);
}

std::vector<float> scaled(const TensorData& x, float w) {
  std::vector<float> v = values_of(x);
  for (float& e : v) e *= w;
  return v;
}

TEST_F(ServerTest, RequestsArrivingTogetherAreBatchedUpToMaxBatchSizeFifo) {
  start(ExpertServerOptions().max_batch_size(7));
  add("a", 3.f, /*flops=*/1000);
  std::vector<TensorData> xs;
  std::vector<std::shared_ptr<Answer>> answers;
  for (int i = 0; i < 4; ++i) {
    xs.push_back(rows_of(3, 2, float(10 * i)));  // 3 rows each: two fit in a batch of 7
    answers.push_back(forward("a", xs.back()));
  }
  world_.run_for(1s);
  EXPECT_EQ(log_->batch_sizes, (std::vector<int64_t>{6, 6}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(outputs(*answers[i]), scaled(xs[i], 3.f)) << i;
  // Batch 1 = requests 0 and 1, batch 2 = requests 2 and 3, each batch 6 * 1000 ns of compute.
  EXPECT_EQ(answers[0]->at, answers[1]->at);
  EXPECT_EQ(answers[2]->at, answers[3]->at);
  EXPECT_EQ(answers[2]->at - answers[0]->at, 6000ns);
  EXPECT_EQ(answers[0]->at, 10ms + 6000ns + 10ms);  // latency, compute, latency
  EXPECT_EQ(world_.sink.sample_count("moe_batch_size"), 2u);
  EXPECT_EQ(world_.sink.sample_count("moe_queue_s"), 4u);
  EXPECT_EQ(world_.sink.sample_count("moe_compute_s"), 2u);
  EXPECT_EQ(counter("moe_server_forward_requests"), 4);
  EXPECT_EQ(counter("moe_server_load_a"), 12);
}

TEST_F(ServerTest, TheOldestWaitingRequestPicksThePoolAcrossExpertsAndDirections) {
  start(ExpertServerOptions());
  add("a", 1.f, /*flops=*/1e6);  // a batch of 2 rows takes 2 ms forward, 6 ms backward
  add("b", 2.f, 1e6);
  forward("a", rows_of(2, 2, 0));                             // arrives at 10 ms, computes to 12 ms
  forward("b", rows_of(2, 2, 0), 1000us);                     // waits from 11 ms
  backward("a", rows_of(2, 2, 0), rows_of(2, 2, 0), 1100us);  // from 11.1 ms
  forward("a", rows_of(2, 2, 5), 1200us);                     // from 11.2 ms
  forward("b", rows_of(1, 2, 0), 1300us);                     // from 11.3 ms: joins b's pool
  world_.run_for(1s);
  EXPECT_EQ(log_->calls, (std::vector<std::string>{"a.f", "b.f", "a.b", "a.f"}));
  EXPECT_EQ(log_->batch_sizes, (std::vector<int64_t>{2, 3, 2, 2}));
  EXPECT_EQ(counter("moe_server_updates"), 1);
}

TEST_F(ServerTest, EveryRefusalIsAnErrorResponseAndTheServerStaysAlive) {
  start(ExpertServerOptions().max_batch_size(4).max_queue_samples(4));
  ScaleExpert* a = add("a", 2.f, 1e6);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  TensorData f64 = rows_of(1, 2, 0);
  f64.dtype = DType::kFloat64;
  f64.shape = {1, 1};  // 8 bytes: one float64
  struct Case {
    std::shared_ptr<Answer> answer;
    std::string reason, needle;
  };
  std::vector<Case> cases;
  cases.push_back({forward("nope", rows_of(1, 2, 0)), "unknown_expert", "no expert 'nope'"});
  cases.push_back({forward("a", rows_of(1, 3, 0)), "shape", "per-sample shape [3], expected [2]"});
  cases.push_back({forward("a", f64), "dtype", "dtype 4, expected float32"});
  cases.push_back(
      {forward("a", floats({1, 2}, {1.f, nan})), "non_finite", "inputs hold non-finite"});
  cases.push_back({backward("a", rows_of(1, 2, 0), floats({1, 2}, {nan, 0.f})), "non_finite",
                   "grad_outputs hold non-finite"});
  cases.push_back({forward("a", rows_of(5, 2, 0)), "too_large", "over max_batch_size 4"});
  cases.push_back({send(encode_forward_request({"a", Numerics::kTiming, shape_only({1, 2})})),
                   "mode", "timing request to a real-numerics server"});
  Message broken = encode_forward_request({"a", Numerics::kReal, rows_of(1, 2, 0)});
  broken.fields.pop_back();
  cases.push_back({send(broken), "malformed", "(inputs): missing"});
  // Queue full: the first request computes (4 ms), the second waits (4 samples queued), the
  // third would make 5 > 4.
  auto busy = forward("a", rows_of(4, 2, 0), 50ms);
  auto waiting = forward("a", rows_of(4, 2, 1), 51ms);
  cases.push_back({forward("a", rows_of(1, 2, 0), 51ms), "queue_full", "queue full"});
  world_.run_for(1s);
  for (const Case& c : cases) {
    ASSERT_TRUE(c.answer->done) << c.reason;
    ASSERT_FALSE(c.answer->result.ok()) << c.reason;
    EXPECT_TRUE(c.answer->result.status().is_refused()) << c.reason;
    EXPECT_NE(c.answer->result.error().find(c.needle), std::string::npos)
        << c.reason << ": " << c.answer->result.error();
  }
  EXPECT_EQ(counter("moe_server_refused"), int64_t(cases.size()));
  EXPECT_EQ(counter("moe_server_refused_non_finite"), 2);
  for (const char* r :
       {"unknown_expert", "shape", "dtype", "too_large", "mode", "malformed", "queue_full"}) {
    EXPECT_EQ(counter(std::string("moe_server_refused_") + r), 1) << r;
  }
  // Nothing refused reached the expert; the two good requests did, and so does a later one.
  EXPECT_EQ(outputs(*busy), scaled(rows_of(4, 2, 0), 2.f));
  EXPECT_EQ(outputs(*waiting), scaled(rows_of(4, 2, 1), 2.f));
  EXPECT_EQ(log_->batch_sizes, (std::vector<int64_t>{4, 4}));
  auto later = forward("a", rows_of(1, 2, 9));
  world_.run_for(1s);
  EXPECT_EQ(outputs(*later), scaled(rows_of(1, 2, 9), 2.f));
  EXPECT_EQ(a->updates(), 0u);
}

// server.failure_prob: Learning@home's failure emulation as refusals on the wire. Each request
// fails on its own draw; a failed one never reaches the expert and the others are served.
TEST_F(ServerTest, InjectedFailuresRefuseAboutTheirShareOfRequests) {
  start(ExpertServerOptions().failure_prob(0.25));
  ScaleExpert* a = add("a", 2.f);
  std::vector<std::shared_ptr<Answer>> answers;
  for (int i = 0; i < 400; ++i) {
    if (i % 2 == 0) {
      answers.push_back(forward("a", rows_of(1, 2, float(i)), i * 1ms));
    } else {
      answers.push_back(backward("a", rows_of(1, 2, 0), rows_of(1, 2, 0), i * 1ms));
    }
  }
  world_.run_for(5s);
  int64_t failed = 0;
  for (const auto& ans : answers) {
    ASSERT_TRUE(ans->done);
    if (ans->result.ok()) continue;
    ++failed;
    EXPECT_TRUE(ans->result.status().is_refused());
    EXPECT_NE(ans->result.error().find("injected failure"), std::string::npos);
  }
  EXPECT_EQ(counter("moe_server_refused_injected"), failed);
  EXPECT_GT(failed, 400 * 0.25 - 30);  // binomial(400, 0.25): sd 8.7
  EXPECT_LT(failed, 400 * 0.25 + 30);
  // Every request that was not refused was computed: forward and backward alike.
  int64_t served_backward = 0;
  for (size_t i = 1; i < answers.size(); i += 2) served_backward += answers[i]->result.ok();
  EXPECT_EQ(int64_t(a->updates()), served_backward);
  EXPECT_EQ(int64_t(log_->batch_sizes.size()), 400 - failed);
}

TEST_F(ServerTest, BackwardAppliesOneSgdStepAndNonFiniteGradientsNone) {
  start(ExpertServerOptions());
  ScaleExpert* a = add("a", 2.f);
  const TensorData x = floats({2, 2}, {1, 2, 3, 4});
  const TensorData g = floats({2, 2}, {0.5f, -1, 2, 0.25f});
  auto ok = backward("a", x, g);
  world_.run_for(1s);
  ASSERT_TRUE(ok->result.ok()) << ok->result.error();
  auto resp = decode_backward_response(ok->result.value(), {});
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(values_of(resp->grad_inputs), (std::vector<float>{1, -2, 4, 0.5f}));  // w * g
  // sum(x * g) = 0.5 - 2 + 6 + 1 = 5.5; w = 2 - 0.5 * 5.5.
  EXPECT_FLOAT_EQ(a->w(), 2.f - 0.5f * 5.5f);
  EXPECT_EQ(counter("moe_server_updates"), 1);

  // Finite inputs and gradients whose product overflows: the expert refuses, no step.
  const float w = a->w();
  auto bad = backward("a", floats({1, 2}, {3e38f, 0}), floats({1, 2}, {3e38f, 0}));
  world_.run_for(1s);
  ASSERT_FALSE(bad->result.ok());
  EXPECT_NE(bad->result.error().find("non-finite gradient"), std::string::npos)
      << bad->result.error();
  EXPECT_EQ(a->w(), w);
  EXPECT_EQ(a->updates(), 1u);
  EXPECT_EQ(counter("moe_server_backward_failures"), 1);
  EXPECT_EQ(counter("moe_server_updates"), 1);
}

TEST_F(ServerTest, TimingModeAnswersWithFillersAndChargesTheCompute) {
  start(ExpertServerOptions().numerics(Numerics::kTiming));
  ExpertInfo info;
  info.input_shape = {4};
  info.output_shape = {3};
  info.forward_flops_per_sample = 1000;
  info.backward_flops_per_sample = 3000;
  ASSERT_TRUE(server_->add_expert("t", info).ok());
  EXPECT_FALSE(
      server_->add_expert("u", std::make_unique<ScaleExpert>("u", 4, 1.f, 0.f, nullptr)).ok());
  EXPECT_FALSE(server_->add_expert("t", info).ok());  // already hosted
  auto f = send(encode_forward_request({"t", Numerics::kTiming, shape_only({5, 4})}));
  auto b = send(
      encode_backward_request({"t", Numerics::kTiming, shape_only({5, 4}), shape_only({5, 3})}),
      1s);
  auto real = forward("t", rows_of(5, 4, 0), 2s);
  world_.run_for(3s);
  ASSERT_TRUE(f->result.ok()) << f->result.error();
  EXPECT_EQ(f->at, 20ms + 5000ns);
  EXPECT_EQ(f->result->filler(kTagOutputs).value(), 5u * 3 * 4);
  auto fr = decode_forward_response(f->result.value(), {});
  ASSERT_TRUE(fr.ok()) << fr.error();
  EXPECT_EQ(fr->outputs.shape, (std::vector<int64_t>{5, 3}));
  ASSERT_TRUE(b->result.ok()) << b->result.error();
  EXPECT_EQ(b->at, 1s + 20ms + 15000ns);
  EXPECT_EQ(b->result->filler(kTagGradInputs).value(), 5u * 4 * 4);
  EXPECT_EQ(counter("moe_server_updates"), 1);
  ASSERT_FALSE(real->result.ok());
  EXPECT_EQ(counter("moe_server_refused_mode"), 1);
}

TEST_F(ServerTest, RemovedExpertsRefuseTheirWaitingRequests) {
  start(ExpertServerOptions());
  add("a", 1.f, 1e7);  // computes from 10 to 30 ms
  add("b", 1.f, 1e6);
  auto first = forward("a", rows_of(2, 2, 0));
  auto queued = forward("b", rows_of(2, 2, 0), 1ms);
  client_rt_->schedule(20ms, [this] { EXPECT_TRUE(server_->remove_expert("b").ok()); });
  world_.run_for(1s);
  EXPECT_TRUE(first->result.ok());
  ASSERT_FALSE(queued->result.ok());
  EXPECT_NE(queued->result.error().find("was removed"), std::string::npos);
  EXPECT_EQ(server_->hosted(), (std::vector<std::string>{"a"}));
  EXPECT_FALSE(server_->remove_expert("b").ok());
  EXPECT_EQ(server_->queued_samples(), 0u);
}

// A backward request that echoes the forward version `version` (nullopt: sends none).
Message backward_request(const std::string& uid, TensorData x, TensorData g,
                         std::optional<uint64_t> version) {
  return encode_backward_request({uid, Numerics::kReal, std::move(x), std::move(g), version});
}

std::vector<float> grad_inputs(const Answer& a) {
  return answer_values(a, decode_backward_response, &BackwardResponse::grad_inputs);
}

TEST_F(ServerTest, ForwardAnswersCarryTheExpertVersion) {
  start(ExpertServerOptions());
  add("a", 1.f);
  auto f0 = forward("a", rows_of(1, 2, 0));
  backward("a", rows_of(1, 2, 0), rows_of(1, 2, 0), 100ms);
  backward("a", rows_of(1, 2, 0), rows_of(1, 2, 0), 200ms);
  auto f2 = forward("a", rows_of(1, 2, 0), 300ms);
  world_.run_for(1s);
  for (auto [answer, want] : {std::pair{f0, 0u}, std::pair{f2, 2u}}) {
    ASSERT_TRUE(answer->result.ok()) << answer->result.error();
    auto r = decode_forward_response(answer->result.value(), {});
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->version, std::optional<uint64_t>(want));
  }
}

TEST_F(ServerTest, SkipPolicyAnswersStaleBackwardsWithoutAStep) {
  start(ExpertServerOptions().stale_updates(StaleUpdates::kSkip).max_staleness(1));
  ScaleExpert* a = add("a", 2.f);
  const TensorData x = floats({1, 2}, {1, 0}), g = floats({1, 2}, {1, 0});  // grad w = 1
  // Each its own batch; all echo version 0 but the last, which sends none (counts as fresh).
  auto b0 = send(backward_request("a", x, g, 0u));                   // staleness 0: step
  auto b1 = send(backward_request("a", x, g, 0u), 100ms);            // 1: step
  auto b2 = send(backward_request("a", x, g, 0u), 200ms);            // 2 > max_staleness: no step
  auto b3 = send(backward_request("a", x, g, std::nullopt), 300ms);  // unknown: step
  world_.run_for(1s);
  EXPECT_EQ(log_->lr_scales, (std::vector<double>{1, 1, 0, 1}));
  EXPECT_EQ(grad_inputs(*b2), (std::vector<float>{1, 0}));  // w = 2 - 0.5 - 0.5 = 1, still given
  EXPECT_FLOAT_EQ(a->w(), 0.5f);
  EXPECT_EQ(a->updates(), 3u);
  EXPECT_EQ(counter("moe_server_updates"), 3);
  EXPECT_EQ(counter("moe_server_stale_skipped"), 1);
  EXPECT_EQ(world_.sink.sample_count("moe_update_staleness"), 3u);  // b3 has no version
  EXPECT_TRUE(b0->result.ok() && b1->result.ok() && b3->result.ok());
}

TEST_F(ServerTest, SkipPolicySplitsAMixedBatchAndKeepsTheRowsInOrder) {
  start(ExpertServerOptions().stale_updates(StaleUpdates::kSkip).max_staleness(0));
  ScaleExpert* a = add("a", 2.f);
  backward("a", floats({1, 2}, {1, 0}), floats({1, 2}, {1, 0}));  // version 1, w = 1.5
  world_.run_for(100ms);
  // Arriving together: fresh (version 1) rows around a stale one (version 0).
  auto fresh1 = send(backward_request("a", floats({1, 2}, {1, 1}), floats({1, 2}, {1, 2}), 1u));
  auto stale = send(backward_request("a", floats({1, 2}, {1, 1}), floats({1, 2}, {3, 4}), 0u));
  auto fresh2 = send(backward_request("a", floats({1, 2}, {1, 1}), floats({1, 2}, {5, 6}), 1u));
  world_.run_for(1s);
  // One expert call per scale, the skipped rows first; both see w = 1.5 before the step.
  EXPECT_EQ(log_->lr_scales, (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(log_->batch_sizes.back(), 2);
  EXPECT_EQ(grad_inputs(*fresh1), (std::vector<float>{1.5f, 3}));
  EXPECT_EQ(grad_inputs(*stale), (std::vector<float>{4.5f, 6}));
  EXPECT_EQ(grad_inputs(*fresh2), (std::vector<float>{7.5f, 9}));
  EXPECT_FLOAT_EQ(a->w(), 1.5f - 0.5f * (3 + 11));  // the fresh rows' sum(x * g) only
  EXPECT_EQ(a->updates(), 2u);
}

TEST_F(ServerTest, ScalePolicyDividesTheStepByOnePlusTheMeanStalenessPerRow) {
  start(ExpertServerOptions().stale_updates(StaleUpdates::kScale));
  ScaleExpert* a = add("a", 2.f);
  for (int i = 0; i < 3; ++i) {  // version 3
    backward("a", floats({1, 2}, {0, 0}), floats({1, 2}, {0, 0}), i * 100ms);
  }
  world_.run_for(1s);
  ASSERT_EQ(a->updates(), 3u);
  // One batch: 1 row of staleness 0 and 3 rows of staleness 2: (1 * 1 + 3 * 1/3) / 4 = 0.5.
  auto r0 = send(backward_request("a", floats({1, 2}, {1, 0}), floats({1, 2}, {1, 0}), 3u));
  auto r1 = send(backward_request("a", rows_of(3, 2, 0), floats({3, 2}, {0, 0, 0, 0, 0, 0}), 1u));
  world_.run_for(1s);
  ASSERT_EQ(log_->lr_scales.size(), 4u);
  EXPECT_DOUBLE_EQ(log_->lr_scales.back(), 0.5);
  EXPECT_FLOAT_EQ(a->w(), 2.f - 0.5f * 0.5f * 1);
  EXPECT_TRUE(r0->result.ok() && r1->result.ok());
}

TEST_F(ServerTest, MinUpdateSamplesAccumulatesGradientsAndStepsOnTheirMean) {
  start(ExpertServerOptions().min_update_samples(3));
  ScaleExpert* a = add("a", 2.f);
  auto f0 = forward("a", rows_of(1, 2, 0));
  // sum(x * g): 1, then 2, then 2 + 4 = 6 (two rows); 1 + 1 + 2 = 4 samples >= 3 at the third.
  backward("a", floats({1, 2}, {1, 0}), floats({1, 2}, {1, 0}), 100ms);
  backward("a", floats({1, 2}, {1, 0}), floats({1, 2}, {2, 0}), 200ms);
  auto third = backward("a", floats({2, 2}, {1, 0, 1, 0}), floats({2, 2}, {2, 0, 4, 0}), 300ms);
  auto f1 = forward("a", rows_of(1, 2, 0), 400ms);
  world_.run_for(1s);
  EXPECT_EQ(log_->steps, (std::vector<bool>{false, false, true}));
  EXPECT_FLOAT_EQ(a->w(), 2.f - 0.5f * (1 + 2 + 6) / 3);
  EXPECT_EQ(grad_inputs(*third), (std::vector<float>{4, 0, 8, 0}));  // w = 2 until the step
  EXPECT_EQ(counter("moe_server_accumulated"), 2);
  EXPECT_EQ(counter("moe_server_updates"), 1);
  auto r = decode_forward_response(f1->result.value(), {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->version, std::optional<uint64_t>(1));  // one step, not three
  EXPECT_TRUE(f0->result.ok());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_F(ServerTest, CheckpointsAreWrittenAndANewServerResumesFromThem) {
  const std::string dir = ::testing::TempDir() + "/moe_server_ckpt_" +
                          std::to_string(reinterpret_cast<uintptr_t>(this));
  std::filesystem::remove_all(dir);
  start(ExpertServerOptions().checkpoint_dir(dir).checkpoint_interval(1s));
  ScaleExpert* a = add("ffn.0", 2.f);
  add("ffn.1", 5.f);
  backward("ffn.0", floats({1, 2}, {1, 1}), floats({1, 2}, {1, 1}));  // w = 2 - 0.5 * 2 = 1
  world_.run_for(1500ms);
  EXPECT_FLOAT_EQ(a->w(), 1.f);
  const std::string path = dir + "/ffn.0.ckpt";
  ASSERT_TRUE(std::filesystem::exists(path));
  const std::string state = a->save_state().value();
  const std::string file = read_file(path);
  EXPECT_EQ(file.rfind("crowdtrain-expert-checkpoint 1 updates=1 bytes=", 0), 0u) << file;
  ASSERT_GT(file.size(), state.size());
  EXPECT_EQ(file.substr(file.size() - state.size()), state);
  EXPECT_TRUE(std::filesystem::exists(dir + "/ffn.1.ckpt"));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(counter("moe_server_checkpoints_written"), 2);
  world_.run_for(1s);  // nothing changed: nothing rewritten
  EXPECT_EQ(counter("moe_server_checkpoints_written"), 2);

  // A restarted server: a fresh expert (w = 7) resumes at w = 1 with its update count.
  RpcEndpoint rpc2(*server_rt_);
  ExpertServer restarted(*server_rt_, rpc2, ExpertServerOptions().checkpoint_dir(dir));
  auto fresh = std::make_unique<ScaleExpert>("ffn.0", 2, 7.f, 0.5f, nullptr);
  ScaleExpert* resumed = fresh.get();
  ASSERT_TRUE(restarted.add_expert("ffn.0", std::move(fresh)).ok());
  EXPECT_FLOAT_EQ(resumed->w(), 1.f);
  EXPECT_EQ(resumed->updates(), 1u);
  EXPECT_EQ(counter("moe_server_checkpoints_loaded"), 1);

  // A corrupt checkpoint: logged and counted, the expert starts as given.
  std::ofstream(dir + "/ffn.9.ckpt", std::ios::binary) << "garbage";
  auto other = std::make_unique<ScaleExpert>("ffn.9", 2, 3.f, 0.5f, nullptr);
  ScaleExpert* kept = other.get();
  ASSERT_TRUE(restarted.add_expert("ffn.9", std::move(other)).ok());
  EXPECT_FLOAT_EQ(kept->w(), 3.f);
  EXPECT_EQ(counter("moe_server_checkpoint_load_failures"), 1);
  EXPECT_EQ(counter("invariant_violations/moe_expert_state_restored"), 1);
  // A checkpoint whose state no longer matches its header's SHA-256 (one byte flipped), and one
  // cut short: both refused, the expert starts as given.
  std::string flipped = file;
  flipped.back() = static_cast<char>(flipped.back() ^ 1);
  std::ofstream(dir + "/ffn.7.ckpt", std::ios::binary) << flipped;
  auto seventh = std::make_unique<ScaleExpert>("ffn.7", 2, 3.f, 0.5f, nullptr);
  ScaleExpert* as_given = seventh.get();
  ASSERT_TRUE(restarted.add_expert("ffn.7", std::move(seventh)).ok());
  EXPECT_FLOAT_EQ(as_given->w(), 3.f);
  std::ofstream(dir + "/ffn.8.ckpt", std::ios::binary) << file.substr(0, file.size() - 1);
  ASSERT_TRUE(
      restarted.add_expert("ffn.8", std::make_unique<ScaleExpert>("ffn.8", 2, 3.f, 0.5f, nullptr))
          .ok());
  EXPECT_EQ(counter("moe_server_checkpoint_load_failures"), 3);
  EXPECT_EQ(counter("invariant_violations/moe_expert_state_restored"), 3);
  // A checkpoint from before the header: the plain state loads.
  std::ofstream(dir + "/ffn.6.ckpt", std::ios::binary) << state;
  auto sixth = std::make_unique<ScaleExpert>("ffn.6", 2, 3.f, 0.5f, nullptr);
  ScaleExpert* legacy = sixth.get();
  ASSERT_TRUE(restarted.add_expert("ffn.6", std::move(sixth)).ok());
  EXPECT_FLOAT_EQ(legacy->w(), 1.f);
  EXPECT_EQ(counter("moe_server_checkpoints_loaded"), 2);
  EXPECT_FALSE(
      restarted.add_expert("../x", std::make_unique<ScaleExpert>("x", 2, 1.f, 0.f, nullptr)).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace crowdtrain::moe
