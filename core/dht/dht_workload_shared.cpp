// DhtWorkloadShared (the simulated world's oracle for the DHT workload) and the summary block.
#include <algorithm>
#include <cstring>

#include "core/dht/dht_workload.h"

#include "core/invariants.h"

namespace crowdtrain::dht {

namespace {
// A holder list longer than this is pruned of peers that no longer hold the key.
constexpr size_t kMaxHoldersBeforePrune = 48;
// Draws pick_stored makes before it gives up on finding an unexpired key.
constexpr int kPickDraws = 8;
}  // namespace

size_t DhtWorkloadShared::IdHash::operator()(const DhtId& id) const {
  uint64_t h = 0;
  std::memcpy(&h, id.bytes().data(), sizeof(h));  // SHA-1 or random bits: already uniform
  return static_cast<size_t>(h);
}

void DhtWorkloadShared::attach(PeerId p, DhtNode* node) {
  CT_CHECK(p < nodes_.size());
  nodes_[p] = node;
}

void DhtWorkloadShared::set_ready(PeerId p) {
  CT_CHECK(p < nodes_.size() && nodes_[p] != nullptr);
  if (ready_pos_[p] >= 0) return;
  ready_pos_[p] = static_cast<int64_t>(ready_.size());
  ready_.push_back(p);
}

void DhtWorkloadShared::detach(PeerId p, const DhtNode* node) {
  CT_CHECK(p < nodes_.size());
  if (nodes_[p] != node) return;
  nodes_[p] = nullptr;
  const int64_t pos = ready_pos_[p];
  if (pos < 0) return;
  const PeerId last = ready_.back();
  ready_[pos] = last;
  ready_pos_[last] = pos;
  ready_.pop_back();
  ready_pos_[p] = -1;
}

std::vector<PeerId> DhtWorkloadShared::pick_ready(size_t n, PeerId self, Rng& rng) const {
  std::vector<PeerId> out;
  const size_t others = ready_.size() - (self < ready_pos_.size() && ready_pos_[self] >= 0);
  n = std::min(n, others);
  // Rejection sampling: n is a handful and the ready set is large (or small enough to exhaust).
  for (size_t tries = 0; out.size() < n && tries < 64 * (n + 1); ++tries) {
    const PeerId p = ready_[rng.uniform_int(ready_.size())];
    if (p == self || std::find(out.begin(), out.end(), p) != out.end()) continue;
    out.push_back(p);
  }
  return out;
}

void DhtWorkloadShared::add_stored(const std::string& key, Time expiration, bool shared_name) {
  if (shared_name) {
    auto [it, fresh] = stored_index_.emplace(key, stored_.size());
    if (!fresh) {
      StoredKey& k = stored_[it->second];
      k.expiration = std::max(k.expiration, expiration);
      return;
    }
  }
  stored_.push_back(StoredKey{key, expiration});
}

const DhtWorkloadShared::StoredKey* DhtWorkloadShared::pick_stored(Rng& rng, Time now) const {
  if (stored_.empty()) return nullptr;
  for (int i = 0; i < kPickDraws; ++i) {
    const StoredKey& k = stored_[rng.uniform_int(stored_.size())];
    if (k.expiration > now) return &k;
  }
  return nullptr;
}

void DhtWorkloadShared::add_holder(const DhtId& key, PeerId p) {
  std::vector<PeerId>& h = holders_[key];
  if (std::find(h.begin(), h.end(), p) != h.end()) return;
  if (h.size() >= kMaxHoldersBeforePrune) {
    h.erase(std::remove_if(h.begin(), h.end(),
                           [&](PeerId q) {
                             DhtNode* n = nodes_[q];
                             return n == nullptr || !n->storage().get(key).has_value();
                           }),
            h.end());
  }
  h.push_back(p);
}

bool DhtWorkloadShared::live_replica(const DhtId& key) const {
  auto it = holders_.find(key);
  if (it == holders_.end()) return false;
  for (PeerId p : it->second) {
    DhtNode* n = nodes_[p];
    if (n != nullptr && n->storage().get(key).has_value()) return true;
  }
  return false;
}

std::shared_ptr<WorkloadShared> make_dht_workload_shared(uint32_t peers) {
  return std::make_shared<DhtWorkloadShared>(peers);
}

nlohmann::json dht_workload_summary(const MetricsSink& sink) {
  const auto rate = [](int64_t ok, int64_t all) {
    return all > 0 ? nlohmann::json(double(ok) / double(all)) : nlohmann::json(nullptr);
  };
  const int64_t store_ok = sink.counter("dht_store_ok");
  const int64_t store_failed = sink.counter("dht_store_failed");
  const int64_t get_ok = sink.counter("dht_get_ok");
  const int64_t get_failed = sink.counter("dht_get_failed");
  const int64_t live = sink.counter("dht_get_live_replica");
  const int64_t failed_live = sink.counter("dht_get_failed_with_live_replica");
  nlohmann::json j;
  j["stores"] = store_ok + store_failed;
  j["store_success"] = rate(store_ok, store_ok + store_failed);
  j["gets"] = get_ok + get_failed;
  j["get_success"] = rate(get_ok, get_ok + get_failed);
  j["gets_with_live_replica"] = live;
  j["get_failed_with_live_replica"] = failed_live;
  j["get_failed_no_live_replica"] = sink.counter("dht_get_failed_no_live_replica");
  j["get_success_with_live_replica"] = rate(live - failed_live, live);
  const int64_t live_ok = sink.counter("dht_live_get_ok");
  const int64_t live_failed = sink.counter("dht_live_get_failed");
  if (live_ok + live_failed > 0) {  // the live world: gets of items other peers' schedules stored
    j["live_gets"] = live_ok + live_failed;
    j["live_get_success"] = rate(live_ok, live_ok + live_failed);
    j["get_wrong_value"] = sink.counter("dht_get_wrong_value");
    j["get_subkey_missing"] = sink.counter("dht_get_subkey_missing");
  }
  return j;
}

nlohmann::json dht_liveness(const Scenario&, const MetricsSink& sink) {
  const int64_t live = sink.counter(liveness_counter("dht_get_live_replica"));
  const int64_t failed = sink.counter(liveness_counter("dht_get_failed_with_live_replica"));
  return {
      {"goal", "every get of a key that a live peer holds succeeds (at least one get)"},
      {"met", live > 0 && failed == 0},
      {"gets_with_live_replica", live},
      {"failed_with_live_replica", failed},
      {"failed_no_live_replica", sink.counter(liveness_counter("dht_get_failed_no_live_replica"))}};
}

}  // namespace crowdtrain::dht
