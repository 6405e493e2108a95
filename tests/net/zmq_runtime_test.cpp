// ZmqRuntime on loopback: several runtimes in one process, each bound to an ephemeral port, driven
// alternately in short run_until() slices on the test's thread.
#include "net/zmq_runtime.h"

#include "net/curve_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace crowdtrain::net {
namespace {

using std::chrono::milliseconds;

std::unique_ptr<ZmqRuntime> make_runtime(PeerId id, MetricsSink& sink, uint64_t seed = 7) {
  auto rt = ZmqRuntime::create(ZmqRuntimeOptions().id(id).seed(seed), sink);
  EXPECT_TRUE(rt.ok()) << rt.error();
  return std::move(rt).value();
}

// Drives every runtime in 5 ms slices until `done` holds or `limit` passes; returns `done()`.
bool drive(std::vector<ZmqRuntime*> rts, const std::function<bool()>& done,
           Time limit = std::chrono::seconds(5)) {
  const auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::steady_clock::now() - start > limit) return false;
    for (ZmqRuntime* rt : rts) rt->run_until(rt->now() + milliseconds(5));
  }
  return true;
}

// Sends `make()` from `a` to `to` every 20 ms until `done` (a message to a peer that never comes
// up is dropped after the connect grace), while driving both.
bool send_until(ZmqRuntime& a, ZmqRuntime& b, PeerId to, const std::function<Message()>& make,
                const std::function<bool()>& done) {
  std::function<void()> tick;
  TimerId timer = 0;
  tick = [&]() {
    a.send(to, make());
    timer = a.schedule(milliseconds(20), tick);
  };
  tick();
  const bool ok = drive({&a, &b}, done);
  a.cancel(timer);
  return ok;
}

TEST(ZmqRuntimeTest, PeerIdentityIsStrict) {
  EXPECT_EQ(parse_peer_identity(peer_identity(0)), PeerId{0});
  EXPECT_EQ(parse_peer_identity(peer_identity(4294967294u)), PeerId{4294967294u});
  for (const char* bad :
       {"", "p", "p01", "p-1", "p+1", "q1", "p1x", "p4294967295", "p99999999999", " p1", "P1"}) {
    EXPECT_FALSE(parse_peer_identity(bad).has_value()) << bad;
  }
  EXPECT_FALSE(parse_peer_identity(std::string("p1\0", 3)).has_value());
}

TEST(ZmqRuntimeTest, TimersFireInOrderAndCancelWorks) {
  MetricsSink sink;
  auto rt = make_runtime(0, sink);
  std::vector<int> fired;
  rt->schedule(milliseconds(30), [&] { fired.push_back(30); });
  rt->schedule(milliseconds(10), [&] { fired.push_back(10); });
  rt->schedule(milliseconds(20), [&] {
    fired.push_back(20);
    rt->schedule(Time(0), [&] { fired.push_back(21); });  // scheduled from a callback
  });
  rt->schedule(milliseconds(10), [&] { fired.push_back(11); });  // same deadline: FIFO
  const TimerId cancelled = rt->schedule(milliseconds(15), [&] { fired.push_back(15); });
  rt->cancel(cancelled);
  rt->cancel(cancelled);  // twice: a no-op
  rt->cancel(12345);      // unknown: a no-op
  const Time t0 = rt->now();
  rt->run_until(t0 + milliseconds(60));
  EXPECT_EQ(fired, (std::vector<int>{10, 11, 20, 21, 30}));
  EXPECT_GE(rt->now() - t0, milliseconds(60));
}

TEST(ZmqRuntimeTest, TimerDoesNotFireEarly) {
  MetricsSink sink;
  auto rt = make_runtime(0, sink);
  Time fired_at{-1};
  const Time t0 = rt->now();
  rt->schedule(milliseconds(25), [&] { fired_at = rt->now(); });
  rt->run_until(t0 + milliseconds(100));
  EXPECT_GE(fired_at - t0, milliseconds(25));
  EXPECT_LT(fired_at - t0, milliseconds(90));
}

TEST(ZmqRuntimeTest, StopFromACallbackEndsTheLoop) {
  MetricsSink sink;
  auto rt = make_runtime(0, sink);
  bool late = false;
  rt->schedule(milliseconds(5), [&] { rt->stop(); });
  rt->schedule(milliseconds(10), [&] { late = true; });
  const auto wall = std::chrono::steady_clock::now();
  rt->run_until(rt->now() + std::chrono::seconds(10));
  EXPECT_LT(std::chrono::steady_clock::now() - wall, std::chrono::seconds(2));
  EXPECT_TRUE(rt->stopped());
  rt->run_until(rt->now() + milliseconds(20));  // stop is for good
  EXPECT_FALSE(late);
}

TEST(ZmqRuntimeTest, ComputeRunsWorkThenDoneAfterTheCall) {
  MetricsSink sink;
  auto rt = make_runtime(0, sink);
  std::vector<std::string> order;
  rt->compute(
      ComputeCost{1e9}, [&] { order.push_back("work1"); }, [&] { order.push_back("done1"); });
  rt->compute(
      ComputeCost{1e9}, [&] { order.push_back("work2"); }, [&] { order.push_back("done2"); });
  EXPECT_TRUE(order.empty());  // never inside compute() itself
  rt->run_until(rt->now() + milliseconds(10));
  EXPECT_EQ(order, (std::vector<std::string>{"work1", "done1", "work2", "done2"}));
  EXPECT_EQ(sink.sample_count("compute_ms"), 2u);
}

TEST(ZmqRuntimeTest, RngIsSeededPerPeer) {
  MetricsSink sink;
  auto a = make_runtime(3, sink, 42);
  auto b = make_runtime(3, sink, 42);
  auto c = make_runtime(4, sink, 42);
  const uint64_t x = a->rng().next_u64();
  EXPECT_EQ(x, b->rng().next_u64());
  EXPECT_NE(x, c->rng().next_u64());
  EXPECT_EQ(x, Rng(derive_seed(42, "peer", 3)).next_u64());
}

