// The packet-level network model on a tiny topology: 4 peers in 2 regions (100 ms RTT between
// them), 5 ms access latency, 10 Mbit/s up and 20 Mbit/s down. Timing bounds come from the links: a
// TCP handshake costs one round trip before the first byte, a packet is stored and forwarded per
// hop.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <ns3/simulator.h>

#include "core/message.h"
#include "sim/network.h"
#include "sim/topology.h"

namespace crowdtrain::sim {
namespace {

struct Delivery {
  double t_s;
  PeerId from, to;
  uint64_t id;
  uint64_t filler;
  bool operator==(const Delivery& o) const {
    return t_s == o.t_s && from == o.from && to == o.to && id == o.id && filler == o.filler;
  }
};

constexpr double kUpBps = 10e6, kDownBps = 20e6, kAccessS = 0.005, kCoreS = 0.050;

Message transfer(uint64_t id, uint64_t filler) {
  Message m(MsgType::kTransferRequest);
  m.request_id = id;
  m.add_filler(kTagPayload, filler);
  return m;
}

class PacketNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ns3::Simulator::Destroy();
    csv_ = ::testing::TempDir() + "/packet_network_test_rtt_" + std::to_string(::getpid()) + ".csv";
    std::ofstream(csv_) << ",east,west\neast,0,100\nwest,100,0\n";
  }
  void TearDown() override {
    net_.reset();
    ns3::Simulator::Destroy();
    std::remove(csv_.c_str());
  }
  void build(double loss = 0.0, bool serialize = false, uint64_t loss_seed = 7) {
    Scenario s;
    s.peers.count = 4;
    s.network.access_latency_ms = DistSpec::constant(kAccessS * 1e3);
    s.network.upload_mbps = DistSpec::constant(kUpBps / 1e6);
    s.network.download_mbps = DistSpec::constant(kDownBps / 1e6);
    s.network.regions.rtt_csv = csv_;
    s.network.loss_rate = loss;
    s.network.serialize = serialize;
    auto t = Topology::build(s);
    ASSERT_TRUE(t.ok()) << t.error();
    topo_ = std::make_unique<Topology>(std::move(t.value()));
    for (PeerId p = 0; p < 4; ++p) (topo_->peer(p).region == 0 ? east_ : west_).push_back(p);
    ASSERT_EQ(east_.size(), 2u);
    net_ = make_packet_network(*topo_, s.network, loss_seed, [this](PeerId f, PeerId t, Message m) {
      auto filler = m.filler(kTagPayload);
      log_.push_back({ns3::Simulator::Now().GetSeconds(), f, t, m.request_id,
                      filler.ok() ? filler.value() : ~0ull});
    });
    for (PeerId p = 0; p < 4; ++p) net_->peer_up(p);
  }
  void send_at(double t, PeerId from, PeerId to, Message m) {
    ns3::Simulator::Schedule(ns3::Seconds(t),
                             [this, from, to, m] { net_->send(from, to, m, m.wire_size()); });
  }
  void run(double until_s = 600) {
    ns3::Simulator::Stop(ns3::Seconds(until_s));
    ns3::Simulator::Run();
  }

  std::string csv_;
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<NetworkModel> net_;
  std::vector<PeerId> east_, west_;
  std::vector<Delivery> log_;
};

TEST_F(PacketNetworkTest, OneMessageTakesHandshakePlusLatencyPlusSerialisation) {
  ASSERT_NO_FATAL_FAILURE(build());
  const PeerId a = east_[0], b = west_[0];
  const Message m = transfer(1, 1000);
  const double bits = m.wire_size() * 8.0, one_way = 2 * kAccessS + kCoreS;
  send_at(0.0, a, b, m);
  send_at(1.0, a, b, transfer(2, 1000));  // the connection is open by now
  run();
  ASSERT_EQ(log_.size(), 2u);
  // SYN, SYN-ACK, then the data: three one-way trips, plus per-hop serialisation of ~1.1 KB of
  // segments (up, core, down) and of the small handshake packets (< 1 ms at these rates).
  const double first_lo = 3 * one_way + bits / kUpBps + bits / kDownBps;
  EXPECT_GE(log_[0].t_s, first_lo);
  EXPECT_LE(log_[0].t_s, first_lo + 0.002);
  // On an open connection: one trip, store-and-forward on the uplink and the downlink.
  const double second_lo = one_way + bits / kUpBps + bits / kDownBps;
  EXPECT_GE(log_[1].t_s - 1.0, second_lo);
  EXPECT_LE(log_[1].t_s - 1.0, second_lo + 0.001);
  EXPECT_EQ(net_->stats().messages_delivered, 2u);
  EXPECT_EQ(net_->stats().bytes_delivered, 2 * m.wire_size());
}

TEST_F(PacketNetworkTest, ManyMessagesArriveInOrderBothWays) {
  ASSERT_NO_FATAL_FAILURE(build());
  const PeerId a = east_[0], b = west_[1];
  for (uint64_t i = 0; i < 300; ++i) {
    send_at(0.0, a, b, transfer(i, 1000 + 37 * i));
    send_at(0.0, b, a, transfer(1000 + i, 500));
  }
  run();
  ASSERT_EQ(log_.size(), 600u);
  uint64_t next_ab = 0, next_ba = 1000;
  for (const auto& d : log_) {
    if (d.to == b) {
      EXPECT_EQ(d.id, next_ab++);
    } else {
      EXPECT_EQ(d.id, next_ba++);
    }
  }
  EXPECT_EQ(next_ab, 300u);
  EXPECT_EQ(next_ba, 1300u);
}

