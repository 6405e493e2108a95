#include "core/averaging/strategies.h"

#include "core/status.h"

namespace crowdtrain {

std::vector<MixTarget> ring_gossip_neighbours(uint32_t i, uint32_t n) {
  CT_CHECK(n >= 1 && i < n);
  if (n == 1) return {{i, 1.0}};
  if (n == 2) return {{i, 0.5}, {1 - i, 0.5}};
  return {{(i + n - 1) % n, 1.0 / 3}, {i, 1.0 / 3}, {(i + 1) % n, 1.0 / 3}};
}

std::vector<double> ring_gossip_round(const std::vector<double>& values,
                                      const std::vector<bool>& alive) {
  const uint32_t n = static_cast<uint32_t>(values.size());
  CT_CHECK(alive.size() == values.size());
  std::vector<double> out(values);
  for (uint32_t i = 0; i < n; ++i) {
    if (!alive[i]) continue;
    double sum = 0, w = 0;
    for (const MixTarget& t : ring_gossip_neighbours(i, n)) {
      if (!alive[t.peer]) continue;
      sum += values[t.peer];
      w += 1;
    }
    out[i] = sum / w;
  }
  return out;
}

std::vector<uint32_t> pushsum_exponents(uint64_t round, uint32_t n) {
  CT_CHECK(n >= 1);
  uint32_t k = 0;
  while ((uint64_t{1} << k) < n) ++k;
  if (k == 0) k = 1;
  return {static_cast<uint32_t>((2 * round) % k), static_cast<uint32_t>((2 * round + 1) % k)};
}

std::vector<MixTarget> pushsum_targets(uint32_t i, uint32_t n, uint64_t round) {
  CT_CHECK(n >= 1 && i < n);
  std::vector<uint32_t> peers{i};
  for (uint32_t k : pushsum_exponents(round, n)) {
    const uint32_t to = static_cast<uint32_t>((i + (uint64_t{1} << k)) % n);
    bool seen = false;
    for (uint32_t p : peers) seen |= p == to;
    if (!seen) peers.push_back(to);
  }
  std::vector<MixTarget> out;
  for (uint32_t p : peers) out.push_back({p, 1.0 / static_cast<double>(peers.size())});
  return out;
}

std::vector<PushSumState> pushsum_round(const std::vector<PushSumState>& states, uint64_t round,
                                        const std::vector<bool>& alive) {
  const uint32_t n = static_cast<uint32_t>(states.size());
  CT_CHECK(alive.size() == states.size());
  std::vector<PushSumState> out(n, PushSumState{0.0, 0.0});
  for (uint32_t i = 0; i < n; ++i) {
    if (!alive[i]) out[i] = states[i];
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (!alive[i]) continue;
    for (const MixTarget& t : pushsum_targets(i, n, round)) {
      if (!alive[t.peer]) continue;  // lost in transit
      out[t.peer].value += t.weight * states[i].value;
      out[t.peer].weight += t.weight * states[i].weight;
    }
  }
  return out;
}

}  // namespace crowdtrain
