// MoePeer and the helpers the MoE roles share (moe_peer.h).

#include "core/moe/moe_peer.h"

namespace crowdtrain::moe {

namespace {
constexpr double kBootstrapRetryS = 5;
}  // namespace

const MoeOptions& moe_options_of(const Scenario& s) {
  return s.workload.options_of<MoeOptions>("moe");
}

ExpertGrid layer_grid(const MoeOptions& o, uint32_t layer) {
  return ExpertGrid{o.grid_prefix + std::to_string(layer), o.grid_sizes};
}

MoePeer::MoePeer(Runtime& rt, const Scenario& s, const WorkloadContext& context)
    : rt_(rt),
      o_(moe_options_of(s)),
      context_(context),
      peers_(s.peers.count),
      rpc_(rt),
      node_(std::make_unique<dht::DhtNode>(
          rt, rpc_, dht::DhtId::random(rt.rng()),
          dht::DhtOptions().rpc_timeout(from_seconds(o_.dht.rpc_timeout_s)))) {}

void MoePeer::start() {
  node_->start();
  double delay = 0;
  if (rt_.now() == Time(0)) delay = o_.dht.bootstrap_spread_s * rt_.self() / peers_;
  rt_.schedule(from_seconds(delay), [this] { bootstrap(); });
}

void MoePeer::bootstrap() {
  node_->bootstrap(first_contacts(context_, rt_.self(), o_.dht.bootstrap_peers, rt_.rng()),
                   [this](Status st) {
                     if (!st.ok()) {
                       rt_.metrics().count("moe_bootstrap_retries");
                       rt_.schedule(from_seconds(kBootstrapRetryS), [this] { bootstrap(); });
                       return;
                     }
                     on_bootstrapped();
                   });
}

}  // namespace crowdtrain::moe
