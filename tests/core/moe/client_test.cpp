// core/moe/client: RemoteMixture against three real ExpertServers (y = w * x experts) on the
// FakeWorld, whose filter delays, drops or tampers with one server's messages: all answer, k_min
// met late, stragglers cut after timeout_after_k_min, too few answers (an error naming the sample),
// refusals, malformed outputs dropped, backward (SGD applied on the servers, failures leaving
// grad_input unset, backward_k_min shortfall), timing-only mode, and every callback exactly once.
#include "core/moe/client.h"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <optional>

#include "core/moe/server.h"
#include "tests/core/moe/rpc_app.h"
#include "tests/core/moe/scale_expert.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeRuntime;
using crowdtrain::testing::FakeWorld;
using testing::floats;
using testing::rows_of;
using testing::RpcApp;
using testing::ScaleExpert;
using testing::values_of;

constexpr PeerId kClient = 1;
constexpr float kLr = 0.125f;

MixtureCallOptions options(uint32_t k_min, Time forward_timeout = 10s, Time after_k_min = 1s,
                           uint32_t backward_k_min = 1, Time backward_timeout = 10s) {
  MixtureCallOptions o;
  o.k_min = k_min;
  o.forward_timeout = forward_timeout;
  o.timeout_after_k_min = after_k_min;
  o.backward_k_min = backward_k_min;
  o.backward_timeout = backward_timeout;
  return o;
}

struct ServerPeer {
  std::unique_ptr<RpcEndpoint> rpc;
  std::unique_ptr<RpcApp> app;
  std::unique_ptr<ExpertServer> server;
  ScaleExpert* expert = nullptr;
  float w = 0;
};

struct Outcome {
  int calls = 0;  // how many times Done ran
  Time at{0};
  Result<std::vector<ExpertCall>> result = Status::error("no answer yet");
};

class ClientTest : public ::testing::Test {
 protected:
  // Servers 10, 11, 12 host "e10", "e11", "e12" with w = 1, 2, 3 (timing mode: described only).
  void start(MixtureCallOptions options, Numerics numerics = Numerics::kReal) {
    client_rt_ = &world_.add_peer(kClient);
    client_rpc_ = std::make_unique<RpcEndpoint>(*client_rt_);
    client_app_ = std::make_unique<RpcApp>(*client_rpc_);
    world_.attach(kClient, client_app_.get());
    for (PeerId id : {10u, 11u, 12u}) {
      ServerPeer& p = servers_[id];
      FakeRuntime& rt = world_.add_peer(id);
      p.rpc = std::make_unique<RpcEndpoint>(rt);
      p.app = std::make_unique<RpcApp>(*p.rpc);
      world_.attach(id, p.app.get());
      p.server =
          std::make_unique<ExpertServer>(rt, *p.rpc, ExpertServerOptions().numerics(numerics));
      p.w = float(id - 9);
      auto e = std::make_unique<ScaleExpert>("e", 2, p.w, kLr, nullptr, 1000);
      p.expert = e.get();
      const std::string uid = "e" + std::to_string(id);
      ASSERT_TRUE((numerics == Numerics::kReal ? p.server->add_expert(uid, std::move(e))
                                               : p.server->add_expert(uid, e->info()))
                      .ok());
    }
    mixture_ = std::make_unique<RemoteMixture>(*client_rt_, *client_rpc_, options, numerics);
  }
  static ExpertRef ref(PeerId id) { return ExpertRef{"e" + std::to_string(id), id}; }
  MixtureCaller::Done record(std::shared_ptr<Outcome> out) {
    return [this, out](Result<std::vector<ExpertCall>> r) {
      ++out->calls;
      out->at = world_.now();
      out->result = std::move(r);
    };
  }
  std::shared_ptr<Outcome> forward(const TensorData& x,
                                   std::vector<std::vector<ExpertRef>> chosen) {
    auto out = std::make_shared<Outcome>();
    mixture_->forward(x, chosen, record(out));
    EXPECT_EQ(out->calls, 0) << "Done ran inside forward()";
    return out;
  }
  std::shared_ptr<Outcome> backward(const TensorData& x, std::vector<ExpertCall> calls,
                                    std::vector<TensorData> grads) {
    auto out = std::make_shared<Outcome>();
    mixture_->backward(x, std::move(calls), std::move(grads), record(out));
    EXPECT_EQ(out->calls, 0) << "Done ran inside backward()";
    return out;
  }
  // Responses from `server` are held back `delay` (the filter lets the re-sent copy through).
  void delay_responses_from(PeerId server, Time delay) {
    world_.filter = [this, server, delay](PeerId from, PeerId to, Message& m) {
      if (from != server || !m.is_response() || releasing_) return true;
      world_.schedule_at(world_.now() + delay, [this, from, to, m] {
        releasing_ = true;
        world_.send(from, to, m);
        releasing_ = false;
      });
      return false;
    };
  }
  void drop(PeerId server, MsgType type) {
    world_.filter = [server, type](PeerId from, PeerId to, Message& m) {
      return !((from == server || to == server) && m.type == type);
    };
  }
  int64_t counter(const char* name) { return world_.sink.counter(name); }