TEST_F(PacketNetworkTest, MessagesOfManySizesIncludingEmptyAndTenMegabytes) {
  ASSERT_NO_FATAL_FAILURE(build(0.0, /*serialize=*/true));
  const PeerId a = west_[0], b = east_[1];
  const std::vector<uint64_t> sizes = {0, 1, 1000, 1448, 1449, 65536, 100000, 10'000'000, 0};
  uint64_t total_bits = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Message m = transfer(i, sizes[i]);
    m.add_u64(20, 12345 + i);
    total_bits += m.wire_size() * 8;
    send_at(0.0, a, b, m);
  }
  run();
  ASSERT_EQ(log_.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(log_[i].id, i);
    EXPECT_EQ(log_[i].filler, sizes[i]);
  }
  // The uplink is the bottleneck: at least its serialisation time, and not far above it (slow
  // start, headers: 1500 / 1448 on the wire).
  const double ideal = total_bits / kUpBps;
  EXPECT_GE(log_.back().t_s, ideal);
  EXPECT_LE(log_.back().t_s, ideal * 1.1 + 1.0);
}

TEST_F(PacketNetworkTest, PeerDownDropsTrafficAndPeerUpReconnects) {
  ASSERT_NO_FATAL_FAILURE(build());
  const PeerId a = east_[0], b = west_[0], c = west_[1];
  send_at(0.0, a, b, transfer(1, 2'000'000));  // takes ~1.7 s on the uplink
  send_at(0.0, a, c, transfer(2, 1000));
  ns3::Simulator::Schedule(ns3::Seconds(0.5), [&] { net_->peer_down(b); });
  send_at(1.0, a, b, transfer(3, 1000));  // to a down peer: dropped at once
  send_at(1.0, b, a, transfer(4, 1000));  // from a down peer
  ns3::Simulator::Schedule(ns3::Seconds(5.0), [&] { net_->peer_up(b); });
  send_at(6.0, a, b, transfer(5, 1000));
  run(200);
  std::vector<uint64_t> ids;
  for (const auto& d : log_) ids.push_back(d.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{2, 5}));
  EXPECT_EQ(net_->stats().messages_dropped_down, 3u);
  EXPECT_EQ(net_->stats().messages_sent, 5u);
}

TEST_F(PacketNetworkTest, PartitionBlocksAndHeals) {
  ASSERT_NO_FATAL_FAILURE(build());
  const PeerId a = east_[0], a2 = east_[1], b = west_[0];
  ns3::Simulator::Schedule(ns3::Seconds(1.0), [&] { topo_->set_partition({true, false}); });
  send_at(2.0, a, b, transfer(1, 1000));   // across: dropped
  send_at(2.0, a, a2, transfer(2, 1000));  // same side: delivered
  ns3::Simulator::Schedule(ns3::Seconds(3.0), [&] { topo_->clear_partition(); });
  send_at(4.0, a, b, transfer(3, 1000));
  run();
  std::vector<uint64_t> ids;
  for (const auto& d : log_) ids.push_back(d.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(net_->stats().messages_dropped_partition, 1u);
}

TEST_F(PacketNetworkTest, PartitionDuringATransferDelaysItUntilHealed) {
  ASSERT_NO_FATAL_FAILURE(build());
  const PeerId a = east_[0], b = west_[0];
  send_at(0.0, a, b, transfer(1, 500'000));  // ~0.4 s on the uplink
  ns3::Simulator::Schedule(ns3::Seconds(0.3), [&] { topo_->set_partition({true, false}); });
  ns3::Simulator::Schedule(ns3::Seconds(3.0), [&] { topo_->clear_partition(); });
  run();
  ASSERT_EQ(log_.size(), 1u);  // TCP retransmits once the path is back
  EXPECT_GT(log_[0].t_s, 3.0);
}

TEST_F(PacketNetworkTest, SameSeedSameDeliveryLog) {
  std::vector<Delivery> logs[2];
  for (auto& out : logs) {
    ASSERT_NO_FATAL_FAILURE(build(0.01, false, 99));
    for (PeerId f = 0; f < 4; ++f) {
      for (PeerId to = 0; to < 4; ++to) {
        if (f == to) continue;
        for (uint64_t i = 0; i < 20; ++i) send_at(0.01 * i, f, to, transfer(f * 100 + i, 3000 * i));
      }
    }
    run();
    out = log_;
    log_.clear();
    east_.clear();
    west_.clear();
    net_.reset();
    ns3::Simulator::Destroy();
  }
  ASSERT_EQ(logs[0].size(), 4u * 3 * 20);
  EXPECT_TRUE(logs[0] == logs[1]);
}

TEST_F(PacketNetworkTest, LossStillDeliversEverythingButLater) {
  double done[2] = {0, 0};
  const double loss[2] = {0.0, 0.02};
  for (int k = 0; k < 2; ++k) {
    ASSERT_NO_FATAL_FAILURE(build(loss[k]));
    send_at(0.0, east_[0], west_[0], transfer(1, 1'000'000));
    for (uint64_t i = 0; i < 50; ++i) send_at(0.0, east_[1], west_[1], transfer(10 + i, 1000));
    run();
    ASSERT_EQ(log_.size(), 51u) << "loss " << loss[k];
    for (const auto& d : log_) done[k] = std::max(done[k], d.t_s);
    EXPECT_EQ(net_->stats().messages_dropped_loss, 0u);
    log_.clear();
    east_.clear();
    west_.clear();
    net_.reset();
    ns3::Simulator::Destroy();
  }
  EXPECT_GT(done[1], done[0]);
}

}  // namespace
}  // namespace crowdtrain::sim
