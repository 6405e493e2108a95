// RpcEndpoint on the fake world: responses, time-outs, retries, error responses, late and duplicate
// responses, responses from the wrong peer, a dead endpoint, the pending-call limit, and the status
// codes that tell a refusal (the peer answered) from a time-out (it did not).
#include "core/rpc.h"

#include <gtest/gtest.h>

#include "tests/fake_runtime.h"

namespace crowdtrain {
namespace {

using testing::FakeWorld;
using namespace std::chrono_literals;

// A peer app that is just an RpcEndpoint; serves kProbeRequest by echoing a u64 field (or refusing
// with an error response when `refuse` is set).
class EchoApp : public PeerApp {
 public:
  explicit EchoApp(Runtime& rt) : rpc(rt) {
    rpc.serve(MsgType::kProbeRequest, [this](PeerId, Message req, RpcEndpoint::Responder r) {
      ++served;
      if (silent) return;  // never answers
      if (refuse) {
        r(make_error_response(req, "not today"));
        return;
      }
      Message resp(MsgType::kProbeResponse);
      resp.add_u64(16, req.u64(16).ok() ? req.u64(16).value() : 0);
      r(std::move(resp));
      r(Message(MsgType::kProbeResponse));  // a second answer is ignored by the responder
    });
  }
  void start() override {}
  void on_message(PeerId from, Message msg) override { rpc.handle(from, std::move(msg)); }
  RpcEndpoint rpc;
  int served = 0;
  bool silent = false;
  bool refuse = false;
};

struct Pair {
  FakeWorld w;
  EchoApp a{w.add_peer(1)};
  EchoApp b{w.add_peer(2)};
  Pair() {
    w.attach(1, &a);
    w.attach(2, &b);
  }
};

Message request(uint64_t v) {
  Message m(MsgType::kProbeRequest);
  m.add_u64(16, v);
  return m;
}

TEST(Rpc, CallGetsItsResponse) {
  Pair p;
  int calls = 0;
  uint64_t got = 0;
  p.a.rpc.call(2, request(42), CallOptions(), [&](Result<Message> r) {
    ++calls;
    ASSERT_TRUE(r.ok()) << r.error();
    got = r->u64(16).value();
  });
  EXPECT_EQ(calls, 0) << "done must not run inside call()";
  p.w.run_for(1s);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, 42u);
  EXPECT_EQ(p.a.rpc.pending(), 0u);
  EXPECT_EQ(p.w.now(), 1s);
}

TEST(Rpc, TimeoutWhenNoAnswer) {
  Pair p;
  p.b.silent = true;
  int calls = 0;
  Time ended{0};
  p.a.rpc.call(2, request(1), CallOptions().with_timeout(200ms), [&](Result<Message> r) {
    ++calls;
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error().find("did not answer"), std::string::npos) << r.error();
    ended = p.w.now();
  });
  p.w.run_for(5s);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ended, 200ms);
  EXPECT_EQ(p.w.sink.counter("rpc_timeouts"), 1);
}

TEST(Rpc, RetriesAfterLostRequest) {
  Pair p;
  int dropped = 0;
  p.w.filter = [&](PeerId from, PeerId, Message& m) {
    if (from == 1 && dropped < 2) {  // lose the first two attempts
      ++dropped;
      return false;
    }
    return true;
  };
  int calls = 0;
  p.a.rpc.call(2, request(7), CallOptions().with_timeout(100ms).with_retries(2),
               [&](Result<Message> r) {
                 ++calls;
                 EXPECT_TRUE(r.ok()) << r.error();
               });
  p.w.run_for(5s);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(p.b.served, 1);
  EXPECT_EQ(p.w.sink.counter("rpc_retries"), 2);
}

TEST(Rpc, UnhandledTypeGetsErrorResponse) {
  Pair p;
  std::string err;
  p.a.rpc.call(2, Message(MsgType::kTransferRequest), CallOptions(), [&](Result<Message> r) {
    ASSERT_FALSE(r.ok());
    err = r.error();
  });
  p.w.run_for(1s);
  EXPECT_NE(err.find("no handler"), std::string::npos) << err;
}