TEST(ZmqRuntimeTest, MessagesArriveIntactWithTensors) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());

  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i) - 7.0f;
  auto make = [&]() {
    Message m(MsgType::kProbeRequest);
    m.request_id = 0x1234567890ull;
    m.add_u64(20, 7).add_i64(21, -9).add_f64(22, 2.5).add_bytes(23, std::string("he\0llo", 6));
    TensorData t;
    t.dtype = DType::kFloat32;
    t.shape = {10, 100};
    t.bytes = Bytes::copy_of(values.data(), values.size() * sizeof(float));
    m.add_tensor(24, std::move(t)).add_filler(25, 3000);
    return m;
  };
  std::vector<std::pair<PeerId, Message>> got_b, got_a;
  b->set_handler([&](PeerId from, Message m) {
    // Answer every message: the reply travels b -> a over b's own DEALER.
    Message r(MsgType::kProbeResponse);
    r.flags = kFlagResponse;
    r.request_id = m.request_id;
    b->send(from, r);
    got_b.emplace_back(from, std::move(m));
  });
  a->set_handler([&](PeerId from, Message m) { got_a.emplace_back(from, std::move(m)); });
  ASSERT_TRUE(send_until(*a, *b, 1, make, [&] { return !got_a.empty(); }));

  ASSERT_FALSE(got_b.empty());
  const auto& [from, m] = got_b.front();
  EXPECT_EQ(from, 0u);
  EXPECT_EQ(m.type, MsgType::kProbeRequest);
  EXPECT_EQ(m.request_id, 0x1234567890ull);
  EXPECT_EQ(m.u64(20).value(), 7u);
  EXPECT_EQ(m.i64(21).value(), -9);
  EXPECT_EQ(m.f64(22).value(), 2.5);
  EXPECT_EQ(m.bytes(23).value(), std::string("he\0llo", 6));
  EXPECT_EQ(m.filler(25).value(), 3000u);
  const TensorData t = m.tensor(24).value();
  EXPECT_EQ(t.dtype, DType::kFloat32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{10, 100}));
  ASSERT_EQ(t.bytes.size, values.size() * sizeof(float));
  EXPECT_EQ(std::memcmp(t.bytes.data, values.data(), t.bytes.size), 0);

  EXPECT_EQ(got_a.front().first, 1u);
  EXPECT_TRUE(got_a.front().second.is_response());
  EXPECT_EQ(got_a.front().second.request_id, 0x1234567890ull);
  EXPECT_GE(sink_a.counter("messages_sent"), 1);
  EXPECT_EQ(sink_b.counter("messages_delivered"), static_cast<int64_t>(got_b.size()));
  EXPECT_EQ(sink_b.counter("net_rejected_messages"), 0);
}

// network.delay_ms in live mode: every message is held back the drawn delay before it is handled.
TEST(ZmqRuntimeTest, InjectedDelayHoldsEveryMessageBack) {
  MetricsSink sink_a, sink_b;
  DistSpec delay = DistSpec::constant(150);
  auto created = ZmqRuntime::create(ZmqRuntimeOptions().id(0).seed(7).delay_ms(delay), sink_a);
  ASSERT_TRUE(created.ok()) << created.error();
  auto a = std::move(created).value();
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  ASSERT_TRUE(a->await_connections(std::chrono::seconds(5)).ok());
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  b->set_handler([&](PeerId, Message) { arrivals.push_back(std::chrono::steady_clock::now()); });
  const auto sent = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) a->send(1, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(drive({a.get(), b.get()}, [&] { return arrivals.size() == 3; }))
      << sink_a.counter("messages_sent") << " sent, " << sink_a.counter("net_send_dropped")
      << " dropped, " << sink_b.counter("messages_delivered") << " delivered";
  for (const auto& at : arrivals) EXPECT_GE(at - sent, milliseconds(150));
  EXPECT_EQ(sink_a.counter("messages_sent"), 3);
}

// The injected delay is the network's, not the sender's: a sender that computes right after
// sending (a server answering one request, then computing the next batch) does not hold back what
// it sent. (The delay used to be a timer at the sender, which fired only after its compute.)
TEST(ZmqRuntimeTest, InjectedDelayDoesNotWaitForTheSendersCompute) {
  MetricsSink sink_a, sink_b;
  DistSpec delay = DistSpec::constant(100);
  auto created = ZmqRuntime::create(ZmqRuntimeOptions().id(0).seed(7).delay_ms(delay), sink_a);
  ASSERT_TRUE(created.ok()) << created.error();
  auto a = std::move(created).value();
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  ASSERT_TRUE(a->await_connections(std::chrono::seconds(5)).ok());
  std::atomic<bool> got{false};
  std::chrono::steady_clock::time_point arrival;
  b->set_handler([&](PeerId, Message) {
    arrival = std::chrono::steady_clock::now();
    got.store(true);
    b->stop();
  });
  std::thread receiver([&] { b->run_until(b->now() + std::chrono::seconds(10)); });
  const auto sent = std::chrono::steady_clock::now();
  a->send(1, Message(MsgType::kProbeRequest));
  a->compute(
      ComputeCost{}, [] { std::this_thread::sleep_for(milliseconds(1500)); }, [&] { a->stop(); });
  a->run_until(a->now() + std::chrono::seconds(10));
  if (!got.load()) b->stop();
  receiver.join();
  ASSERT_TRUE(got.load());
  EXPECT_GE(arrival - sent, milliseconds(100));
  EXPECT_LT(arrival - sent, milliseconds(1000)) << "the message waited for its sender's compute";
}

