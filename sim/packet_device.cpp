#include "sim/packet_device.h"

#include <algorithm>

#include <ns3/log.h>
#include <ns3/packet.h>
#include <ns3/simulator.h>

namespace crowdtrain::sim {

ns3::TypeId BusyLinkChannel::GetTypeId() {
  static ns3::TypeId tid = ns3::TypeId("crowdtrain::BusyLinkChannel")
                               .SetParent<ns3::Channel>()
                               .AddConstructor<BusyLinkChannel>();
  return tid;
}

void BusyLinkChannel::Attach(ns3::Ptr<BusyLinkDevice> a, ns3::Ptr<BusyLinkDevice> b) {
  m_end[0] = a;
  m_end[1] = b;
}

ns3::Ptr<ns3::NetDevice> BusyLinkChannel::GetDevice(std::size_t i) const { return m_end[i]; }

void BusyLinkChannel::DoDispose() {
  m_end[0] = nullptr;
  m_end[1] = nullptr;
  ns3::Channel::DoDispose();
}

ns3::TypeId BusyLinkDevice::GetTypeId() {
  static ns3::TypeId tid = ns3::TypeId("crowdtrain::BusyLinkDevice")
                               .SetParent<ns3::NetDevice>()
                               .AddConstructor<BusyLinkDevice>();
  return tid;
}

BusyLinkDevice::BusyLinkDevice() : m_address(ns3::Mac48Address::Allocate()) {}

void BusyLinkDevice::SetRemote(ns3::Ptr<BusyLinkDevice> remote, ns3::Ptr<BusyLinkChannel> channel) {
  m_remote = ns3::PeekPointer(remote);
  m_channel = channel;
}

void BusyLinkDevice::SetAddress(ns3::Address address) {
  m_address = ns3::Mac48Address::ConvertFrom(address);
}

bool BusyLinkDevice::SetMtu(const uint16_t mtu) {
  m_mtu = mtu;
  return true;
}

ns3::Address BusyLinkDevice::GetBroadcast() const { return ns3::Mac48Address("ff:ff:ff:ff:ff:ff"); }

ns3::Address BusyLinkDevice::GetMulticast(ns3::Ipv4Address group) const {
  return ns3::Mac48Address::GetMulticast(group);
}

ns3::Address BusyLinkDevice::GetMulticast(ns3::Ipv6Address addr) const {
  return ns3::Mac48Address::GetMulticast(addr);
}

bool BusyLinkDevice::Send(ns3::Ptr<ns3::Packet> packet, const ns3::Address& dest,
                          uint16_t protocolNumber) {
  if (!m_remote) return false;
  const int64_t now = ns3::Simulator::Now().GetTimeStep();
  while (!m_waiting.empty() && m_waiting.front() <= now) m_waiting.pop_front();
  if (m_waiting.size() >= kQueuePackets) {  // PointToPointNetDevice's queue would be full
    m_drops++;
    return false;
  }
  const int64_t start = std::max(now, m_busyUntil);
  m_busyUntil =
      start + m_rate.CalculateBytesTxTime(packet->GetSize() + kPppHeaderBytes).GetTimeStep();
  if (start > now) m_waiting.push_back(start);
  ns3::Simulator::ScheduleWithContext(
      m_remote->GetNode()->GetId(), ns3::TimeStep(m_busyUntil - now) + m_delay,
      &BusyLinkDevice::Receive, ns3::Ptr<BusyLinkDevice>(m_remote), packet, protocolNumber);
  return true;
}

bool BusyLinkDevice::SendFrom(ns3::Ptr<ns3::Packet> packet, const ns3::Address& source,
                              const ns3::Address& dest, uint16_t protocolNumber) {
  return false;  // SupportsSendFrom() is false
}

void BusyLinkDevice::Receive(ns3::Ptr<ns3::Packet> packet, uint16_t protocol) {
  if (!m_remote || (m_errorModel && m_errorModel->IsCorrupt(packet))) return;
  const ns3::Address from = m_remote->GetAddress();
  if (!m_promiscCallback.IsNull()) {
    m_promiscCallback(this, packet, protocol, from, m_address, ns3::NetDevice::PACKET_HOST);
  }
  m_rxCallback(this, packet, protocol, from);
}

void BusyLinkDevice::DoDispose() {
  m_node = nullptr;
  m_channel = nullptr;
  m_remote = nullptr;
  m_errorModel = nullptr;
  m_rxCallback = ReceiveCallback();
  m_promiscCallback = PromiscReceiveCallback();
  ns3::NetDevice::DoDispose();
}

BusyLink install_busy_link(ns3::Ptr<ns3::Node> a, ns3::Ptr<ns3::Node> b, ns3::Time delay) {
  BusyLink link{ns3::CreateObject<BusyLinkDevice>(), ns3::CreateObject<BusyLinkDevice>()};
  auto channel = ns3::CreateObject<BusyLinkChannel>();
  channel->Attach(link.a, link.b);
  link.a->SetRemote(link.b, channel);
  link.b->SetRemote(link.a, channel);
  link.a->SetDelay(delay);
  link.b->SetDelay(delay);
  a->AddDevice(link.a);
  b->AddDevice(link.b);
  return link;
}

}  // namespace crowdtrain::sim
