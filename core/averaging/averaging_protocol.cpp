// From averaging options to a peer's protocol app: see averaging_protocol.h.
#include "core/averaging/averaging_protocol.h"

#include <algorithm>

#include "core/averaging/averager.h"
#include "core/averaging/gossip.h"
#include "core/averaging/key_manager.h"
#include "core/workload.h"

namespace crowdtrain {

namespace {

AveragingAppFactory gossip_protocol(Runtime& rt, const GroupAveragingOptions& g,
                                    const AveragingPeerPlan& plan) {
  GossipOptions o;
  o.method = g.method == AveragingMethod::kGossip ? GossipMethod::kRing : GossipMethod::kPushSum;
  o.peers = plan.peers;
  o.start_delay = plan.start_delay;
  o.first_round = from_seconds(g.first_round_s);
  o.round_interval = from_seconds(g.round_interval_s);
  o.exchange_window = from_seconds(g.gossip_window_s);
  o.rounds = plan.rounds;
  o.failure_prob = plan.failure_prob;
  o.compression = plan.compression;
  return [&rt, o](std::shared_ptr<AveragingSource> source,
                  std::shared_ptr<AveragingObserver> observer) {
    return std::unique_ptr<PeerApp>(
        std::make_unique<GossipAverager>(rt, o, std::move(source), std::move(observer)));
  };
}

GroupKeyMode key_mode_of(AveragingMethod m) {
  switch (m) {
    case AveragingMethod::kAllReduce:
      return GroupKeyMode::kFixedMembership;
    case AveragingMethod::kAllReduceOpen:
      return GroupKeyMode::kEveryone;
    case AveragingMethod::kRandomGroups:
      return GroupKeyMode::kRandomGroups;
    default:
      return GroupKeyMode::kGrid;
  }
}

// The group's target and minimum size: the options' for grid and random groups; everybody for
// the all-reduce methods (allreduce_open: at least min_group_size of them, 0 = all).
void set_group_sizes(const GroupAveragingOptions& g, uint32_t n, AveragerOptions& o) {
  uint32_t target = g.target_group_size == 0 ? g.grid_size : g.target_group_size;
  uint32_t min_size = g.min_group_size;
  if (o.key_mode == GroupKeyMode::kFixedMembership) {
    target = min_size = n;  // all or nothing: a round with anybody missing forms no group
    o.allreduce.all_or_nothing(true);
  } else if (o.key_mode == GroupKeyMode::kEveryone) {
    target = n;
    min_size = g.min_group_size == 0 ? n : std::min(g.min_group_size, n);
  }
  o.matchmaking.target_group_size(target)
      .min_group_size(min_size)
      .declare_time(from_seconds(g.declare_s))
      .timeout(from_seconds(g.matchmaking_timeout_s))
      .begin_grace(std::chrono::milliseconds(500));
}

}  // namespace

AdvertisedLink advertised_link(const LoadBalanceOptions& balance, const WorkloadContext& context) {
  AdvertisedLink out;
  if (balance.load_balance == LoadBalance::kEqual) return out;
  // A member moves as much as it receives (load_balancing.h), so the slower direction binds.
  const double link = context.upload_mbps > 0 && context.download_mbps > 0
                          ? std::min(context.upload_mbps, context.download_mbps)
                          : 0.0;
  out.bandwidth_mbps = balance.bandwidth_mbps > 0 ? balance.bandwidth_mbps : link;
  if (out.bandwidth_mbps > 0 && out.bandwidth_mbps < balance.client_below_mbps) {
    out.mode = AveragingMode::kClient;
  }
  return out;
}

Result<AveragingAppFactory> averaging_protocol(Runtime& rt, const GroupAveragingOptions& g,
                                               const AveragingPeerPlan& plan) {
  if (plan.client && !method_takes_clients(g.method)) {
    return Status::error(plan.workload + ": method " + averaging_method_name(g.method) +
                         " has peers call peers that never called them: it cannot run on a "
                         "client peer");
  }
  if (is_gossip_method(g.method)) return gossip_protocol(rt, g, plan);
  AveragerOptions o;
  o.key_mode = key_mode_of(g.method);
  if (o.key_mode == GroupKeyMode::kFixedMembership || o.key_mode == GroupKeyMode::kEveryone) {
    if (plan.peers > kMaxGroupSize) {
      return Status::error(plan.workload + ": method " + averaging_method_name(g.method) +
                           " supports at most " + std::to_string(kMaxGroupSize) + " peers");
    }
  }
  o.grid.group_size(g.grid_size).dims(g.grid_dims);
  o.peers = plan.peers;
  o.random_groups_seed = plan.seed;
  o.key_prefix = plan.key_prefix;
  o.initial_bits = initial_bits_for_cell(plan.cell, o.grid);
  o.start_delay = plan.start_delay;
  if (plan.bootstrap) o.bootstrap = plan.bootstrap();
  o.first_round = from_seconds(g.first_round_s);
  o.round_interval = from_seconds(g.round_interval_s);
  o.rounds = plan.rounds;
  o.failure_prob = plan.failure_prob;
  o.bandwidth_mbps = plan.link.bandwidth_mbps;
  o.mode = plan.client ? AveragingMode::kClient : plan.link.mode;
  set_group_sizes(g, plan.peers, o);
  if (plan.client) {
    o.matchmaking.client(true);
    o.dht.client_mode(true);
  }
  o.allreduce.timeout(from_seconds(g.allreduce_timeout_s)).compression(plan.compression);
  if (plan.payload_scale != 1.0) o.allreduce.payload_scale(plan.payload_scale);
  o.dht.rpc_timeout(std::chrono::seconds(1));
  return AveragingAppFactory([&rt, o](std::shared_ptr<AveragingSource> source,
                                      std::shared_ptr<AveragingObserver> observer) {
    return std::unique_ptr<PeerApp>(
        std::make_unique<Averager>(rt, o, std::move(source), std::move(observer)));
  });
}

}  // namespace crowdtrain
