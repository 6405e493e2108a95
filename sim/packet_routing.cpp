#include "sim/packet_routing.h"

#include <ostream>

#include <ns3/output-stream-wrapper.h>

namespace crowdtrain::sim {

ns3::TypeId HashRouting::GetTypeId() {
  static ns3::TypeId tid = ns3::TypeId("crowdtrain::sim::HashRouting")
                               .SetParent<ns3::Ipv4RoutingProtocol>()
                               .SetGroupName("crowdtrain");
  return tid;
}

void HashRouting::SetHost(ns3::Ipv4Address self, ns3::Ptr<ns3::Ipv4Route> route) {
  m_self = self.Get();
  m_router = false;
  m_default = route;
}

void HashRouting::SetRouter(ns3::Ipv4Address self, std::vector<ns3::Ptr<ns3::Ipv4Route>> by_peer) {
  m_self = self.Get();
  m_router = true;
  m_byPeer = std::move(by_peer);
}

ns3::Ptr<ns3::Ipv4Route> HashRouting::RouteOutput(ns3::Ptr<ns3::Packet> p,
                                                  const ns3::Ipv4Header& header,
                                                  ns3::Ptr<ns3::NetDevice> oif,
                                                  ns3::Socket::SocketErrno& sockerr) {
  if (m_router || !m_default) {  // routers originate nothing
    sockerr = ns3::Socket::ERROR_NOROUTETOHOST;
    return nullptr;
  }
  sockerr = ns3::Socket::ERROR_NOTERROR;
  return m_default;
}

bool HashRouting::RouteInput(ns3::Ptr<const ns3::Packet> p, const ns3::Ipv4Header& header,
                             ns3::Ptr<const ns3::NetDevice> idev, UnicastForwardCallback ucb,
                             MulticastForwardCallback mcb, LocalDeliverCallback lcb,
                             ErrorCallback ecb) {
  const uint32_t dst = header.GetDestination().Get();
  if (dst == m_self) {
    lcb(p, header, m_ipv4->GetInterfaceForDevice(idev));
    return true;
  }
  if (!m_router) return false;  // hosts do not forward
  const uint32_t dst_peer = dst - kPeerAddressBase;
  const uint32_t src_peer = header.GetSource().Get() - kPeerAddressBase;
  if (dst_peer >= m_byPeer.size() || src_peer >= m_byPeer.size()) return false;
  if (m_admit && !(*m_admit)(src_peer, dst_peer)) return false;  // dropped (down, partition)
  ucb(m_byPeer[dst_peer], p, header);
  return true;
}

void HashRouting::PrintRoutingTable(ns3::Ptr<ns3::OutputStreamWrapper> stream,
                                    ns3::Time::Unit unit) const {
  *stream->GetStream() << "HashRouting " << ns3::Ipv4Address(m_self)
                       << (m_router ? " router, " : " host, ") << m_byPeer.size()
                       << " peer routes\n";
}

void HashRouting::DoDispose() {
  m_ipv4 = nullptr;
  m_default = nullptr;
  m_byPeer.clear();
  m_admit = nullptr;
  ns3::Ipv4RoutingProtocol::DoDispose();
}

ns3::Ptr<ns3::Ipv4RoutingProtocol> HashRoutingHelper::Create(ns3::Ptr<ns3::Node> node) const {
  return ns3::CreateObject<HashRouting>();
}

}  // namespace crowdtrain::sim