  FakeWorld world_{5};
  FakeRuntime* client_rt_ = nullptr;
  std::unique_ptr<RpcEndpoint> client_rpc_;
  std::unique_ptr<RpcApp> client_app_;
  std::map<PeerId, ServerPeer> servers_;
  std::unique_ptr<RemoteMixture> mixture_;
  bool releasing_ = false;
};

// The expert's output for the call's samples, computed here: w * x[samples].
std::vector<float> expected_output(const TensorData& x, const ExpertCall& c, float w) {
  std::vector<float> v = values_of(gather_rows(x, c.samples));
  for (float& e : v) e *= w;
  return v;
}

const ExpertCall* find(const std::vector<ExpertCall>& calls, PeerId server) {
  for (const ExpertCall& c : calls) {
    if (c.expert.server == server) return &c;
  }
  return nullptr;
}

TEST_F(ClientTest, AllAnswerEachExpertGetsItsRowsOnce) {
  start(options(2));
  const TensorData x = rows_of(4, 2, 1);
  auto out = forward(
      x, {{ref(10), ref(11)}, {ref(11), ref(12)}, {ref(12), ref(10)}, {ref(10), ref(11), ref(12)}});
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_TRUE(out->result.ok()) << out->result.error();
  const auto& calls = out->result.value();
  ASSERT_EQ(calls.size(), 3u);
  const std::vector<std::vector<int64_t>> samples{{0, 2, 3}, {0, 1, 3}, {1, 2, 3}};
  for (size_t i = 0; i < 3; ++i) {
    const PeerId id = PeerId(10 + i);
    EXPECT_EQ(calls[i].expert, ref(id));
    EXPECT_EQ(calls[i].samples, samples[i]);
    ASSERT_TRUE(calls[i].output.has_value());
    EXPECT_EQ(calls[i].output->shape, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(values_of(*calls[i].output), expected_output(x, calls[i], servers_[id].w));
    EXPECT_FALSE(calls[i].grad_input.has_value());
  }
  EXPECT_EQ(out->at, 20ms + 3000ns);  // latency, 3 rows * 1000 flops, latency
  EXPECT_EQ(world_.sink.sample_count("moe_client_forward_s"), 1u);
  EXPECT_EQ(mixture_->in_flight(), 0u);
}

TEST_F(ClientTest, StragglersAreCutAfterTimeoutAfterKMinAndTheirLateAnswerIgnored) {
  start(options(1, 10s, 100ms));
  delay_responses_from(12, 500ms);
  const TensorData x = rows_of(2, 2, 0);
  auto out = forward(x, {{ref(10), ref(11), ref(12)}, {ref(12), ref(10)}});
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_TRUE(out->result.ok()) << out->result.error();
  EXPECT_EQ(out->at, 20ms + 2000ns + 100ms);  // the first answers, then the straggler window
  EXPECT_TRUE(find(out->result.value(), 10)->output.has_value());
  EXPECT_TRUE(find(out->result.value(), 11)->output.has_value());
  EXPECT_FALSE(find(out->result.value(), 12)->output.has_value());
  EXPECT_EQ(counter("moe_forward_timeouts"), 1);
  EXPECT_EQ(counter("moe_client_late_answers"), 1);
  EXPECT_EQ(counter("moe_kmin_shortfall_forward"), 0);
}

TEST_F(ClientTest, KMinMetLateWaitsForTheSlowExpert) {
  start(options(3, 2s, 100ms));
  delay_responses_from(12, 500ms);
  const TensorData x = rows_of(2, 2, 0);
  auto out = forward(x, {{ref(10), ref(11), ref(12)}, {ref(10), ref(11), ref(12)}});
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_TRUE(out->result.ok()) << out->result.error();
  EXPECT_EQ(out->at, 520ms + 2000ns);
  for (const ExpertCall& c : out->result.value()) {
    ASSERT_TRUE(c.output.has_value()) << c.expert.uid;
    EXPECT_EQ(values_of(*c.output), expected_output(x, c, servers_[c.expert.server].w));
  }
  EXPECT_EQ(counter("moe_forward_timeouts"), 0);
}

TEST_F(ClientTest, TooFewAnswersIsAnErrorNamingTheFirstShortSample) {
  start(options(3, 1s));
  drop(12, MsgType::kMoeForwardResponse);
  auto out =
      forward(rows_of(3, 2, 0), {{ref(10), ref(11)}, {ref(10), ref(11), ref(12)}, {ref(12)}});
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_FALSE(out->result.ok());
  EXPECT_TRUE(out->result.status().is_timed_out());
  EXPECT_EQ(out->at, 1s);
  // Sample 0 asked only 2 experts and both answered: sample 1 is the first short one.
  EXPECT_NE(out->result.error().find("sample 1: 2 of k_min = 3 answered: 1 timed out"),
            std::string::npos)
      << out->result.error();
  EXPECT_EQ(counter("moe_kmin_shortfall_forward"), 1);
  EXPECT_EQ(counter("moe_forward_timeouts"), 1);

  // Only sample 2 short, with one expert chosen: the message says what it needed.
  auto out2 = forward(rows_of(3, 2, 0), {{ref(10)}, {ref(11)}, {ref(12)}});
  world_.run_for(10s);
  ASSERT_FALSE(out2->result.ok());
  EXPECT_NE(out2->result.error().find("sample 2: 0 of min(k_min = 3, experts) = 1 answered"),
            std::string::npos)
      << out2->result.error();
}

TEST_F(ClientTest, RefusalsCountAsFailuresWithTheirOwnCode) {
  start(options(2));
  const ExpertRef ghost{"ghost", 10};
  auto out = forward(rows_of(2, 2, 0), {{ref(10), ghost}, {ref(11)}});
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_FALSE(out->result.ok());
  EXPECT_TRUE(out->result.status().is_refused());
  EXPECT_NE(out->result.error().find("sample 0: 1 of k_min = 2 answered: 1 refused"),
            std::string::npos)
      << out->result.error();
  EXPECT_EQ(counter("moe_forward_refusals"), 1);
  EXPECT_EQ(out->at, 20ms + 1000ns);  // refusals end the call as soon as everything is in

  mixture_ = std::make_unique<RemoteMixture>(*client_rt_, *client_rpc_, options(1));
  auto ok = forward(rows_of(2, 2, 0), {{ref(10), ghost}, {ref(11)}});
  world_.run_for(10s);
  ASSERT_TRUE(ok->result.ok()) << ok->result.error();
  EXPECT_EQ(ok->result->size(), 3u);
  for (const ExpertCall& c : ok->result.value()) {
    EXPECT_EQ(c.output.has_value(), c.expert.uid != "ghost") << c.expert.uid;
  }
}

TEST_F(ClientTest, MalformedOutputsAreDropped) {
  start(options(1));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  world_.filter = [nan](PeerId from, PeerId, Message& m) {
    if (m.type != MsgType::kMoeForwardResponse || from == 10) return true;
    const uint64_t id = m.request_id;
    m = encode_forward_response({Numerics::kReal, from == 11 ? floats({2, 2}, {1, nan, 0, 0})
                                                             : rows_of(1, 2, 0)});  // wrong rows
    m.request_id = id;
    return true;
  };
  const TensorData x = rows_of(2, 2, 0);
  auto out = forward(x, {{ref(10), ref(11), ref(12)}, {ref(10), ref(11), ref(12)}});
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_TRUE(out->result.ok()) << out->result.error();
  EXPECT_TRUE(find(out->result.value(), 10)->output.has_value());
  EXPECT_FALSE(find(out->result.value(), 11)->output.has_value());
  EXPECT_FALSE(find(out->result.value(), 12)->output.has_value());
  EXPECT_EQ(counter("moe_bad_outputs"), 2);

  // With k_min = 2 the same answers are a shortfall naming the malformed ones.
  mixture_ = std::make_unique<RemoteMixture>(*client_rt_, *client_rpc_, options(2));
  auto bad = forward(x, {{ref(10), ref(11), ref(12)}, {ref(10), ref(11), ref(12)}});
  world_.run_for(10s);
  ASSERT_FALSE(bad->result.ok());
  EXPECT_NE(bad->result.error().find("sample 0: 1 of k_min = 2 answered: 2 malformed"),
            std::string::npos)
      << bad->result.error();
}

// Forward over every expert for 3 samples (e10: 0 1, e11: 0 1 2, e12: 0 2), then backward with
// grad_outputs g_c = rows_of(...).
class BackwardTest : public ClientTest {
 protected:
  std::vector<ExpertCall> forward_all(const TensorData& x) {
    auto out = forward(x, {{ref(10), ref(11), ref(12)}, {ref(10), ref(11)}, {ref(12), ref(11)}});
    world_.run_for(10s);
    EXPECT_TRUE(out->result.ok()) << out->result.error();
    return out->result.ok() ? out->result.value() : std::vector<ExpertCall>{};
  }
  static std::vector<TensorData> grads_for(const std::vector<ExpertCall>& calls) {
    std::vector<TensorData> g;
    for (size_t i = 0; i < calls.size(); ++i) {
      g.push_back(rows_of(int64_t(calls[i].samples.size()), 2, 0.25f * float(i + 1)));
    }
    return g;
  }
};

TEST_F(BackwardTest, AnsweredExpertsStepAndFailuresLeaveGradInputUnset) {
  start(options(1, 10s, 100ms, 1, 300ms));
  const TensorData x = rows_of(3, 2, 1);
  std::vector<ExpertCall> calls = forward_all(x);
  ASSERT_EQ(calls.size(), 3u);
  const std::vector<TensorData> g = grads_for(calls);
  drop(12, MsgType::kMoeBackwardRequest);
  const Time t0 = world_.now();
  auto out = backward(x, calls, g);
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_TRUE(out->result.ok()) << out->result.error();
  // e10 (2 rows) and e11 (3 rows, 3000 flops each) answer by 20 ms + 9 us; every sample then has
  // backward_k_min answers, and e12 gets the straggler window, as in forward.
  EXPECT_EQ(out->at - t0, 120ms + 9000ns);
  for (size_t i = 0; i < 3; ++i) {
    const ExpertCall& c = out->result.value()[i];
    ServerPeer& s = servers_[c.expert.server];
    if (c.expert.server == 12) {
      EXPECT_FALSE(c.grad_input.has_value());
      EXPECT_EQ(s.expert->w(), s.w);  // no step
      continue;
    }
    ASSERT_TRUE(c.grad_input.has_value()) << c.expert.uid;
    std::vector<float> gi = values_of(g[i]);
    float grad_w = 0;
    const std::vector<float> xs = values_of(gather_rows(x, c.samples));
    for (size_t k = 0; k < gi.size(); ++k) {
      grad_w += xs[k] * gi[k];
      gi[k] *= s.w;  // d(w x)/dx = w, with w before the step
    }
    EXPECT_EQ(values_of(*c.grad_input), gi) << c.expert.uid;
    EXPECT_FLOAT_EQ(s.expert->w(), s.w - kLr * grad_w) << c.expert.uid;
    EXPECT_TRUE(c.output.has_value());  // forward's outputs travel along
  }
  EXPECT_EQ(counter("moe_backward_timeouts"), 1);
  EXPECT_EQ(counter("moe_kmin_shortfall_backward"), 0);
}

TEST_F(BackwardTest, TheForwardVersionTravelsBackSoTheServerKnowsTheStaleness) {
  start(options(1));
  const TensorData x = rows_of(3, 2, 1);
  std::vector<ExpertCall> calls = forward_all(x);
  ASSERT_EQ(calls.size(), 3u);
  for (const ExpertCall& c : calls)
    EXPECT_EQ(c.version, std::optional<uint64_t>(0)) << c.expert.uid;
  const std::vector<TensorData> g = grads_for(calls);
  auto first = backward(x, calls, g);
  world_.run_for(10s);
  ASSERT_TRUE(first->result.ok()) << first->result.error();
  // The same forward's backward again: each expert has stepped once since that forward.
  auto again = backward(x, calls, g);
  world_.run_for(10s);
  ASSERT_TRUE(again->result.ok()) << again->result.error();
  EXPECT_EQ(world_.sink.sample_count("moe_update_staleness"), 6u);
  EXPECT_DOUBLE_EQ(world_.sink.sample_mean("moe_update_staleness"), 0.5);
  for (const ExpertCall& c : forward_all(x)) {
    EXPECT_EQ(c.version, std::optional<uint64_t>(2)) << c.expert.uid;
  }
}

TEST_F(BackwardTest, BackwardKMinShortfallIsAnErrorAndUnansweredCallsAreNotSent) {
  start(options(1, 10s, 1s, 3, 300ms));
  const TensorData x = rows_of(3, 2, 1);
  std::vector<ExpertCall> calls = forward_all(x);
  ASSERT_EQ(calls.size(), 3u);
  drop(12, MsgType::kMoeBackwardRequest);
  auto out = backward(x, calls, grads_for(calls));
  world_.run_for(10s);
  ASSERT_EQ(out->calls, 1);
  ASSERT_FALSE(out->result.ok());
  EXPECT_TRUE(out->result.status().is_timed_out());
  EXPECT_NE(out->result.error().find("moe backward: sample 0: 2 of backward_k_min = 3 answered: "
                                     "1 timed out"),
            std::string::npos)
      << out->result.error();
  EXPECT_EQ(counter("moe_kmin_shortfall_backward"), 1);

  // e11 did not answer forward: it is not asked, and sample 1 needs only e10.
  world_.filter = nullptr;
  calls[1].output.reset();
  const int64_t requests = counter("moe_server_backward_requests");
  auto partial = backward(x, calls, grads_for(calls));
  world_.run_for(10s);
  ASSERT_TRUE(partial->result.ok()) << partial->result.error();
  EXPECT_EQ(counter("moe_server_backward_requests") - requests, 2);
  EXPECT_FALSE(partial->result.value()[1].grad_input.has_value());
  EXPECT_TRUE(partial->result.value()[0].grad_input.has_value());
  EXPECT_TRUE(partial->result.value()[2].grad_input.has_value());
}

TEST_F(ClientTest, TimingModeCarriesShapesOnly) {
  start(options(2), Numerics::kTiming);
  auto out = forward(shape_only({3, 2}), {{ref(10), ref(11)}, {ref(11)}, {ref(10), ref(11)}});
  world_.run_for(10s);
  ASSERT_TRUE(out->result.ok()) << out->result.error();
  const auto& calls = out->result.value();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].output->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(calls[1].output->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(calls[1].output->bytes.size, 0u);
  EXPECT_EQ(out->at, 20ms + 3000ns);
  auto back = backward(shape_only({3, 2}), calls, {shape_only({2, 2}), shape_only({3, 2})});
  world_.run_for(10s);
  ASSERT_TRUE(back->result.ok()) << back->result.error();
  EXPECT_EQ(back->result.value()[1].grad_input->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(counter("moe_server_updates"), 2);
}

TEST_F(ClientTest, BadCallsFailAsynchronouslyAndADestroyedMixtureNeverCallsBack) {
  start(options(1));
  auto dup = forward(rows_of(1, 2, 0), {{ref(10), ref(10)}});
  auto rows = forward(rows_of(2, 2, 0), {{ref(10)}});
  auto grads = backward(rows_of(1, 2, 0), {ExpertCall{ref(10), {0}, rows_of(1, 2, 0), {}}}, {});
  world_.run_for(1s);
  ASSERT_EQ(dup->calls, 1);
  EXPECT_NE(dup->result.error().find("sample 0: expert 'e10' chosen twice"), std::string::npos);
  ASSERT_EQ(rows->calls, 1);
  EXPECT_NE(rows->result.error().find("expected 1 rows"), std::string::npos);
  ASSERT_EQ(grads->calls, 1);
  EXPECT_NE(grads->result.error().find("0 grad_outputs for 1 calls"), std::string::npos);

  auto dropped = forward(rows_of(1, 2, 0), {{ref(10)}});
  mixture_.reset();
  world_.run_for(10s);
  EXPECT_EQ(dropped->calls, 0);
}

}  // namespace
}  // namespace crowdtrain::moe
