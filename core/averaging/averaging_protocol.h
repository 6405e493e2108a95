// The one path from averaging options to a peer's averaging protocol, shared by every workload
// that averages (the averaging experiment, Moshpit SGD): an Averager for the group methods
// (moshpit, allreduce, allreduce_open, random_groups) or a GossipAverager (gossip, pushsum), built
// from GroupAveragingOptions and what the peer itself brings (AveragingPeerPlan).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/averaging/averaging_options.h"
#include "core/averaging/compression.h"
#include "core/averaging/load_balancing.h"
#include "core/averaging/source.h"
#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain {

struct WorkloadContext;  // core/workload.h

// What a peer advertises in matchmaking (load balancing): its bandwidth and its mode.
struct AdvertisedLink {
  double bandwidth_mbps = 0.0;
  AveragingMode mode = AveragingMode::kNode;
};
AdvertisedLink advertised_link(const LoadBalanceOptions& balance, const WorkloadContext& context);

// What one peer brings to its protocol besides the shared options.
struct AveragingPeerPlan {
  std::string workload = "averaging";  // names the workload in errors
  uint32_t peers = 0;                  // N: peer ids 0..N-1
  uint64_t seed = 0;                   // the run's seed (random_groups' permutations)
  std::string key_prefix = "avg";
  uint64_t cell = 0;  // the peer's cell on the grid (its first group key)
  Time start_delay{0};
  // The DHT peers it contacts first: asked only by the group methods (gossip draws nothing).
  std::function<std::vector<PeerId>()> bootstrap;
  uint32_t rounds = 50;
  double failure_prob = 0.0;  // per round: the peer sits it out
  Compression compression = Compression::kNone;
  AdvertisedLink link;
  double payload_scale = 1.0;  // bytes on the wire per real byte (payload scaling)
  // The peer cannot be called (WorkloadContext::client): a DHT client, a matchmaking client that
  // never leads, and an averaging client (it sends its vector and receives the average, averaging
  // no part). Only the methods that meet through the DHT take one.
  bool client = false;
};

// The factory of the peer's averaging app; an error when the method cannot run with N peers.
Result<AveragingAppFactory> averaging_protocol(Runtime& rt, const GroupAveragingOptions& options,
                                               const AveragingPeerPlan& plan);

}  // namespace crowdtrain
