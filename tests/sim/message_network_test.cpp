// The message-level model's timing: latency + serialisation on both access links, queueing on the
// uplink, the downlink bottleneck, drops when a peer goes down, partitions, loss.
#include <gtest/gtest.h>
#include <ns3/simulator.h>

#include "sim/network.h"

namespace crowdtrain::sim {
namespace {

struct Delivery {
  PeerId from, to;
  double at_s;
  uint64_t payload;
};

class MessageNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ns3::Simulator::Destroy();
    s.peers.count = 3;
    s.network.access_latency_ms = DistSpec::constant(10);
    s.network.upload_mbps = DistSpec::constant(8);     // 1 MB/s
    s.network.download_mbps = DistSpec::constant(80);  // 10 MB/s
    topo = std::make_unique<Topology>(Topology::build(s).value());
    net = make_message_network(*topo, s.network, 1, [this](PeerId f, PeerId t, Message m) {
      log.push_back({f, t, ns3::Simulator::Now().GetSeconds(), m.filler(kTagPayload).value()});
    });
    for (PeerId p = 0; p < 3; ++p) net->peer_up(p);
  }
  void TearDown() override {
    net.reset();
    ns3::Simulator::Destroy();
  }
  void send_at(double t, PeerId from, PeerId to, uint64_t bytes) {
    ns3::Simulator::Schedule(ns3::Seconds(t), [=] {
      Message m(MsgType::kTransferRequest);
      m.add_filler(kTagPayload, bytes);
      net->send(from, to, m, bytes);
    });
  }
  Scenario s;
  std::unique_ptr<Topology> topo;
  std::unique_ptr<NetworkModel> net;
  std::vector<Delivery> log;
};

TEST_F(MessageNetworkTest, LatencyPlusUplinkSerialisation) {
  send_at(0, 0, 1, 1000000);  // 1 s on the 1 MB/s uplink, 0.1 s on the downlink, 20 ms latency
  ns3::Simulator::Run();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NEAR(log[0].at_s, 1.0 + 0.020, 1e-9);
  EXPECT_EQ(net->stats().messages_delivered, 1u);
  EXPECT_EQ(net->stats().bytes_delivered, 1000000u);
}

TEST_F(MessageNetworkTest, UplinkQueues) {
  send_at(0, 0, 1, 500000);
  send_at(0, 0, 2, 500000);  // waits for the first on the sender's uplink
  ns3::Simulator::Run();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NEAR(log[0].at_s, 0.5 + 0.020, 1e-9);
  EXPECT_NEAR(log[1].at_s, 1.0 + 0.020, 1e-9);
}

TEST_F(MessageNetworkTest, DownlinkIsSharedBySenders) {
  // Two senders at 1 MB/s each into one 10 MB/s downlink: no downlink bottleneck...
  send_at(0, 0, 2, 1000000);
  send_at(0, 1, 2, 1000000);
  ns3::Simulator::Run();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NEAR(log[0].at_s, 1.020, 1e-9);
  EXPECT_NEAR(log[1].at_s, 1.020, 0.1 + 1e-9);
  EXPECT_GE(log[1].at_s, log[0].at_s);
}

TEST_F(MessageNetworkTest, SlowDownlinkIsTheBottleneck) {
  s.network.download_mbps = DistSpec::constant(0.8);  // 0.1 MB/s
  topo = std::make_unique<Topology>(Topology::build(s).value());
  net = make_message_network(*topo, s.network, 1, [this](PeerId f, PeerId t, Message m) {
    log.push_back({f, t, ns3::Simulator::Now().GetSeconds(), 0});
  });
  for (PeerId p = 0; p < 3; ++p) net->peer_up(p);
  send_at(0, 0, 1, 100000);  // 0.1 s up, 1 s down
  send_at(0, 2, 1, 100000);  // behind it on the downlink
  ns3::Simulator::Run();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NEAR(log[0].at_s, 0.010 + 0.010 + 1.0, 1e-9);
  EXPECT_NEAR(log[1].at_s, 0.020 + 2.0, 1e-9);
}

TEST_F(MessageNetworkTest, DownPeersDropTraffic) {
  send_at(0, 0, 1, 1000000);
  ns3::Simulator::Schedule(ns3::Seconds(0.5), [this] { net->peer_down(0); });  // mid-upload
  send_at(0, 2, 1, 1000);
  ns3::Simulator::Schedule(ns3::Seconds(0.001), [this] { net->peer_down(1); });
  send_at(2.0, 2, 1, 1000);  // receiver still down
  ns3::Simulator::Run();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(net->stats().messages_dropped_down, 3u);
}

TEST_F(MessageNetworkTest, LossIsCountedAtTheConfiguredRate) {
  s.network.loss_rate = 0.5;
  topo = std::make_unique<Topology>(Topology::build(s).value());
  net = make_message_network(*topo, s.network, 99, [this](PeerId f, PeerId t, Message m) {
    log.push_back({f, t, 0, 0});
  });
  for (PeerId p = 0; p < 3; ++p) net->peer_up(p);
  for (int i = 0; i < 1000; ++i) send_at(i * 0.01, 0, 1, 100);
  ns3::Simulator::Run();
  EXPECT_EQ(net->stats().messages_dropped_loss + log.size(), 1000u);
  EXPECT_NEAR(static_cast<double>(log.size()), 500.0, 60.0);
}

}  // namespace
}  // namespace crowdtrain::sim
