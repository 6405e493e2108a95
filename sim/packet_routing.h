// Routing for the packet-level network: O(1) per packet where ns-3's static and global routing scan
// every interface (see ../shared/FACTS.md). Addresses are handed out by hand from two blocks: peer
// i is 10.0.0.0 + i + 1, region router r is 11.0.0.0 + r + 1. A host sends everything to its
// router; a router looks the destination peer up in a dense table indexed by address (peer -> next
// hop) and asks an admission filter (peer down, partition) before forwarding. Internal to
// sim/packet_network.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ns3/ipv4-route.h>
#include <ns3/ipv4-routing-helper.h>
#include <ns3/ipv4-routing-protocol.h>
#include <ns3/ipv4.h>

namespace crowdtrain::sim {

constexpr uint32_t kPeerAddressBase = 0x0A000001u;    // 10.0.0.1 is peer 0
constexpr uint32_t kRouterAddressBase = 0x0B000001u;  // 11.0.0.1 is router 0

inline ns3::Ipv4Address peer_address(uint32_t peer) {
  return ns3::Ipv4Address(kPeerAddressBase + peer);
}
inline ns3::Ipv4Address router_address(uint32_t r) {
  return ns3::Ipv4Address(kRouterAddressBase + r);
}

// ns-3 naming inside: it derives from an ns-3 type.
class HashRouting : public ns3::Ipv4RoutingProtocol {
 public:
  // May the router forward a packet from peer `src` to peer `dst`? (Both indices into the peer
  // block.)
  using AdmitFn = std::function<bool(uint32_t src, uint32_t dst)>;

  static ns3::TypeId GetTypeId();

  // A host: every destination goes out of `route` (its access link, gateway = its router).
  void SetHost(ns3::Ipv4Address self, ns3::Ptr<ns3::Ipv4Route> route);
  // A router: `by_peer[i]` is the next hop towards peer i (shared objects for remote regions).
  void SetRouter(ns3::Ipv4Address self, std::vector<ns3::Ptr<ns3::Ipv4Route>> by_peer);
  // The filter a router asks before forwarding; nullptr admits everything. Not owned.
  void SetAdmit(const AdmitFn* admit) { m_admit = admit; }

  ns3::Ptr<ns3::Ipv4Route> RouteOutput(ns3::Ptr<ns3::Packet> p, const ns3::Ipv4Header& header,
                                       ns3::Ptr<ns3::NetDevice> oif,
                                       ns3::Socket::SocketErrno& sockerr) override;
  bool RouteInput(ns3::Ptr<const ns3::Packet> p, const ns3::Ipv4Header& header,
                  ns3::Ptr<const ns3::NetDevice> idev, UnicastForwardCallback ucb,
                  MulticastForwardCallback mcb, LocalDeliverCallback lcb,
                  ErrorCallback ecb) override;
  void NotifyInterfaceUp(uint32_t interface) override {}
  void NotifyInterfaceDown(uint32_t interface) override {}
  void NotifyAddAddress(uint32_t interface, ns3::Ipv4InterfaceAddress address) override {}
  void NotifyRemoveAddress(uint32_t interface, ns3::Ipv4InterfaceAddress address) override {}
  void SetIpv4(ns3::Ptr<ns3::Ipv4> ipv4) override { m_ipv4 = ipv4; }
  void PrintRoutingTable(ns3::Ptr<ns3::OutputStreamWrapper> stream,
                         ns3::Time::Unit unit = ns3::Time::S) const override;

 protected:
  void DoDispose() override;

 private:
  ns3::Ptr<ns3::Ipv4> m_ipv4;
  uint32_t m_self = 0;
  bool m_router = false;
  ns3::Ptr<ns3::Ipv4Route> m_default;              // host
  std::vector<ns3::Ptr<ns3::Ipv4Route>> m_byPeer;  // router
  const AdmitFn* m_admit = nullptr;                // router; owned by the network model
};

// Installs a fresh HashRouting on every node InternetStackHelper sets up; configured afterwards.
class HashRoutingHelper : public ns3::Ipv4RoutingHelper {
 public:
  HashRoutingHelper* Copy() const override { return new HashRoutingHelper(*this); }
  ns3::Ptr<ns3::Ipv4RoutingProtocol> Create(ns3::Ptr<ns3::Node> node) const override;
};

}  // namespace crowdtrain::sim
