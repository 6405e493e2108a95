// The live world's shared timeline and a DHT peer on ZeroMQ. Runtimes given one epoch agree on
// now() whenever each was created; a bad epoch is refused. A live DHT peer that is sent garbage
// frames and malformed DHT requests refuses them (the requests with an error response to the
// sender), stores nothing, and keeps serving well-behaved peers.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/dht/dht_app.h"
#include "net/live.h"
#include "net/zmq_runtime.h"

namespace crowdtrain::net {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<ZmqRuntime> make_runtime(PeerId id, MetricsSink& sink,
                                         std::optional<int64_t> epoch = std::nullopt) {
  auto rt = ZmqRuntime::create(ZmqRuntimeOptions().id(id).seed(3).epoch_unix_ns(epoch), sink);
  EXPECT_TRUE(rt.ok()) << rt.error();
  return std::move(rt).value();
}

// Drives every runtime in 5 ms slices until `done` holds or `limit` passes; returns `done()`.
bool drive(std::vector<ZmqRuntime*> rts, const std::function<bool()>& done,
           Time limit = seconds(10)) {
  const auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::steady_clock::now() - start > limit) return false;
    for (ZmqRuntime* rt : rts) rt->run_until(rt->now() + milliseconds(5));
  }
  return true;
}

TEST(LiveClock, RuntimesGivenOneEpochShareATimeline) {
  MetricsSink sink;
  const int64_t epoch = wall_ns() - 100'000'000'000;  // 100 s ago
  auto a = make_runtime(0, sink, epoch);
  std::this_thread::sleep_for(milliseconds(50));
  auto b = make_runtime(1, sink, epoch);  // created later, yet on the same timeline
  const Time ta = a->now(), tb = b->now();
  EXPECT_EQ(a->epoch_unix_ns(), epoch);
  EXPECT_GE(ta, seconds(100));
  EXPECT_LT(ta, seconds(200));
  // Both are on one timeline: they differ by the time between the two reads and the clocks'
  // reading error, not by the 50 ms between their creations (a loose bound: same timeline only).
  EXPECT_LT(std::chrono::abs(tb - ta), seconds(5));

  // No epoch: the runtime's creation is time 0, as a single peer expects.
  auto c = make_runtime(2, sink);
  EXPECT_GE(c->now(), Time(0));
  EXPECT_LT(c->now(), seconds(60));

  // An epoch in the future: now() is negative until it comes.
  auto d = make_runtime(3, sink, wall_ns() + 3600'000'000'000);
  EXPECT_LT(d->now(), -seconds(3000));

  auto bad = ZmqRuntime::create(ZmqRuntimeOptions().id(4).epoch_unix_ns(-1), sink);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("epoch"), std::string::npos) << bad.error();
}