// A peer whose loop runs back-to-back compute (a trainer stepping flat out: each step a timer
// that schedules the next) still reads its messages between steps: a turn of timers ends after
// max_turn_time (5 ms), not after max_timers_per_turn (1,024) timers. Here 400 steps of 1 ms each:
// the message is handled after a few of them, where a turn bounded only by count ran all 400 first.
TEST(ZmqRuntimeTest, BackToBackComputeDoesNotStarveReceipt) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  ASSERT_TRUE(a->await_connections(std::chrono::seconds(5)).ok());
  int steps = 0, steps_at_receipt = -1;
  std::function<void()> step = [&] {
    const auto until = std::chrono::steady_clock::now() + milliseconds(1);
    while (std::chrono::steady_clock::now() < until) {
    }
    if (++steps < 400) {
      b->compute(ComputeCost{}, nullptr, step);
    } else {
      b->stop();
    }
  };
  b->set_handler([&](PeerId, Message) {
    if (steps_at_receipt < 0) steps_at_receipt = steps;
  });
  a->send(1, Message(MsgType::kProbeRequest));
  std::this_thread::sleep_for(milliseconds(50));  // the message is in b's socket
  b->compute(ComputeCost{}, nullptr, step);
  b->run_until(b->now() + std::chrono::seconds(10));
  EXPECT_EQ(steps, 400);
  ASSERT_GE(steps_at_receipt, 0);
  EXPECT_LT(steps_at_receipt, 100) << "the message waited for " << steps_at_receipt << " steps";
}

TEST(ZmqRuntimeTest, LargeTensorArrivesIntact) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  std::vector<double> values(1 << 20);  // 8 MiB
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i) * 0.25;
  auto make = [&]() {
    TensorData t;
    t.dtype = DType::kFloat64;
    t.shape = {1024, 1024};
    t.bytes = Bytes::copy_of(values.data(), values.size() * sizeof(double));
    Message m(MsgType::kTransferRequest);
    m.add_bytes(20, "x").add_tensor(21, std::move(t));
    return m;
  };
  std::vector<Message> got;
  b->set_handler([&](PeerId, Message m) { got.push_back(std::move(m)); });
  ASSERT_TRUE(send_until(*a, *b, 1, make, [&] { return !got.empty(); }));
  const TensorData t = got.front().tensor(21).value();
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1024, 1024}));
  ASSERT_EQ(t.bytes.size, values.size() * sizeof(double));
  EXPECT_EQ(std::memcmp(t.bytes.data, values.data(), t.bytes.size), 0);
}

// A raw DEALER: no ZMQ_IMMEDIATE, so what it sends waits for the connection rather than dropping.
zmq::socket_t raw_dealer(zmq::context_t& ctx, const std::string& identity, const std::string& to) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  if (!identity.empty()) s.set(zmq::sockopt::routing_id, identity);
  s.connect(to);
  return s;
}

TEST(ZmqRuntimeTest, MalformedFramesAreRejectedAndCounted) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(7, "tcp://127.0.0.1:1").ok());  // the raw socket's identity is known
  int delivered = 0;
  b->set_handler([&](PeerId, Message) { ++delivered; });
  const std::string events_path =
      ::testing::TempDir() + "zmq_runtime_test_rejects_" + std::to_string(::getpid()) + ".jsonl";
  ASSERT_TRUE(sink_b.open_event_file(events_path));

  zmq::context_t ctx(1);
  zmq::socket_t known = raw_dealer(ctx, "p7", b->endpoint());
  zmq::socket_t anonymous = raw_dealer(ctx, "", b->endpoint());      // ROUTER makes up an id
  zmq::socket_t malformed = raw_dealer(ctx, "p007", b->endpoint());  // not canonical
  zmq::socket_t stranger = raw_dealer(ctx, "p99", b->endpoint());    // not in the directory
  const std::vector<uint8_t> good = encode(Message(MsgType::kProbeRequest));
  std::vector<uint8_t> truncated(good.begin(), good.end() - 1);
  std::vector<uint8_t> wrong_version = good;
  wrong_version[2] = 99;
  const std::string garbage = "garbage";
  known.send(zmq::buffer(garbage), zmq::send_flags::none);
  known.send(zmq::buffer(truncated), zmq::send_flags::none);
  known.send(zmq::buffer(wrong_version), zmq::send_flags::none);
  known.send(zmq::buffer(good), zmq::send_flags::sndmore);  // multipart
  known.send(zmq::buffer(good), zmq::send_flags::none);
  known.send(zmq::message_t(), zmq::send_flags::none);  // empty frame
  std::vector<uint8_t> stamp = {'c', 't', 'd', 'l'};    // a delay stamp an hour ahead
  const int64_t due = b->epoch_unix_ns() + b->now().count() + int64_t{3600} * 1000000000;
  for (int i = 0; i < 8; ++i)
    stamp.push_back(static_cast<uint8_t>(static_cast<uint64_t>(due) >> (8 * i)));
  ASSERT_EQ(stamp.size(), kDelayStampBytes);
  known.send(zmq::buffer(stamp), zmq::send_flags::sndmore);
  known.send(zmq::buffer(good), zmq::send_flags::none);
  anonymous.send(zmq::buffer(good), zmq::send_flags::none);
  malformed.send(zmq::buffer(good), zmq::send_flags::none);
  stranger.send(zmq::buffer(good), zmq::send_flags::none);
  constexpr int kBad = 9;
  ASSERT_TRUE(drive({b.get()}, [&] { return sink_b.counter("net_rejected_messages") >= kBad; }))
      << sink_b.counter("net_rejected_messages");
  EXPECT_EQ(delivered, 0);

  // A well-formed frame from the known raw identity is delivered, and so is a peer's message.
  known.send(zmq::buffer(good), zmq::send_flags::none);
  ASSERT_TRUE(drive({b.get()}, [&] { return delivered == 1; }));
  ASSERT_TRUE(send_until(
      *a, *b, 1, [] { return Message(MsgType::kProbeResponse); }, [&] { return delivered >= 2; }));
  EXPECT_EQ(sink_b.counter("net_rejected_messages"), kBad);
  EXPECT_EQ(sink_b.counter("messages_delivered"), delivered);

  // Each rejection is one well-formed event line that says why.
  sink_b.close_event_file();
  std::ifstream in(events_path);
  std::string line;
  std::vector<std::string> reasons;
  while (std::getline(in, line)) {
    const nlohmann::json e = nlohmann::json::parse(line);  // throws on a malformed line
    if (e.at("ev") == "net_reject") reasons.push_back(e.at("reason").get<std::string>());
  }
  ASSERT_EQ(reasons.size(), static_cast<size_t>(kBad));
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "malformed identity"), 2);
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "unknown peer"), 1);
  EXPECT_EQ(std::count_if(reasons.begin(), reasons.end(),
                          [](const std::string& r) { return r.rfind("delay stamp ", 0) == 0; }),
            1);
  std::remove(events_path.c_str());
}

