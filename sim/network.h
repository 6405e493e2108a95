// A simulated network model: carries Messages between peers in virtual time, charging each for its
// wire size. Two implementations: message level (message_network.cpp: per-peer uplink and downlink
// serialisation queues plus propagation latency, two ns-3 events per message) and packet level
// (packet_network.cpp: ns-3 nodes, access links, region routers, IPv4 and TCP). The C++ Message
// object travels in memory; only its size is simulated (SimGrid's payload/size split). No ns-3 in
// this header.
//
// Contract: send() never calls deliver synchronously. deliver runs in a later ns-3 event. A model
// drops a message (counting it in stats) on loss, on a partition, when the sender went down before
// the message left its uplink, or when the receiver is down. The world still checks the receiver's
// incarnation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/message.h"
#include "core/runtime.h"
#include "core/scenario.h"
#include "sim/topology.h"

namespace crowdtrain::sim {

struct NetworkStats {
  uint64_t messages_sent = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_dropped_loss = 0;
  uint64_t messages_dropped_partition = 0;
  uint64_t messages_dropped_down = 0;  // sender or receiver was down
  uint64_t bytes_sent = 0;
  uint64_t bytes_delivered = 0;
  uint64_t connections_opened = 0;  // packet level: TCP connections (handshakes) started
};

class NetworkModel {
 public:
  using DeliverFn = std::function<void(PeerId from, PeerId to, Message msg)>;
  virtual ~NetworkModel() = default;

  virtual void send(PeerId from, PeerId to, Message msg, uint64_t wire_bytes) = 0;
  // A peer joins (its access link comes up) or leaves (its queued and in-flight traffic is
  // dropped).
  virtual void peer_up(PeerId p) = 0;
  virtual void peer_down(PeerId p) = 0;
  virtual const NetworkStats& stats() const = 0;
};

// Both need ns-3's Simulator to be in a fresh state (before Simulator::Run). `topology` and the
// scenario outlive the model. `loss_seed` seeds the model's own loss stream.
std::unique_ptr<NetworkModel> make_message_network(const Topology& topology,
                                                   const NetworkSpec& spec, uint64_t loss_seed,
                                                   NetworkModel::DeliverFn deliver);
std::unique_ptr<NetworkModel> make_packet_network(const Topology& topology, const NetworkSpec& spec,
                                                  uint64_t loss_seed,
                                                  NetworkModel::DeliverFn deliver);

}  // namespace crowdtrain::sim
