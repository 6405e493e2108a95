// A PeerApp that only feeds delivered messages to an RpcEndpoint: what an expert server or a
// client needs to sit on the FakeWorld in the core/moe tests.
#pragma once

#include "core/rpc.h"
#include "core/runtime.h"

namespace crowdtrain::moe::testing {

class RpcApp final : public PeerApp {
 public:
  explicit RpcApp(RpcEndpoint& rpc) : rpc_(rpc) {}
  void start() override {}
  void on_message(PeerId from, Message msg) override { rpc_.handle(from, std::move(msg)); }

 private:
  RpcEndpoint& rpc_;
};

}  // namespace crowdtrain::moe::testing