// Messages to a peer whose connection is not up wait connect_grace (at most max_pending of
// them), then are dropped; sending never blocks.
TEST(ZmqRuntimeTest, SendingToADeadOrUnknownPeerDoesNotBlock) {
  MetricsSink sink;
  auto a = ZmqRuntime::create(
               ZmqRuntimeOptions().id(0).connect_grace(milliseconds(100)).max_pending(64), sink)
               .value();
  // Port 1 on loopback: nothing listens there.
  ASSERT_TRUE(a->add_peer(5, "tcp://127.0.0.1:1").ok());
  Message m(MsgType::kProbeRequest);
  m.add_filler(kTagPayload, 1000);
  constexpr int kSends = 5000;
  const auto wall = std::chrono::steady_clock::now();
  for (int i = 0; i < kSends; ++i) a->send(5, m);
  for (int i = 0; i < 10; ++i) a->send(42, m);               // not in the directory
  EXPECT_EQ(sink.counter("net_send_dropped"), kSends - 64);  // the rest wait
  a->run_until(a->now() + milliseconds(150));
  EXPECT_EQ(sink.counter("net_send_dropped"), kSends);  // the grace is over
  for (int i = 0; i < kSends; ++i) a->send(5, m);
  EXPECT_LT(std::chrono::steady_clock::now() - wall, std::chrono::seconds(3));
  EXPECT_EQ(sink.counter("net_send_dropped"), 2 * kSends - 64);  // each wait starts afresh
  a->run_until(a->now() + milliseconds(150));
  EXPECT_EQ(sink.counter("net_send_dropped"), 2 * kSends);
  EXPECT_EQ(sink.counter("net_send_unknown_peer"), 10);
  EXPECT_EQ(sink.counter("messages_sent"), 0);
}

TEST(ZmqRuntimeTest, SendingToAPeerThatDiedDoesNotBlock) {
  MetricsSink sink_a, sink_b;
  auto a = ZmqRuntime::create(ZmqRuntimeOptions().id(0).connect_grace(milliseconds(100)), sink_a)
               .value();
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  int delivered = 0;
  b->set_handler([&](PeerId, Message) { ++delivered; });
  ASSERT_TRUE(send_until(
      *a, *b, 1, [] { return Message(MsgType::kProbeRequest); }, [&] { return delivered > 0; }));
  b.reset();  // the peer dies; a has not noticed yet
  Message m(MsgType::kProbeRequest);
  m.add_filler(kTagPayload, 1000);
  const int64_t sent_before = sink_a.counter("messages_sent");
  const int64_t dropped_before = sink_a.counter("net_send_dropped");
  constexpr int kSends = 5000;  // more than the send high-water mark
  const auto wall = std::chrono::steady_clock::now();
  for (int i = 0; i < kSends; ++i) a->send(1, m);
  a->run_until(a->now() + milliseconds(20));
  for (int i = 0; i < kSends; ++i) a->send(1, m);
  EXPECT_LT(std::chrono::steady_clock::now() - wall, std::chrono::seconds(3));
  a->run_until(a->now() + milliseconds(250));  // what waited for the dead peer is dropped
  const int64_t dropped = sink_a.counter("net_send_dropped") - dropped_before;
  EXPECT_EQ(sink_a.counter("messages_sent") - sent_before + dropped, 2 * kSends);
  EXPECT_GT(dropped, 0);
}

// A peer that restarts on its address within the connect grace gets what was sent meanwhile.
TEST(ZmqRuntimeTest, MessagesWaitForAPeerThatRestarts) {
  MetricsSink sink_a, sink_b, sink_b2;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  const std::string address = b->endpoint();
  ASSERT_TRUE(a->add_peer(1, address).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  int delivered = 0;
  b->set_handler([&](PeerId, Message) { ++delivered; });
  ASSERT_TRUE(send_until(
      *a, *b, 1, [] { return Message(MsgType::kProbeRequest); }, [&] { return delivered > 0; }));
  b.reset();                                   // the peer dies ...
  a->run_until(a->now() + milliseconds(100));  // ... a notices ...
  for (int i = 0; i < 3; ++i) a->send(1, Message(MsgType::kProbeResponse));
  a->run_until(a->now() + milliseconds(100));
  auto b2 = ZmqRuntime::create(ZmqRuntimeOptions().id(1).listen(address), sink_b2);  // ... is back
  ASSERT_TRUE(b2.ok()) << b2.error();
  ASSERT_TRUE(b2.value()->add_peer(0, a->endpoint()).ok());
  int again = 0;
  b2.value()->set_handler([&](PeerId, Message m) { again += m.type == MsgType::kProbeResponse; });
  EXPECT_TRUE(drive({a.get(), b2.value().get()}, [&] { return again == 3; }));
  EXPECT_EQ(sink_a.counter("net_send_dropped"), 0);
}

// What arrives before the app's handler is set (a peer still joining) waits for it.
TEST(ZmqRuntimeTest, MessagesBeforeTheHandlerWaitForIt) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  ASSERT_TRUE(b->add_peer(0, a->endpoint()).ok());
  for (int i = 0; i < 3; ++i) a->send(1, Message(MsgType::kProbeRequest));
  drive(
      {a.get(), b.get()}, [] { return false; }, milliseconds(300));
  EXPECT_EQ(sink_b.counter("messages_delivered"), 0);
  int delivered = 0;
  b->set_handler([&](PeerId from, Message) { delivered += from == 0; });
  EXPECT_TRUE(drive({a.get(), b.get()}, [&] { return delivered == 3; }));
  EXPECT_EQ(sink_b.counter("net_undelivered"), 0);
}

