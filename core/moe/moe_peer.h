// What the mixture-of-experts workload's peer roles share (core/moe/moe_workload.cpp: servers and
// MNIST trainers; core/moe/chain_app.cpp: throughput trainers): the options lookup, each layer's
// grid, and MoePeer, the PeerApp base that owns the peer's RpcEndpoint and DhtNode and bootstraps
// the DHT (spread over bootstrap_spread_s for peers present at t = 0, retried while no peer
// answers), then calls on_bootstrapped().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/dht/node.h"
#include "core/moe/beam_search.h"
#include "core/moe/expert_uid.h"
#include "core/moe/moe_options.h"
#include "core/moe/takeover.h"
#include "core/rpc.h"
#include "core/runtime.h"
#include "core/scenario.h"
#include "core/workload.h"

namespace crowdtrain::moe {

const MoeOptions& moe_options_of(const Scenario& s);

// Layer l's grid: prefix "<grid.prefix><l>", the scenario's sizes.
ExpertGrid layer_grid(const MoeOptions& o, uint32_t layer);

// The client options as the beam search and the many-expert call take them.
BeamSearchOptions search_options(const MoeClientOptions& c);
MixtureCallOptions call_options(const MoeClientOptions& c);

// The uids server `server` hosts, over every layer's grid.
Result<std::vector<std::string>> hosted_uids(const Scenario& s, uint32_t server);
// The experts server `server` guards (backs up, and adopts when their hosts are gone): those
// whose consecutive hosts end right before it (takeover.h).
Result<std::vector<GuardedExpert>> guarded_experts(const Scenario& s, uint32_t server);

class MoePeer : public PeerApp {
 public:
  void start() override;
  void on_message(PeerId from, Message msg) override { rpc_.handle(from, std::move(msg)); }

 protected:
  MoePeer(Runtime& rt, const Scenario& s, const WorkloadContext& context);
  virtual void on_bootstrapped() = 0;

  Runtime& rt_;
  const MoeOptions& o_;
  WorkloadContext context_;
  uint32_t peers_;
  RpcEndpoint rpc_;
  std::unique_ptr<dht::DhtNode> node_;  // after rpc_: destroyed first

 private:
  void bootstrap();
};

// The throughput trainer's PeerApp (trainer.task "chain", core/moe/chain_app.cpp).
Result<std::unique_ptr<PeerApp>> make_chain_app(const Scenario& s, Runtime& rt,
                                                const WorkloadContext& context);

}  // namespace crowdtrain::moe
