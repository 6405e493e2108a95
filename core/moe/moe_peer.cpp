// MoePeer and the helpers the MoE roles share (moe_peer.h).

#include "core/moe/moe_peer.h"

#include <algorithm>
#include <map>

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

// The uids server `server` hosts, over every layer's grid. Placements continue round-robin from
// one layer to the next (layer l's first placement goes to the server after layer l-1's last), so
// that loads stay even when a layer has fewer placements than there are servers (a chain of one
// expert per layer is spread over the servers in turn, as the paper's throughput experiment).
Result<std::vector<std::string>> hosted_uids(const Scenario& s, uint32_t server) {
  const MoeOptions& o = moe_options_of(s);
  std::vector<std::string> uids;
  uint64_t offset = 0;  // placements made by the layers before
  for (uint32_t l = 0; l < o.trainer.layers; ++l) {
    auto assigned = assign_experts(layer_grid(o, l), o.experts, o.servers, o.replicas,
                                   derive_seed(s.seed, "moe_assign", l));
    if (!assigned.ok()) return assigned.status();
    const uint64_t rotated = (server + o.servers - offset % o.servers) % o.servers;
    const auto& mine = assigned.value()[rotated];
    uids.insert(uids.end(), mine.begin(), mine.end());
    for (const auto& list : assigned.value()) offset += list.size();
  }
  return uids;
}

// Every expert's hosts, from each server's share; the guardian of an expert is the server right
// after the last of its consecutive hosts (none when every server hosts it).
Result<std::vector<GuardedExpert>> guarded_experts(const Scenario& s, uint32_t server) {
  const MoeOptions& o = moe_options_of(s);
  std::map<std::string, std::vector<PeerId>> hosts;
  for (uint32_t h = 0; h < o.servers; ++h) {
    auto uids = hosted_uids(s, h);
    if (!uids.ok()) return uids.status();
    for (const std::string& uid : uids.value()) hosts[uid].push_back(h);
  }
  std::vector<GuardedExpert> out;
  const uint32_t prev = (server + o.servers - 1) % o.servers;
  for (auto& [uid, list] : hosts) {
    const bool hosts_it = std::count(list.begin(), list.end(), server) > 0;
    const bool after_one = std::count(list.begin(), list.end(), prev) > 0;
    if (!hosts_it && after_one) out.push_back(GuardedExpert{uid, list});
  }
  return out;
}

BeamSearchOptions search_options(const MoeClientOptions& c) {
  return BeamSearchOptions()
      .beam_size(c.beam_size)
      .timeout(from_seconds(c.search_timeout_s))
      .negative_cache(from_seconds(c.negative_cache_s));
}

MixtureCallOptions call_options(const MoeClientOptions& c) {
  MixtureCallOptions m;
  m.k_min = c.k_min;
  m.forward_timeout = from_seconds(c.forward_timeout_s);
  m.timeout_after_k_min = from_seconds(c.timeout_after_k_min_s);
  m.backward_k_min = c.backward_k_min;
  m.backward_timeout = from_seconds(c.backward_timeout_s);
  return m;
}

MoePeer::MoePeer(Runtime& rt, const Scenario& s, const WorkloadContext& context)
    : rt_(rt),
      o_(moe_options_of(s)),
      context_(context),
      peers_(s.peers.count),
      rpc_(rt),
      node_(std::make_unique<dht::DhtNode>(rt, rpc_, dht::DhtId::random(rt.rng()),
                                           dht::DhtOptions()
                                               .rpc_timeout(from_seconds(o_.dht.rpc_timeout_s))
                                               .handoff(o_.dht.handoff)
                                               .client_mode(context.client))) {
  if (context.identity) node_->set_signing_key(*context.identity);
}

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