TEST(LiveDht, MalformedFramesAndRequestsAreRefusedWithoutHarm) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  Rng rng(5);
  dht::DhtApp app_a(*a, dht::DhtId::random(rng), dht::DhtOptions().rpc_timeout(seconds(3)), {});
  dht::DhtApp app_b(*b, dht::DhtId::random(rng), dht::DhtOptions().rpc_timeout(seconds(3)), {0});
  a->set_handler([&](PeerId from, Message m) { app_a.on_message(from, std::move(m)); });
  b->set_handler([&](PeerId from, Message m) { app_b.on_message(from, std::move(m)); });

  // A raw peer 7: a DEALER sends to A as "p7", a ROUTER receives A's answers.
  zmq::context_t ctx(1);
  zmq::socket_t inbox(ctx, zmq::socket_type::router);
  inbox.set(zmq::sockopt::linger, 0);
  inbox.bind("tcp://127.0.0.1:*");
  const std::string inbox_at = inbox.get(zmq::sockopt::last_endpoint);
  zmq::socket_t out(ctx, zmq::socket_type::dealer);
  out.set(zmq::sockopt::linger, 0);
  out.set(zmq::sockopt::routing_id, std::string("p7"));
  out.connect(a->endpoint());
  ASSERT_TRUE(a->add_peer(7, inbox_at).ok());
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  // Connected before anything is sent (a DEALER drops what it cannot deliver yet, by design).
  ASSERT_EQ(a->await_connections(seconds(5)).value(), 2u);
  ASSERT_EQ(b->await_connections(seconds(5)).value(), 1u);
  app_a.start();

  // Garbage frames: the runtime rejects them before the DHT sees anything.
  const std::string garbage = "not a message";
  out.send(zmq::buffer(garbage), zmq::send_flags::none);
  std::vector<uint8_t> truncated = encode(Message(MsgType::kDhtStoreRequest));
  truncated.pop_back();
  out.send(zmq::buffer(truncated), zmq::send_flags::none);
  // Well-formed messages that are malformed DHT requests (no fields at all), and a response to a
  // request nobody made: the DHT refuses each request with a reason.
  std::vector<MsgType> requests = {MsgType::kDhtPingRequest, MsgType::kDhtStoreRequest,
                                   MsgType::kDhtFindRequest};
  for (size_t i = 0; i < requests.size(); ++i) {
    Message m(requests[i]);
    m.request_id = 100 + i;
    const std::vector<uint8_t> bytes = encode(m);
    out.send(zmq::buffer(bytes), zmq::send_flags::none);
  }
  Message stray(MsgType::kDhtFindResponse);
  stray.flags = kFlagResponse;
  stray.request_id = 12345;
  const std::vector<uint8_t> stray_bytes = encode(stray);
  out.send(zmq::buffer(stray_bytes), zmq::send_flags::none);

  std::vector<Message> answers;
  ASSERT_TRUE(drive(
      {a.get()},
      [&] {
        zmq::message_t from, frame;
        while (inbox.recv(from, zmq::recv_flags::dontwait)) {
          if (!inbox.recv(frame, zmq::recv_flags::dontwait)) break;
          auto m = decode_copy(static_cast<const uint8_t*>(frame.data()), frame.size());
          if (m.ok()) answers.push_back(std::move(m).value());
        }
        return answers.size() >= requests.size() && sink_a.counter("rpc_unmatched_responses") >= 1;
      }))
      << answers.size() << " answers";
  EXPECT_EQ(sink_a.counter("net_rejected_messages"), 2);
  EXPECT_EQ(sink_a.counter("dht_malformed_requests"), 3);
  for (const Message& m : answers) {
    EXPECT_EQ(m.type, MsgType::kRpcError);
    EXPECT_TRUE(m.is_response());
    EXPECT_GE(m.request_id, 100u);
    EXPECT_LT(m.request_id, 100u + requests.size());
    EXPECT_TRUE(m.bytes(kTagError).ok());
  }
  EXPECT_EQ(app_a.node().storage().size(), 0u);
  EXPECT_EQ(app_a.node().routing_table().size(), 0u) << "a malformed request taught A nothing";

  // A keeps serving: B bootstraps from it, stores, and A gets the value back.
  app_b.start();
  ASSERT_TRUE(drive({a.get(), b.get()}, [&] { return app_b.bootstrapped().has_value(); }));
  ASSERT_TRUE(app_b.bootstrapped()->ok()) << app_b.bootstrapped()->message();
  size_t stored = 0;
  bool stored_done = false;
  app_b.node().store("live-key", "live-value", b->now() + seconds(600), [&](size_t n) {
    stored = n;
    stored_done = true;
  });
  ASSERT_TRUE(drive({a.get(), b.get()}, [&] { return stored_done; }));
  EXPECT_EQ(stored, 2u);
  std::optional<Result<dht::DhtValue>> got;
  app_a.node().get("live-key", [&](Result<dht::DhtValue> r) { got = std::move(r); });
  ASSERT_TRUE(drive({a.get(), b.get()}, [&] { return got.has_value(); }));
  ASSERT_TRUE(got->ok()) << got->error();
  EXPECT_EQ(got->value().plain.value, "live-value");
  EXPECT_FALSE(app_b.node().blacklisted(0));
}

// What a live peer cannot honour is named, not silently dropped.
TEST(LiveNotHonoured, NamesChurnFaultsRegionsAndTheAlwaysSimulatedParts) {
  const Scenario plain;
  const std::vector<std::string> base = live_not_honoured(plain);
  ASSERT_EQ(base.size(), 2u);  // the links and the compute model, always
  EXPECT_NE(base[0].find("upload_mbps"), std::string::npos);
  EXPECT_NE(base[1].find("compute"), std::string::npos);
  Scenario s;
  s.churn.model = ChurnModel::kSessions;
  s.churn.lifetime_s_max = 60;
  s.faults.resize(2);
  s.network.regions.rtt_csv = "world.csv";
  s.network.fidelity = Fidelity::kPacket;
  const std::vector<std::string> all = live_not_honoured(s);
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(all[0].rfind("churn.model \"sessions\"", 0), 0u) << all[0];
  EXPECT_EQ(all[1].rfind("churn.lifetime_s_max", 0), 0u);
  EXPECT_EQ(all[2].rfind("faults (2)", 0), 0u);
  EXPECT_EQ(all[3].rfind("network.regions", 0), 0u);
  EXPECT_EQ(all[5].rfind("network.fidelity \"packet\"", 0), 0u);
}

}  // namespace
}  // namespace crowdtrain::net
