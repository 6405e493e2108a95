// The simulated internet's shape, drawn once per run from the scenario and the "topology" seed
// stream: every peer's region, peer class, access latency and access bandwidths, the
// region-to-region RTT matrix, and the current partition, clogged and lossy peers (changed by
// faults). Both network models read it. No ns-3 here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "core/scenario.h"
#include "core/status.h"
#include "core/time.h"

namespace crowdtrain::sim {

struct PeerLink {
  uint16_t region = 0;
  uint16_t peer_class = 0;
  double access_latency_s = 0.0;  // one way, peer <-> region router
  double up_bps = 0.0;            // bits per second
  double down_bps = 0.0;
};

// A square region RTT matrix read from CSV: header row ",name1,name2,...", then one row per region
// "name,rtt_ms,rtt_ms,...". Symmetric, zero diagonal allowed. Errors name the line and column.
struct RegionMatrix {
  std::vector<std::string> names;
  std::vector<double> rtt_ms;  // names.size()^2, row-major
  double rtt(size_t a, size_t b) const { return rtt_ms[a * names.size() + b]; }
};
Result<RegionMatrix> load_region_matrix(const std::string& path);

class Topology {
 public:
  static Result<Topology> build(const Scenario& scenario);

  size_t size() const { return peers_.size(); }
  const PeerLink& peer(PeerId p) const { return peers_[p]; }
  size_t region_count() const { return regions_.names.size(); }
  const std::string& region_name(size_t r) const { return regions_.names[r]; }
  int region_index(const std::string& name) const;  // -1 if unknown
  // One-way propagation delay from a's access link through the core to b's access link.
  double one_way_latency_s(PeerId a, PeerId b) const;
  // One-way core delay between two region routers (RTT / 2).
  double core_latency_s(size_t ra, size_t rb) const;

  // Partition: peers in regions marked `side` cannot reach peers in the other regions.
  void set_partition(const std::vector<bool>& side);
  void clear_partition();
  bool partitioned(PeerId a, PeerId b) const {
    return partition_active_ &&
           partition_side_[peers_[a].region] != partition_side_[peers_[b].region];
  }

  // Clog and loss faults (message level): a clogged peer's messages, to or from it, take
  // `extra_ns` longer (both ends clogged: both delays); a lossy peer's are dropped with
  // probability `ppm` / 1e6 (both ends lossy: the larger). Overlapping faults on one peer add up;
  // each fault takes back what it added when it ends.
  void add_clog(PeerId p, int64_t extra_ns) { clog_ns_[p] += extra_ns; }
  void add_loss(PeerId p, int64_t ppm) { loss_ppm_[p] += ppm; }
  int64_t clog_ns(PeerId a, PeerId b) const { return clog_ns_[a] + clog_ns_[b]; }
  // The extra drop probability of a message from a to b (0 when neither is lossy).
  double fault_loss(PeerId a, PeerId b) const {
    const int64_t ppm = std::max(loss_ppm_[a], loss_ppm_[b]);
    return ppm <= 0 ? 0.0 : std::min(1.0, static_cast<double>(ppm) * 1e-6);
  }

 private:
  std::vector<PeerLink> peers_;
  RegionMatrix regions_;
  bool partition_active_ = false;
  std::vector<bool> partition_side_;
  std::vector<int64_t> clog_ns_, loss_ppm_;  // by peer, sized by build()
};

}  // namespace crowdtrain::sim
