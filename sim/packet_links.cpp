#include "sim/packet_links.h"

#include <algorithm>
#include <cmath>

#include <ns3/data-rate.h>
#include <ns3/error-model.h>
#include <ns3/internet-stack-helper.h>
#include <ns3/ipv4-route.h>
#include <ns3/ipv4.h>
#include <ns3/nstime.h>

#include "core/random.h"
#include "sim/packet_device.h"

namespace crowdtrain::sim {
namespace {

// Per-packet Bernoulli loss from our own seeded stream, one per device, so a link's draws depend on
// the loss seed and the link alone (not on ns-3's global run number or construction order).
class SeededLoss : public ns3::ErrorModel {
 public:
  SeededLoss(double rate, uint64_t seed) : rate_(rate), rng_(seed) {}

 private:
  bool DoCorrupt(ns3::Ptr<ns3::Packet> p) override { return rng_.bernoulli(rate_); }
  void DoReset() override {}
  double rate_;
  Rng rng_;
};

ns3::Ptr<HashRouting> routing_of(ns3::Ptr<ns3::Node> node) {
  return ns3::DynamicCast<HashRouting>(node->GetObject<ns3::Ipv4>()->GetRoutingProtocol());
}

void add_interface(ns3::Ptr<ns3::Node> node, ns3::Ptr<ns3::NetDevice> dev, ns3::Ipv4Address addr) {
  auto ipv4 = node->GetObject<ns3::Ipv4>();
  const uint32_t i = ipv4->AddInterface(dev);
  ipv4->AddAddress(i, ns3::Ipv4InterfaceAddress(addr, ns3::Ipv4Mask::GetOnes()));
  ipv4->SetUp(i);
}

ns3::Ptr<ns3::Ipv4Route> make_route(ns3::Ipv4Address dst, ns3::Ipv4Address src,
                                    ns3::Ipv4Address gateway, ns3::Ptr<ns3::NetDevice> dev) {
  auto r = ns3::Create<ns3::Ipv4Route>();
  r->SetDestination(dst);
  r->SetSource(src);
  r->SetGateway(gateway);
  r->SetOutputDevice(dev);
  return r;
}

ns3::DataRate rate_of(double bps) {
  return ns3::DataRate(static_cast<uint64_t>(std::llround(std::max(1.0, bps))));
}

}  // namespace

AccessNetwork build_access_network(const Topology& topology, const NetworkSpec& spec,
                                   uint64_t loss_seed, const HashRouting::AdmitFn* admit) {
  const size_t n = topology.size();
  size_t regions = std::max<size_t>(1, topology.region_count());
  for (PeerId p = 0; p < n; ++p) regions = std::max<size_t>(regions, topology.peer(p).region + 1);

  ns3::InternetStackHelper stack;
  stack.SetRoutingHelper(HashRoutingHelper());
  stack.SetIpv6StackInstall(false);
  AccessNetwork net;
  for (size_t r = 0; r < regions; ++r) {
    net.routers.push_back(ns3::CreateObject<ns3::Node>());
    stack.Install(net.routers.back());
  }
  for (size_t p = 0; p < n; ++p) {
    net.hosts.push_back(ns3::CreateObject<ns3::Node>());
    stack.Install(net.hosts.back());
  }

  // Segment + IP and TCP headers with options must fit, or IPv4 would fragment every segment.
  const uint16_t mtu = static_cast<uint16_t>(
      std::min<uint32_t>(65535, std::max<uint32_t>(1500, spec.tcp_segment_bytes + 80)));
  std::vector<std::vector<ns3::Ptr<ns3::Ipv4Route>>> by_peer(
      regions, std::vector<ns3::Ptr<ns3::Ipv4Route>>(n));

  for (PeerId p = 0; p < n; ++p) {
    const PeerLink& link = topology.peer(p);
    auto router = net.routers[link.region];
    BusyLink d = install_busy_link(net.hosts[p], router, ns3::Seconds(link.access_latency_s));
    auto up = d.a, down = d.b;  // the rate is the transmitter's
    up->SetDataRate(rate_of(link.up_bps));
    down->SetDataRate(rate_of(link.down_bps));
    up->SetMtu(mtu);
    down->SetMtu(mtu);
    if (spec.loss_rate > 0) {
      up->SetReceiveErrorModel(ns3::CreateObject<SeededLoss>(
          spec.loss_rate, derive_seed(loss_seed, "access-link", p, 0)));
      down->SetReceiveErrorModel(ns3::CreateObject<SeededLoss>(
          spec.loss_rate, derive_seed(loss_seed, "access-link", p, 1)));
    }
    add_interface(net.hosts[p], up, peer_address(p));
    add_interface(router, down, router_address(link.region));
    routing_of(net.hosts[p])
        ->SetHost(peer_address(p), make_route(ns3::Ipv4Address::GetAny(), peer_address(p),
                                              router_address(link.region), up));
    by_peer[link.region][p] =
        make_route(peer_address(p), router_address(link.region), peer_address(p), down);
  }

  // Core: a full mesh of router-to-router links; a router reaches a remote peer via its region's
  // router.
  std::vector<std::vector<ns3::Ptr<ns3::Ipv4Route>>> core(
      regions, std::vector<ns3::Ptr<ns3::Ipv4Route>>(regions));
  const ns3::DataRate core_rate = rate_of(spec.core_bandwidth_gbps * 1e9);
  for (size_t i = 0; i < regions; ++i) {
    for (size_t j = i + 1; j < regions; ++j) {
      BusyLink d = install_busy_link(net.routers[i], net.routers[j],
                                     ns3::Seconds(topology.core_latency_s(i, j)));
      for (auto& dev : {d.a, d.b}) {
        dev->SetDataRate(core_rate);
        dev->SetMtu(mtu);
      }
      add_interface(net.routers[i], d.a, router_address(i));
      add_interface(net.routers[j], d.b, router_address(j));
      core[i][j] = make_route(router_address(j), router_address(i), router_address(j), d.a);
      core[j][i] = make_route(router_address(i), router_address(j), router_address(i), d.b);
    }
  }
  for (size_t r = 0; r < regions; ++r) {
    for (PeerId p = 0; p < n; ++p) {
      const size_t home = topology.peer(p).region;
      if (home != r) by_peer[r][p] = core[r][home];
    }
    auto routing = routing_of(net.routers[r]);
    routing->SetRouter(router_address(r), std::move(by_peer[r]));
    routing->SetAdmit(admit);
  }
  return net;
}

void set_router_admit(ns3::Ptr<ns3::Node> router, const HashRouting::AdmitFn* admit) {
  routing_of(router)->SetAdmit(admit);
}

}  // namespace crowdtrain::sim