TEST(ZmqRuntimeTest, AwaitConnectionsWaitsForLivePeersOnly) {
  MetricsSink sink_a, sink_b;
  auto a = make_runtime(0, sink_a);
  auto b = make_runtime(1, sink_b);
  ASSERT_TRUE(a->add_peer(1, b->endpoint()).ok());
  auto all_up = a->await_connections(std::chrono::seconds(5));
  ASSERT_TRUE(all_up.ok()) << all_up.error();
  EXPECT_EQ(all_up.value(), 1u);
  // Connected means the first message goes through: no drop at start-up.
  int delivered = 0;
  b->add_peer(0, a->endpoint());
  b->set_handler([&](PeerId, Message) { ++delivered; });
  a->send(1, Message(MsgType::kProbeRequest));
  EXPECT_EQ(sink_a.counter("net_send_dropped"), 0);
  EXPECT_TRUE(drive({b.get()}, [&] { return delivered == 1; }));

  ASSERT_TRUE(a->add_peer(2, "tcp://127.0.0.1:1").ok());  // nobody there
  const auto wall = std::chrono::steady_clock::now();
  auto some_up = a->await_connections(milliseconds(300));
  ASSERT_TRUE(some_up.ok());
  EXPECT_EQ(some_up.value(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - wall, milliseconds(290));
  EXPECT_LT(std::chrono::steady_clock::now() - wall, std::chrono::seconds(2));
}

TEST(ZmqRuntimeTest, OversizeMessagesAreRefused) {
  MetricsSink sink;
  auto a = ZmqRuntime::create(ZmqRuntimeOptions().id(0).max_message_bytes(4096), sink).value();
  ASSERT_TRUE(a->add_peer(1, "tcp://127.0.0.1:1").ok());
  Message m(MsgType::kProbeRequest);
  m.add_filler(kTagPayload, 8192);
  a->send(1, m);
  EXPECT_EQ(sink.counter("net_send_oversize"), 1);
}

TEST(ZmqRuntimeTest, BadAddressesAreErrors) {
  MetricsSink sink;
  auto a = make_runtime(0, sink);
  EXPECT_FALSE(a->add_peer(1, "127.0.0.1:5000").ok());
  EXPECT_FALSE(a->add_peer(kNoPeer, "tcp://127.0.0.1:5000").ok());
  auto busy = ZmqRuntime::create(ZmqRuntimeOptions().id(1).listen(a->endpoint()), sink);
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.error().find(a->endpoint()), std::string::npos) << busy.error();
  ASSERT_TRUE(a->add_peer(2, "nosuch://x").ok());
  EXPECT_FALSE(a->connect_all().ok());
}

// CurveZMQ: peers that hold each other's keys talk; a key the directory lacks is refused at the
// handshake; a known key that claims another peer's id is refused per message; a plain peer
// cannot reach a secure one.
struct SecurePeer {
  CurveKeypair keys;
  MetricsSink sink;
  std::unique_ptr<ZmqRuntime> rt;
  std::vector<PeerId> from;  // senders of what arrived
};

CurveKeypair fresh_keys(const std::string& name) {
  const std::string path =
      ::testing::TempDir() + "/keys_" + name + "_" + std::to_string(::getpid());
  std::remove(path.c_str());
  auto k = load_or_create_keypair(path);
  EXPECT_TRUE(k.ok()) << k.error();
  return k.value();
}

void start_secure(SecurePeer& p, PeerId id, const std::string& name) {
  p.keys = fresh_keys(name);
  auto rt = ZmqRuntime::create(ZmqRuntimeOptions()
                                   .id(id)
                                   .curve_public_key(p.keys.public_key)
                                   .curve_secret_key(p.keys.secret_key),
                               p.sink);
  ASSERT_TRUE(rt.ok()) << rt.error();
  p.rt = std::move(rt).value();
  p.rt->set_handler([&p](PeerId from, Message) { p.from.push_back(from); });
}

TEST(ZmqRuntimeCurve, PeersWithEachOthersKeysTalkAndOthersAreRefused) {
  ASSERT_TRUE(curve_available());
  SecurePeer a, b, stranger, impostor;
  start_secure(a, 0, "a");
  start_secure(b, 1, "b");
  start_secure(stranger, 2, "stranger");
  start_secure(impostor, 1, "impostor");  // claims b's id with a key a knows as peer 3
  ASSERT_TRUE(a.rt->secure() && b.rt->secure());
  ASSERT_TRUE(a.rt->add_peer(1, b.rt->endpoint(), b.keys.public_key).ok());
  ASSERT_TRUE(a.rt->add_peer(3, "tcp://127.0.0.1:1", impostor.keys.public_key).ok());
  ASSERT_TRUE(b.rt->add_peer(0, a.rt->endpoint(), a.keys.public_key).ok());
  ASSERT_TRUE(stranger.rt->add_peer(0, a.rt->endpoint(), a.keys.public_key).ok());
  ASSERT_TRUE(impostor.rt->add_peer(0, a.rt->endpoint(), a.keys.public_key).ok());
  EXPECT_FALSE(a.rt->add_peer(4, "tcp://127.0.0.1:2").ok());  // a secure directory needs the key

  auto make = [] { return Message(MsgType::kProbeRequest); };
  ASSERT_TRUE(send_until(*b.rt, *a.rt, 0, make, [&] { return !a.from.empty(); }));
  EXPECT_EQ(a.from.front(), PeerId{1});
  // The stranger's handshake is refused: nothing arrives, the refusal is counted.
  const size_t before = a.from.size();
  send_until(*stranger.rt, *a.rt, 0, make, [&] { return a.sink.counter("net_auth_refused") > 0; });
  EXPECT_GT(a.sink.counter("net_auth_refused"), 0);
  // The impostor's handshake passes (its key is known) but it speaks as "p1": rejected.
  send_until(*impostor.rt, *a.rt, 0, make,
             [&] { return a.sink.counter("net_rejected_messages") > 0; });
  EXPECT_GT(a.sink.counter("net_rejected_messages"), 0);
  EXPECT_EQ(std::count(a.from.begin() + static_cast<std::ptrdiff_t>(before), a.from.end(), 1u), 0);
}

