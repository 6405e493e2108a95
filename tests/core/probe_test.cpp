// The probe workload on the fake world: probes flow, round trips are measured, lost probes count as
// failed, oversized response requests are refused.
#include "core/probe.h"

#include <gtest/gtest.h>

#include "core/rpc.h"
#include "tests/fake_runtime.h"

namespace crowdtrain {
namespace {

using testing::FakeWorld;
using namespace std::chrono_literals;

TEST(Probe, PeersProbeEachOther) {
  FakeWorld w;
  w.latency = 20ms;
  auto targets = std::make_shared<std::vector<PeerId>>(std::vector<PeerId>{0, 1, 2, 3});
  ProbeOptions spec;
  spec.rate_hz = 5;
  std::vector<std::unique_ptr<PeerApp>> apps;
  for (PeerId p = 0; p < 4; ++p) {
    apps.push_back(make_probe_app(w.add_peer(p), spec, targets));
    w.attach(p, apps.back().get());
  }
  for (auto& a : apps) a->start();
  w.run_for(10s);
  const int64_t sent = w.sink.counter("probes_sent");
  EXPECT_GT(sent, 4 * 5 * 10 / 2);
  EXPECT_LT(sent, 4 * 5 * 10 * 2);
  EXPECT_GE(w.sink.counter("probes_ok"), sent - 4 * 5);  // only those still in flight at the end
  EXPECT_EQ(w.sink.counter("probes_failed"), 0);
  EXPECT_NEAR(w.sink.percentile("probe_rtt_ms", 0.5), 40.0, 1e-6);
}

TEST(Probe, LostProbesFailAfterTimeout) {
  FakeWorld w;
  w.loss = 1.0;
  auto targets = std::make_shared<std::vector<PeerId>>(std::vector<PeerId>{0, 1});
  ProbeOptions spec;
  spec.rate_hz = 1;
  spec.timeout_s = 0.5;
  auto a = make_probe_app(w.add_peer(0), spec, targets);
  auto b = make_probe_app(w.add_peer(1), spec, targets);
  w.attach(0, a.get());
  w.attach(1, b.get());
  a->start();
  b->start();
  w.run_for(20s);
  EXPECT_GT(w.sink.counter("probes_failed"), 10);
  EXPECT_EQ(w.sink.counter("probes_ok"), 0);
  EXPECT_EQ(w.sink.sample_count("probe_rtt_ms"), 0u);
}

TEST(Probe, OversizedResponseRequestIsRefused) {
  FakeWorld w;
  auto targets = std::make_shared<std::vector<PeerId>>(std::vector<PeerId>{1});
  ProbeOptions spec;
  spec.rate_hz = 0;  // serves only
  auto server = make_probe_app(w.add_peer(1), spec, targets);
  w.attach(1, server.get());
  RpcEndpoint client(w.add_peer(0));
  struct Sink : PeerApp {
    RpcEndpoint* rpc;
    void start() override {}
    void on_message(PeerId f, Message m) override { rpc->handle(f, std::move(m)); }
  } sink;
  sink.rpc = &client;
  w.attach(0, &sink);
  Message req(MsgType::kProbeRequest);
  req.add_u64(kTagProbeRespBytes, 1ull << 40);
  std::string err;
  client.call(1, req, CallOptions(), [&](Result<Message> r) {
    ASSERT_FALSE(r.ok());
    err = r.error();
  });
  Message bad(MsgType::kProbeRequest);  // no size field at all
  std::string err2;
  client.call(1, bad, CallOptions(), [&](Result<Message> r) {
    ASSERT_FALSE(r.ok());
    err2 = r.error();
  });
  w.run_for(1s);
  EXPECT_NE(err.find("limit"), std::string::npos) << err;
  EXPECT_NE(err2.find("probe:"), std::string::npos) << err2;
}

}  // namespace
}  // namespace crowdtrain
