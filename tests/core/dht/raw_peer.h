// A peer of the fake world that runs no DHT node, only an RpcEndpoint: tests send hand-made
// requests through it to a DhtNode (malformed, forged or replayed ones).
#pragma once

#include "core/rpc.h"
#include "core/runtime.h"

namespace crowdtrain::dht {

class RawPeer : public PeerApp {
 public:
  explicit RawPeer(Runtime& rt) : rpc(rt) {}
  void start() override {}
  void on_message(PeerId from, Message m) override { rpc.handle(from, std::move(m)); }
  RpcEndpoint rpc;
};

}  // namespace crowdtrain::dht
