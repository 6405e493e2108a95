// The simulated internet's shape, drawn once per run from the scenario and the "topology" seed
// stream: every peer's region, peer class, access latency and access bandwidths, the
// region-to-region RTT matrix, and the current partition (changed by faults). Both network models
// read it. No ns-3 here.
#pragma once

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

 private:
  std::vector<PeerLink> peers_;
  RegionMatrix regions_;
  bool partition_active_ = false;
  std::vector<bool> partition_side_;
};

}  // namespace crowdtrain::sim