// A refusal, a time-out and a local failure end the call with different status codes, so that a
// caller can keep a peer that refused (it is alive) and drop one that did not answer.
TEST(Rpc, RefusalAndTimeoutAreReportedDifferently) {
  Pair p;
  p.b.refuse = true;
  Status refused, timed_out, local;
  p.a.rpc.call(2, request(1), CallOptions().with_timeout(200ms).with_retries(1),
               [&](Result<Message> r) { refused = r.status(); });
  p.w.run_for(1s);
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), StatusCode::kRefused);
  EXPECT_TRUE(refused.is_refused());
  EXPECT_FALSE(refused.is_timed_out());
  EXPECT_NE(refused.message().find("refused: not today"), std::string::npos) << refused.message();
  EXPECT_EQ(p.b.served, 1) << "a refusal is an answer: no retry";
  EXPECT_EQ(p.w.sink.counter("rpc_retries"), 0);

  p.b.refuse = false;
  p.b.silent = true;
  p.a.rpc.call(2, request(2), CallOptions().with_timeout(200ms).with_retries(1),
               [&](Result<Message> r) { timed_out = r.status(); });
  p.w.run_for(1s);
  EXPECT_EQ(timed_out.code(), StatusCode::kTimedOut);
  EXPECT_TRUE(timed_out.is_timed_out());
  EXPECT_FALSE(timed_out.is_refused());
  EXPECT_NE(timed_out.message().find("did not answer"), std::string::npos) << timed_out.message();

  // A request type nobody serves is refused too (the peer is alive), and a call over the pending
  // limit fails locally: neither is a time-out.
  Status unhandled;
  p.a.rpc.call(2, Message(MsgType::kTransferRequest), CallOptions(),
               [&](Result<Message> r) { unhandled = r.status(); });
  RpcEndpoint tiny(p.w.add_peer(3), /*max_pending=*/0);
  tiny.call(2, request(3), CallOptions(), [&](Result<Message> r) { local = r.status(); });
  p.w.run_for(1s);
  EXPECT_EQ(unhandled.code(), StatusCode::kRefused) << unhandled.message();
  EXPECT_EQ(local.code(), StatusCode::kError) << local.message();
}

TEST(Rpc, LateAndForeignResponsesAreIgnored) {
  Pair p;
  p.w.latency = 300ms;  // the response comes back after the 500 ms time-out
  int calls = 0;
  p.a.rpc.call(2, request(3), CallOptions().with_timeout(500ms), [&](Result<Message> r) {
    ++calls;
    EXPECT_FALSE(r.ok());
  });
  p.w.run_for(2s);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(p.w.sink.counter("rpc_unmatched_responses"), 1);

  // A response with a pending id but from another peer does not complete the call.
  p.w.latency = 10ms;
  p.b.silent = true;
  uint64_t rid = 0;
  p.w.filter = [&](PeerId from, PeerId, Message& m) {
    if (from == 1) rid = m.request_id;
    return true;
  };
  int calls2 = 0;
  p.a.rpc.call(2, request(4), CallOptions().with_timeout(500ms),
               [&](Result<Message> r) { ++calls2; });
  p.w.run_for(50ms);
  Message forged(MsgType::kProbeResponse);
  forged.flags = kFlagResponse;
  forged.request_id = rid;
  p.a.on_message(3, forged);
  EXPECT_EQ(calls2, 0);
  EXPECT_EQ(p.w.sink.counter("rpc_wrong_sender_responses"), 1);
  p.w.run_for(1s);
  EXPECT_EQ(calls2, 1);
}

TEST(Rpc, DestroyedEndpointFiresNothing) {
  FakeWorld w;
  auto& rt = w.add_peer(1);
  w.add_peer(2);
  int calls = 0;
  {
    RpcEndpoint rpc(rt);
    rpc.call(2, request(1), CallOptions().with_timeout(100ms), [&](Result<Message>) { ++calls; });
  }
  w.run_for(1s);
  EXPECT_EQ(calls, 0);
}

TEST(Rpc, PendingLimitFailsFast) {
  FakeWorld w;
  auto& rt = w.add_peer(1);
  RpcEndpoint rpc(rt, /*max_pending=*/2);
  int ok = 0, failed = 0;
  for (int i = 0; i < 3; ++i) {
    rpc.call(9, request(i), CallOptions().with_timeout(1s), [&](Result<Message> r) {
      if (r.ok())
        ++ok;
      else if (r.error().find("too many pending") != std::string::npos)
        ++failed;
    });
  }
  w.run_for(10ms);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(rpc.pending(), 2u);
}

}  // namespace
}  // namespace crowdtrain