TEST(ZmqRuntimeCurve, APlainPeerCannotReachASecureOne) {
  SecurePeer a;
  start_secure(a, 0, "secure");
  MetricsSink plain_sink;
  auto plain = make_runtime(1, plain_sink);
  ASSERT_TRUE(a.rt->add_peer(1, plain->endpoint(), fresh_keys("unused").public_key).ok());
  ASSERT_TRUE(plain->add_peer(0, a.rt->endpoint()).ok());
  auto make = [] { return Message(MsgType::kProbeRequest); };
  EXPECT_FALSE(send_until(*plain, *a.rt, 0, make, [&] { return !a.from.empty(); }));
}

TEST(ZmqRuntimeCurve, KeyFilesAreCreatedOnceAndChecked) {
  const std::string path = ::testing::TempDir() + "/keyfile_" + std::to_string(::getpid());
  std::remove(path.c_str());
  auto first = load_or_create_keypair(path);
  auto again = load_or_create_keypair(path);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->public_key, again->public_key);
  EXPECT_TRUE(valid_curve_key(first->public_key));
  EXPECT_FALSE(valid_curve_key("short"));
  std::ofstream(path) << "public=" << first->public_key << "\nsecret=not-a-key\n";
  auto bad = load_or_create_keypair(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find(":2: expected public=<key> or secret=<key>"), std::string::npos)
      << bad.error();
  const CurveKeypair other = fresh_keys("other");
  std::ofstream(path) << "public=" << other.public_key << "\nsecret=" << first->secret_key << "\n";
  auto mismatch = load_or_create_keypair(path);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().find("the public key is not the secret key's"), std::string::npos);
}

TEST(ZmqRuntimeCurve, SwarmKeyAndIdentityFilesAreCreatedOnceAndChecked) {
  const std::string dir = ::testing::TempDir() + "/keys_" + std::to_string(::getpid());
  const std::string swarm = dir + ".swarm", identity = dir + ".identity";
  std::remove(swarm.c_str());
  std::remove(identity.c_str());
  auto s1 = load_or_create_swarm_key(swarm), s2 = load_or_create_swarm_key(swarm);
  ASSERT_TRUE(s1.ok() && s2.ok()) << s1.error();
  EXPECT_EQ(*s1, *s2);
  EXPECT_EQ(s1->size(), 64u);
  auto i1 = load_or_create_identity(identity), i2 = load_or_create_identity(identity);
  ASSERT_TRUE(i1.ok() && i2.ok()) << i1.error();
  EXPECT_EQ(i1->public_key(), i2->public_key());
  struct stat st {};
  ASSERT_EQ(stat(identity.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ofstream(swarm) << "swarm=abc\n";
  auto short_key = load_or_create_swarm_key(swarm);
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.error().find("must be 64 hex digits"), std::string::npos);
  std::ofstream(identity) << "ed25519=" << std::string(128, 'a') << "\nextra=1\n";
  auto two_lines = load_or_create_identity(identity);
  ASSERT_FALSE(two_lines.ok());
  EXPECT_NE(two_lines.error().find("expected one line ed25519=<128 hex digits>"), std::string::npos)
      << two_lines.error();
  std::ofstream(identity) << "ed25519=" << std::string(128, 'a') << "\n";
  auto mismatch = load_or_create_identity(identity);  // its public half is not its seed's
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().find("does not match"), std::string::npos) << mismatch.error();
  std::remove(swarm.c_str());
  std::remove(identity.c_str());
}

// Open membership: peers that know one address join through it, and learn the rest by asking.
std::unique_ptr<ZmqRuntime> make_open(PeerId id, MetricsSink& sink, const std::string& swarm = "",
                                      const CurveKeypair* keys = nullptr, bool client = false) {
  ZmqRuntimeOptions o = ZmqRuntimeOptions()
                            .id(id)
                            .open_membership(true)
                            .swarm_key(swarm)
                            .resolve_timeout(milliseconds(300))
                            .connect_grace(milliseconds(500))
                            .client_mode(client);
  if (keys) o.curve_public_key(keys->public_key).curve_secret_key(keys->secret_key);
  auto rt = ZmqRuntime::create(o, sink);
  EXPECT_TRUE(rt.ok()) << rt.error();
  return std::move(rt).value();
}

// `joiner` joins through `initial` (driven on a thread of its own meanwhile); the ids that
// answered.
std::vector<PeerId> join_through(ZmqRuntime& joiner, ZmqRuntime& initial,
                                 const std::string& key = "",
                                 Time limit = std::chrono::seconds(3)) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    while (!done.load()) initial.run_until(initial.now() + milliseconds(5));
  });
  auto joined = joiner.join({InitialPeer{initial.endpoint(), key}}, limit);
  done.store(true);
  t.join();
  EXPECT_TRUE(joined.ok()) << joined.error();
  return joined.ok() ? joined.value() : std::vector<PeerId>{};
}

