// Expert ids on a grid (Learning@home): an expert is "prefix.i.j...", one coordinate per grid
// dimension, so that a trainer can search the DHT dimension by dimension (core/moe/beam_search.h).
// ExpertUid is a parsed id, ExpertGrid the grid experts of one layer live on; assign_experts says
// which server hosts which experts. Plain value types and pure functions, no state, no LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace crowdtrain::moe {

constexpr size_t kMaxGridDims = 8;
constexpr size_t kMaxPrefixChars = 64;
constexpr size_t kMaxUidChars = 256;
constexpr int64_t kMaxCoordinate = (int64_t{1} << 31) - 1;  // coordinates are in [0, 2^31)
constexpr uint32_t kMaxGridSize = 65536;                    // per dimension
constexpr uint64_t kMaxGridCount = uint64_t{1} << 32;       // experts in a whole grid
// assign_experts refuses requests that would place more (expert, server) pairs than this.
constexpr uint64_t kMaxAssignments = uint64_t{1} << 24;

struct ExpertUid {
  std::string prefix;           // [A-Za-z_][A-Za-z0-9_-]{0,63}
  std::vector<int64_t> coords;  // 1..kMaxGridDims, each in [0, 2^31)
  std::string str() const;      // "prefix.3.17"
  bool operator==(const ExpertUid& o) const { return prefix == o.prefix && coords == o.coords; }
};

// Parses "prefix.c1.c2..."; an error says what is wrong and where, e.g.
// `expert uid "ffn.03": coordinate 1 has a leading zero`.
Result<ExpertUid> parse_expert_uid(std::string_view uid);
// Ok when `prefix` matches [A-Za-z_][A-Za-z0-9_-]{0,63}; otherwise says why.
Status check_expert_prefix(std::string_view prefix);

// The grid of one layer's experts: prefix.i0.i1... with 0 <= i_d < sizes[d].
struct ExpertGrid {
  std::string prefix;
  std::vector<uint32_t> sizes;

  // Valid prefix, 1..8 dimensions, each size in [1, 65536], at most 2^32 experts in all.
  Status check() const;
  uint64_t count() const;  // product of the sizes (1 for no dimensions)
  size_t dims() const { return sizes.size(); }
  bool contains(const ExpertUid& uid) const;
  // The uid of expert `index` in row-major order (the last coordinate varies fastest).
  // CT_CHECKs index < count().
  std::string uid_at(uint64_t index) const;
  // CT_CHECKs that `coords` lie inside the grid.
  std::string uid_of(const std::vector<int64_t>& coords) const;
};

// The DHT key of `uid`'s ancestor at `depth`: "ffn." for depth 0, "ffn.3." for depth 1, ...
// CT_CHECKs depth <= uid.coords.size().
std::string uid_prefix(const ExpertUid& uid, size_t depth);

// Which experts each of `num_servers` servers hosts (result[s]: its uids, in row-major order).
// num_experts = 0 means the whole grid; fewer than the grid: a sample of distinct uids drawn with
// crowdtrain::Rng from `seed`. Each expert goes to min(replicas, num_servers) distinct servers,
// round-robin, so that servers' loads differ by at most one. An error (saying which argument)
// for an invalid grid, no servers, no replicas, more experts than the grid holds, or more than
// kMaxAssignments placements.
Result<std::vector<std::vector<std::string>>> assign_experts(const ExpertGrid& grid,
                                                             uint64_t num_experts,
                                                             uint32_t num_servers,
                                                             uint32_t replicas, uint64_t seed);

}  // namespace crowdtrain::moe
