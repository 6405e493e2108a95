// BusyLinkDevice (one event per packet) against ns-3's PointToPointNetDevice (two events per packet
// and a queue object): the same packet train, sent straight into each kind of link, must arrive at
// the same nanoseconds and lose the same packets to a full queue.
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include <ns3/core-module.h>
#include <ns3/node.h>
#include <ns3/packet.h>
#include <ns3/point-to-point-helper.h>

#include "core/random.h"
#include "sim/packet_device.h"

namespace crowdtrain::sim {
namespace {

struct Arrival {
  int64_t t_ns;
  uint32_t size;
  bool operator==(const Arrival& o) const { return t_ns == o.t_ns && size == o.size; }
};

struct Train {
  std::vector<std::pair<double, uint32_t>> sends;  // (time s, bytes)
};

// A burst of 150 packets at t = 0 (fills the 100-packet queue), then 400 packets of random sizes at
// random times (some while the queue is still draining, some on an idle link).
Train make_train(uint64_t seed) {
  Train train;
  for (int i = 0; i < 150; ++i) train.sends.push_back({0.0, 1000});
  Rng rng(seed);
  double t = 0.05;
  for (int i = 0; i < 400; ++i) {
    t += rng.uniform(0.0, 0.004);
    train.sends.push_back({t, static_cast<uint32_t>(40 + rng.uniform_int(1460))});
  }
  return train;
}

constexpr double kRateBps = 10e6;
constexpr double kDelayS = 0.0123;

std::vector<Arrival> run(const Train& train, bool busy_link) {
  ns3::Simulator::Destroy();
  auto a = ns3::CreateObject<ns3::Node>();
  auto b = ns3::CreateObject<ns3::Node>();
  ns3::Ptr<ns3::NetDevice> tx, rx;
  if (busy_link) {
    BusyLink link = install_busy_link(a, b, ns3::Seconds(kDelayS));
    link.a->SetDataRate(ns3::DataRate(static_cast<uint64_t>(kRateBps)));
    link.b->SetDataRate(ns3::DataRate(static_cast<uint64_t>(kRateBps)));
    tx = link.a;
    rx = link.b;
  } else {
    ns3::PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate", ns3::DataRateValue(ns3::DataRate(uint64_t(kRateBps))));
    p2p.SetChannelAttribute("Delay", ns3::TimeValue(ns3::Seconds(kDelayS)));
    ns3::NetDeviceContainer d = p2p.Install(a, b);
    tx = d.Get(0);
    rx = d.Get(1);
  }
  std::vector<Arrival> got;
  rx->SetReceiveCallback(ns3::Callback<bool, ns3::Ptr<ns3::NetDevice>, ns3::Ptr<const ns3::Packet>,
                                       uint16_t, const ns3::Address&>(
      [&got](ns3::Ptr<ns3::NetDevice>, ns3::Ptr<const ns3::Packet> p, uint16_t proto,
             const ns3::Address&) {
        EXPECT_EQ(proto, 0x0800);
        got.push_back({ns3::Simulator::Now().GetNanoSeconds(), p->GetSize()});
        return true;
      }));
  for (const auto& [t, size] : train.sends) {
    ns3::Simulator::Schedule(ns3::Seconds(t), [tx, size = size] {
      tx->Send(ns3::Create<ns3::Packet>(size), tx->GetBroadcast(), 0x0800);
    });
  }
  ns3::Simulator::Run();
  ns3::Simulator::Destroy();
  return got;
}

TEST(BusyLinkDevice, SameArrivalsAndDropsAsPointToPoint) {
  for (uint64_t seed : {1, 2, 3}) {
    const Train train = make_train(seed);
    const auto p2p = run(train, false);
    const auto busy = run(train, true);
    // The burst overflows the queue: 1 in transmission + 100 queued of the first 150.
    ASSERT_LT(p2p.size(), train.sends.size());
    ASSERT_EQ(p2p.size(), busy.size()) << "seed " << seed;
    for (size_t i = 0; i < p2p.size(); ++i) {
      ASSERT_EQ(p2p[i], busy[i]) << "seed " << seed << " packet " << i << ": p2p at " << p2p[i].t_ns
                                 << " ns, busy link at " << busy[i].t_ns;
    }
  }
}

}  // namespace
}  // namespace crowdtrain::sim