TEST(ZmqRuntimeOpen, PeersJoinThroughOneAddressAndFindEachOther) {
  MetricsSink sa, sb, sc;
  auto a = make_open(10, sa);
  auto b = make_open(20, sb);
  auto c = make_open(30, sc);
  EXPECT_EQ(join_through(*b, *a), std::vector<PeerId>{10});
  EXPECT_EQ(join_through(*c, *a), std::vector<PeerId>{10});
  EXPECT_EQ(a->known_peers(), 2u);             // a learned both from their hellos
  EXPECT_EQ(c->known_peers(), 1u);             // c knows only a
  std::vector<std::pair<PeerId, PeerId>> got;  // (receiver, sender)
  for (auto* rt : {a.get(), b.get(), c.get()}) {
    rt->set_handler([&got, rt](PeerId from, Message msg) {
      got.emplace_back(rt->self(), from);
      if (msg.type == MsgType::kProbeRequest) rt->send(from, Message(MsgType::kProbeResponse));
    });
  }
  // c has never heard of b: it asks a where b is, then b answers c (it learned c's address from
  // the hello that opened c's connection).
  c->send(20, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(drive({a.get(), b.get(), c.get()}, [&] { return got.size() >= 2; }));
  EXPECT_EQ(got[0], std::make_pair(PeerId{20}, PeerId{30}));
  EXPECT_EQ(got[1], std::make_pair(PeerId{30}, PeerId{20}));
  EXPECT_EQ(sc.counter("net_resolve_asked"), 1);
  EXPECT_EQ(sc.counter("net_resolved"), 1);
  EXPECT_EQ(sb.counter("net_resolve_asked"), 0);
  EXPECT_EQ(sa.counter("net_rejected_messages") + sb.counter("net_rejected_messages") +
                sc.counter("net_rejected_messages"),
            0);
  // Nobody knows peer 99: the message is dropped after the resolve time-out, and counted.
  c->send(99, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(
      drive({a.get(), b.get(), c.get()}, [&] { return sc.counter("net_unresolved") == 1; }));
  // A message to a known peer does not wait for its connection to be set up: no drop.
  EXPECT_EQ(sa.counter("net_send_dropped") + sb.counter("net_send_dropped") +
                sc.counter("net_send_dropped"),
            0);
}

TEST(ZmqRuntimeOpen, ASwarmKeyDecidesWhoMayJoin) {
  MetricsSink sa, sb, sx;
  auto a = make_open(1, sa, "swarm secret");
  auto b = make_open(2, sb, "swarm secret");
  auto outsider = make_open(3, sx, "another secret");
  auto no_key = make_open(4, sx);
  EXPECT_EQ(join_through(*b, *a), std::vector<PeerId>{1});
  EXPECT_TRUE(join_through(*outsider, *a, "", milliseconds(400)).empty());
  EXPECT_TRUE(join_through(*no_key, *a, "", milliseconds(400)).empty());
  EXPECT_EQ(a->known_peers(), 1u);
  EXPECT_GE(sa.counter("net_rejected_messages"), 2);
}

TEST(ZmqRuntimeOpen, SecurePeersJoinWithTheSwarmKeyAndTalk) {
  ASSERT_TRUE(curve_available());
  const CurveKeypair ka = fresh_keys("open_a"), kb = fresh_keys("open_b"),
                     kx = fresh_keys("open_x");
  MetricsSink sa, sb, sx;
  auto a = make_open(1, sa, "swarm secret", &ka);
  auto b = make_open(2, sb, "swarm secret", &kb);
  auto outsider = make_open(3, sx, "another secret", &kx);
  EXPECT_EQ(join_through(*b, *a, ka.public_key), std::vector<PeerId>{1});
  EXPECT_TRUE(join_through(*outsider, *a, ka.public_key, milliseconds(400)).empty());
  int delivered = 0;
  a->set_handler([&](PeerId from, Message) { delivered += from == 2; });
  b->send(1, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(drive({a.get(), b.get()}, [&] { return delivered == 1; }));
  // The outsider's messages never reach a's app, though its handshake passed.
  outsider->add_peer(1, a->endpoint(), ka.public_key);
  for (int i = 0; i < 5; ++i) outsider->send(1, Message(MsgType::kProbeRequest));
  drive(
      {a.get(), outsider.get()}, [] { return false; }, milliseconds(300));
  EXPECT_EQ(delivered, 1);
  EXPECT_GE(sa.counter("net_rejected_messages"), 1);
}

// Every runtime answers a probe request with a probe response; `got` lists (receiver, sender).
void answer_probes(const std::vector<ZmqRuntime*>& rts,
                   std::vector<std::pair<PeerId, PeerId>>& got) {
  for (ZmqRuntime* rt : rts) {
    rt->set_handler([&got, rt](PeerId from, Message msg) {
      got.emplace_back(rt->self(), from);
      if (msg.type == MsgType::kProbeRequest) rt->send(from, Message(MsgType::kProbeResponse));
    });
  }
}

// A client (behind NAT: no address) joins, calls two peers and hears their answers on the
// connections it opened; nobody gives it away as an address.
void client_calls_out(const std::string& swarm, const CurveKeypair* ka, const CurveKeypair* kb,
                      const CurveKeypair* kc) {
  MetricsSink sa, sb, sc;
  auto a = make_open(10, sa, swarm, ka);
  auto b = make_open(20, sb, swarm, kb);
  auto c = make_open(30, sc, swarm, kc, /*client=*/true);
  EXPECT_TRUE(c->endpoint().empty());
  const std::string a_key = ka ? ka->public_key : "";
  EXPECT_EQ(join_through(*b, *a, a_key), std::vector<PeerId>{10});
  EXPECT_EQ(join_through(*c, *a, a_key), std::vector<PeerId>{10});
  EXPECT_EQ(sa.counter("net_clients_learned"), 1);
  std::vector<std::pair<PeerId, PeerId>> got;
  answer_probes({a.get(), b.get(), c.get()}, got);
  const std::vector<ZmqRuntime*> all = {a.get(), b.get(), c.get()};
  // b has never heard of the client: a does not give it away, so b's message is unresolved.
  b->send(30, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(drive(all, [&] { return sb.counter("net_unresolved") == 1; }));
  // The client calls a (known from the join) and b (its address asked of a); both answer it.
  c->send(10, Message(MsgType::kProbeRequest));
  c->send(20, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(drive(all, [&] { return got.size() >= 4; }));
  std::sort(got.begin(), got.end());
  const std::vector<std::pair<PeerId, PeerId>> want = {{10, 30}, {20, 30}, {30, 10}, {30, 20}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(sc.counter("net_resolved"), 1);
  EXPECT_EQ(sb.counter("net_clients_learned"), 1);
  EXPECT_EQ(sa.counter("net_rejected_messages") + sb.counter("net_rejected_messages") +
                sc.counter("net_rejected_messages"),
            0);
  // Once the client has gone, a message to it waits out the connect grace and is dropped.
  c.reset();
  a->send(30, Message(MsgType::kProbeRequest));
  ASSERT_TRUE(drive({a.get(), b.get()}, [&] { return sa.counter("net_send_dropped") == 1; }));
}

TEST(ZmqRuntimeOpen, AClientCallsOutAndHearsAnswersOnItsOwnConnections) {
  client_calls_out("", nullptr, nullptr, nullptr);
}

TEST(ZmqRuntimeOpen, ASecureClientJoinsWithTheSwarmKey) {
  ASSERT_TRUE(curve_available());
  const CurveKeypair ka = fresh_keys("client_a"), kb = fresh_keys("client_b"),
                     kc = fresh_keys("client_c");
  client_calls_out("swarm secret", &ka, &kb, &kc);
}

// A peer that restarts at the same address knows nobody: the one that talks to it, silent while
// it was down, puts a fresh hello before its next message once it has not heard from it for
// hello_refresh, so the new incarnation takes it in instead of refusing it as unknown for good.
TEST(ZmqRuntimeOpen, APeerThatRestartedHearsHelloAgain) {
  MetricsSink sa, sb, sc, sa2;
  auto a = make_open(10, sa);
  auto b = make_open(20, sb);
  // c never refreshes its hello: the control that shows what the refresh is for.
  auto c = ZmqRuntime::create(
      ZmqRuntimeOptions().id(30).open_membership(true).hello_refresh(std::chrono::hours(1)), sc);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(join_through(*b, *a), std::vector<PeerId>{10});
  EXPECT_EQ(join_through(*c.value(), *a), std::vector<PeerId>{10});
  int got = 0;
  a->set_handler([&](PeerId, Message) { ++got; });
  b->send(10, Message(MsgType::kProbeRequest));
  c.value()->send(10, Message(MsgType::kProbeRequest));
  const std::vector<ZmqRuntime*> senders = {b.get(), c.value().get()};
  ASSERT_TRUE(drive({a.get(), b.get(), c.value().get()}, [&] { return got == 2; }));
  const std::string address = a->endpoint();
  a.reset();  // a dies; nobody sends meanwhile, then a comes back at the same address
  drive(
      senders, [] { return false; }, milliseconds(300));
  auto again =
      ZmqRuntime::create(ZmqRuntimeOptions().id(10).listen(address).open_membership(true), sa2);
  ASSERT_TRUE(again.ok()) << again.error();
  int from_b = 0;
  again.value()->set_handler([&](PeerId from, Message) { from_b += from == 20; });
  // Both heard from a more than hello_refresh (2 s) ago by the time they send again.
  const std::vector<ZmqRuntime*> all = {again.value().get(), b.get(), c.value().get()};
  drive(
      all, [] { return false; }, milliseconds(2100));
  for (int i = 0; i < 3; ++i) {
    b->send(10, Message(MsgType::kProbeRequest));
    c.value()->send(10, Message(MsgType::kProbeRequest));
  }
  ASSERT_TRUE(drive(all, [&] { return from_b == 3 && sa2.counter("net_rejected_messages") == 3; }))
      << "from b " << from_b << ", rejected " << sa2.counter("net_rejected_messages");
}

TEST(ZmqRuntimeOpen, ClientModeNeedsOpenMembership) {
  MetricsSink sink;
  auto rt = ZmqRuntime::create(ZmqRuntimeOptions().id(1).client_mode(true), sink);
  ASSERT_FALSE(rt.ok());
  EXPECT_NE(rt.error().find("open membership"), std::string::npos) << rt.error();
}

TEST(ZmqRuntimeOpen, MalformedMembershipMessagesAreRejected) {
  MetricsSink sink;
  auto a = make_open(1, sink);
  zmq::context_t ctx(1);
  zmq::socket_t raw = raw_dealer(ctx, "p5", a->endpoint());
  const std::string tag(kControlTag, sizeof(kControlTag));
  const std::vector<std::string> bodies = {"", "Z", std::string("H\x00\xff\xff", 4), "W\x01"};
  for (const std::string& body : bodies) {
    raw.send(zmq::buffer(tag), zmq::send_flags::sndmore);
    raw.send(zmq::buffer(body), zmq::send_flags::none);
  }
  // A "who" from a peer that never said hello.
  const std::vector<uint8_t> who = encode_who(1);
  raw.send(zmq::buffer(tag), zmq::send_flags::sndmore);
  raw.send(zmq::buffer(who), zmq::send_flags::none);
  ASSERT_TRUE(drive({a.get()}, [&] { return sink.counter("net_rejected_messages") >= 5; }));
  EXPECT_EQ(a->known_peers(), 0u);
}

}  // namespace
}  // namespace crowdtrain::net
