// The DHT workload (workload.kind "dht"): every peer incarnation runs a DhtNode with a fresh random
// DhtId (drawn from its incarnation's seeded stream: a restarted peer is a new node), bootstraps
// from a few live peers, then stores and gets keys (plain and dictionary subkeys) at Poisson rates
// while churn runs. Counters: dht_store_ok/failed and dht_get_ok/failed (from the node), and, where
// the world gives an oracle, dht_get_live_replica (gets whose key a live peer held in primary
// storage when the get ended) and dht_get_failed_with_live_replica / _no_live_replica.
//
// DhtWorkloadShared is that oracle: one per simulated run (WorkloadContext::shared), holding the
// live nodes, the keys stored so far and, per key, the peers that accepted a store of it (told by
// each DhtNode's store observer). Which keys the gets ask for is workload.dht.keys, the same code
// in both worlds: "oracle" draws them from the oracle's stored keys (the simulated world only);
// "schedule" stores on a schedule every peer can compute (core/dht/dht_live_keys.h) and gets items
// other peers' schedules say were stored a while ago, checking the answers (dht_live_get_ok/failed,
// dht_get_wrong_value, dht_get_subkey_missing: a dictionary found without the item's entry, a
// miss; each get event names the storer and when its store was due). Without an
// oracle (the live world), peers bootstrap from WorkloadContext::bootstrap/peers.
// Single-threaded, on the world's loop.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dht/dht_workload_options.h"
#include "core/dht/node.h"
#include "core/workload.h"

namespace crowdtrain::dht {

class DhtWorkloadShared final : public WorkloadShared {
 public:
  struct StoredKey {
    std::string key;
    Time expiration{0};
  };

  explicit DhtWorkloadShared(uint32_t peers) : nodes_(peers, nullptr), ready_pos_(peers, -1) {}

  // A peer's node is up (attach) or bootstrapped (set_ready) or gone (detach, in its destructor).
  void attach(PeerId p, DhtNode* node);
  void set_ready(PeerId p);
  void detach(PeerId p, const DhtNode* node);
  size_t ready_count() const { return ready_.size(); }
  // Up to `n` distinct bootstrapped peers other than `self`, drawn from `rng`.
  std::vector<PeerId> pick_ready(size_t n, PeerId self, Rng& rng) const;

  // A store of `key` succeeded (at >= 1 peer). `shared_name`: other stores may use the same name
  // (dictionary keys, a bounded key space); the name is then listed once, with the latest expiry.
  void add_stored(const std::string& key, Time expiration, bool shared_name);
  // A stored, unexpired key drawn from `rng` (a few draws), or nullptr.
  const StoredKey* pick_stored(Rng& rng, Time now) const;
  size_t stored_count() const { return stored_.size(); }

  // Peer `p` holds `key` in primary storage now (recorded when it accepted a store).
  void add_holder(const DhtId& key, PeerId p);
  // Whether a live node holds an unexpired value of `key` in primary storage.
  bool live_replica(const DhtId& key) const;

 private:
  struct IdHash {
    size_t operator()(const DhtId& id) const;
  };
  std::vector<DhtNode*> nodes_;  // by peer: its live node, or null
  std::vector<PeerId> ready_;    // bootstrapped peers, in no meaningful order (swap-remove)
  std::vector<int64_t> ready_pos_;
  std::vector<StoredKey> stored_;
  std::unordered_map<std::string, size_t> stored_index_;  // shared names only; lookups only
  std::unordered_map<DhtId, std::vector<PeerId>, IdHash> holders_;  // lookups only
};

std::shared_ptr<WorkloadShared> make_dht_workload_shared(uint32_t peers);

// The app of one peer incarnation; `context.shared`, when set, must come from
// make_dht_workload_shared. `world_peers` (the scenario's peers.count): the ids 0..world_peers-1
// whose store schedules ("schedule" keys) it gets from, whether or not this peer has heard of
// them (open membership). An error when `spec.keys` is "oracle" and the world keeps no oracle.
Result<std::unique_ptr<PeerApp>> make_dht_workload_app(Runtime& rt, const DhtWorkloadOptions& spec,
                                                       const WorkloadContext& context,
                                                       uint32_t world_peers);

// summary.json's "dht" block: success rates and the counts they come from.
nlohmann::json dht_workload_summary(const MetricsSink& sink);

// The liveness goal (core/invariants.h): once the faults stop, every get of a key that a live
// peer holds in primary storage succeeds (the simulated world's oracle says which do).
nlohmann::json dht_liveness(const Scenario& scenario, const MetricsSink& sink);

}  // namespace crowdtrain::dht
