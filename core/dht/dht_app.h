// A PeerApp that is only a DHT node: it owns the peer's RpcEndpoint and a DhtNode on it, starts the
// node's timers and bootstraps from the given peers when the world starts it. Used by tests and by
// DHT-only workloads; engines that do more (MoE servers, averagers) own a DhtNode beside their own
// handlers on one shared RpcEndpoint instead. Single-threaded, on the runtime's loop.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/dht/node.h"

namespace crowdtrain::dht {

class DhtApp final : public PeerApp {
 public:
  DhtApp(Runtime& rt, DhtId id, DhtOptions options, std::vector<PeerId> initial_peers);

  void start() override;
  void on_message(PeerId from, Message msg) override;

  DhtNode& node() { return *node_; }
  // Set once bootstrap finished: its outcome.
  const std::optional<Status>& bootstrapped() const { return bootstrapped_; }

 private:
  Runtime& rt_;
  RpcEndpoint rpc_;
  std::unique_ptr<DhtNode> node_;
  std::vector<PeerId> initial_peers_;
  std::optional<Status> bootstrapped_;
};

}  // namespace crowdtrain::dht
