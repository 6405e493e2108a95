// A point-to-point link for the packet-level network that costs one simulator event per packet
// where ns-3's PointToPointNetDevice costs two (transmit complete, receive) plus a queue object,
// its traces and flow control. Same timing as PointToPointNetDevice with a 100-packet drop-tail
// queue and no interframe gap: a packet starts when the link is free (busy-until arithmetic),
// takes (size + 2-byte PPP header) / rate to serialise and arrives `delay` later; a packet that
// finds 100 packets waiting is dropped; the optional error model is asked on receipt. Owned by
// ns-3's node (AddDevice); single-threaded like the simulator. ns-3 naming: derives ns-3 types.
#pragma once

#include <cstdint>
#include <deque>

#include <ns3/channel.h>
#include <ns3/data-rate.h>
#include <ns3/error-model.h>
#include <ns3/mac48-address.h>
#include <ns3/net-device.h>
#include <ns3/node.h>
#include <ns3/nstime.h>

namespace crowdtrain::sim {

class BusyLinkDevice;

// The two ends of one link (ns-3 asks a device for its channel).
class BusyLinkChannel : public ns3::Channel {
 public:
  static ns3::TypeId GetTypeId();
  void Attach(ns3::Ptr<BusyLinkDevice> a, ns3::Ptr<BusyLinkDevice> b);
  std::size_t GetNDevices() const override { return 2; }
  ns3::Ptr<ns3::NetDevice> GetDevice(std::size_t i) const override;

 protected:
  void DoDispose() override;

 private:
  ns3::Ptr<BusyLinkDevice> m_end[2];
};

class BusyLinkDevice : public ns3::NetDevice {
 public:
  static constexpr uint32_t kQueuePackets = 100;  // PointToPointNetDevice's default DropTailQueue
  static constexpr uint32_t kPppHeaderBytes = 2;  // what PointToPointNetDevice adds to each frame

  static ns3::TypeId GetTypeId();
  BusyLinkDevice();

  void SetDataRate(ns3::DataRate rate) { m_rate = rate; }
  void SetDelay(ns3::Time delay) { m_delay = delay; }
  void SetReceiveErrorModel(ns3::Ptr<ns3::ErrorModel> em) { m_errorModel = em; }
  void SetRemote(ns3::Ptr<BusyLinkDevice> remote, ns3::Ptr<BusyLinkChannel> channel);
  uint64_t GetDrops() const { return m_drops; }

  void SetIfIndex(const uint32_t index) override { m_ifIndex = index; }
  uint32_t GetIfIndex() const override { return m_ifIndex; }
  ns3::Ptr<ns3::Channel> GetChannel() const override { return m_channel; }
  void SetAddress(ns3::Address address) override;
  ns3::Address GetAddress() const override { return m_address; }
  bool SetMtu(const uint16_t mtu) override;
  uint16_t GetMtu() const override { return m_mtu; }
  bool IsLinkUp() const override { return m_remote != nullptr; }
  void AddLinkChangeCallback(ns3::Callback<void> callback) override {}
  bool IsBroadcast() const override { return true; }
  ns3::Address GetBroadcast() const override;
  bool IsMulticast() const override { return true; }
  ns3::Address GetMulticast(ns3::Ipv4Address group) const override;
  ns3::Address GetMulticast(ns3::Ipv6Address addr) const override;
  bool IsBridge() const override { return false; }
  bool IsPointToPoint() const override { return true; }
  bool Send(ns3::Ptr<ns3::Packet> packet, const ns3::Address& dest,
            uint16_t protocolNumber) override;
  bool SendFrom(ns3::Ptr<ns3::Packet> packet, const ns3::Address& source, const ns3::Address& dest,
                uint16_t protocolNumber) override;
  ns3::Ptr<ns3::Node> GetNode() const override { return m_node; }
  void SetNode(ns3::Ptr<ns3::Node> node) override { m_node = node; }
  bool NeedsArp() const override { return false; }
  void SetReceiveCallback(ReceiveCallback cb) override { m_rxCallback = cb; }
  void SetPromiscReceiveCallback(PromiscReceiveCallback cb) override { m_promiscCallback = cb; }
  bool SupportsSendFrom() const override { return false; }

 protected:
  void DoDispose() override;

 private:
  void Receive(ns3::Ptr<ns3::Packet> packet, uint16_t protocol);

  ns3::Ptr<ns3::Node> m_node;
  ns3::Ptr<BusyLinkChannel> m_channel;
  BusyLinkDevice* m_remote = nullptr;  // the channel holds both ends
  uint32_t m_ifIndex = 0;
  ns3::Mac48Address m_address;
  uint16_t m_mtu = 1500;
  ns3::DataRate m_rate;
  ns3::Time m_delay;
  ns3::Ptr<ns3::ErrorModel> m_errorModel;
  ReceiveCallback m_rxCallback;
  PromiscReceiveCallback m_promiscCallback;
  int64_t m_busyUntil = 0;        // time step at which the link finishes its last accepted packet
  std::deque<int64_t> m_waiting;  // start time steps of accepted packets not yet started
  uint64_t m_drops = 0;
};

// Builds a link between `a` and `b` and adds its devices to the nodes; returns {a's, b's}.
struct BusyLink {
  ns3::Ptr<BusyLinkDevice> a, b;
};
BusyLink install_busy_link(ns3::Ptr<ns3::Node> a, ns3::Ptr<ns3::Node> b, ns3::Time delay);

}  // namespace crowdtrain::sim
