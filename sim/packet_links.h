// The packet-level network's nodes and links, built once from the Topology: one ns-3 node per peer
// with its own point-to-point access link (BusyLinkDevice, sim/packet_device.h) to its region's
// router (uplink rate on the peer's device, downlink rate on the router's, delay = access latency,
// optional seeded per-packet loss on both ends), region routers fully meshed by core links (delay =
// RTT / 2). IPv4 addresses are assigned by hand (no Ipv4AddressHelper, hence no queue discs) and
// routed by HashRouting. Internal to packet_network.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include <ns3/node.h>

#include "core/scenario.h"
#include "sim/packet_routing.h"
#include "sim/topology.h"

namespace crowdtrain::sim {

struct AccessNetwork {
  std::vector<ns3::Ptr<ns3::Node>> hosts;    // index = PeerId
  std::vector<ns3::Ptr<ns3::Node>> routers;  // index = region
};

// `admit` (owned by the caller, may be nullptr) is asked by every router before it forwards.
AccessNetwork build_access_network(const Topology& topology, const NetworkSpec& spec,
                                   uint64_t loss_seed, const HashRouting::AdmitFn* admit);
void set_router_admit(ns3::Ptr<ns3::Node> router, const HashRouting::AdmitFn* admit);

}  // namespace crowdtrain::sim
