// The min-max program is solved as follows. For a candidate T, member i's constraint
// (a_i + c_i x_i) / b_i <= T bounds x_i to an interval [lo_i(T), hi_i(T)] within [0, 1]; T is
// feasible iff every interval is nonempty and sum lo <= 1 <= sum hi. Each bound is a clamped
// linear function of T, so feasibility is monotone and the sums are piecewise linear with
// breakpoints where a bound hits 0 or 1. T* is the largest of: the per-member thresholds, the
// smallest T with sum hi >= 1, and the smallest T with sum lo <= 1; the last two are found exactly
// by walking the sorted breakpoints and interpolating inside the segment that crosses the target.
#include "core/averaging/load_balancing.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace crowdtrain {
namespace {

struct Term {
  double a, c, b;  // traffic a + c x over bandwidth b
};

// A clamped ramp r(T) = clamp((T b - alpha) / gamma, 0, 1), gamma > 0: nondecreasing in T.
struct Ramp {
  double b, alpha, gamma;
  double at(double t) const { return std::clamp((t * b - alpha) / gamma, 0.0, 1.0); }
};

double ramp_sum(const std::vector<Ramp>& ramps, double t) {
  double s = 0;
  for (const Ramp& r : ramps) s += r.at(t);
  return s;
}

// The smallest T >= t0 with sum of ramps >= target (target <= ramps.size()).
double smallest_reaching(const std::vector<Ramp>& ramps, double target, double t0) {
  if (ramp_sum(ramps, t0) >= target) return t0;
  std::vector<double> points;
  for (const Ramp& r : ramps) {
    points.push_back(r.alpha / r.b);
    points.push_back((r.alpha + r.gamma) / r.b);
  }
  std::sort(points.begin(), points.end());
  double prev_t = t0, prev_v = ramp_sum(ramps, t0);
  for (double p : points) {
    if (p <= prev_t) continue;
    const double v = ramp_sum(ramps, p);
    if (v >= target) {
      // The sum is linear on [prev_t, p]: interpolate exactly.
      return prev_t + (target - prev_v) * (p - prev_t) / (v - prev_v);
    }
    prev_t = p;
    prev_v = v;
  }
  return prev_t;  // unreachable when target <= ramps.size(): the last breakpoint saturates all
}

}  // namespace

Result<BalanceSolution> optimize_fractions(const std::vector<BalanceInput>& members) {
  const size_t n = members.size();
  int senders = 0;
  for (size_t i = 0; i < n; ++i) {
    const double b = members[i].bandwidth;
    if (!std::isfinite(b) || b < 0) {
      return Status::error("load_balance: member " + std::to_string(i) + " has bandwidth " +
                           std::to_string(b));
    }
    if (members[i].mode != AveragingMode::kAux) ++senders;
  }
  // Averaging members and their traffic terms.
  std::vector<size_t> idx;
  std::vector<Term> terms;
  for (size_t i = 0; i < n; ++i) {
    const BalanceInput& m = members[i];
    if (m.mode == AveragingMode::kClient || m.bandwidth == 0) continue;
    idx.push_back(i);
    if (m.mode == AveragingMode::kAux) {
      terms.push_back({0.0, static_cast<double>(senders), m.bandwidth});
    } else {
      terms.push_back({1.0, static_cast<double>(senders - 2), m.bandwidth});
    }
  }
  if (terms.empty()) return Status::error("load_balance: no member can average (all clients)");

  // hi_i(T) = clamp((T b - a) / c, 0, 1) for c > 0 (needs T >= a/b); 1 otherwise (c = 0 needs
  // T >= a/b). lo_i(T) = clamp((a - T b) / -c, 0, 1) for c < 0 (needs T >= (a + c)/b); 0 otherwise.
  double t0 = 0.0;
  std::vector<Ramp> hi_ramps, lo_complements;
  int fixed_hi = 0;
  for (const Term& t : terms) {
    if (t.c > 0) {
      t0 = std::max(t0, t.a / t.b);
      hi_ramps.push_back({t.b, t.a, t.c});
    } else {
      ++fixed_hi;
      if (t.c == 0) t0 = std::max(t0, t.a / t.b);
      if (t.c < 0) {
        t0 = std::max(t0, (t.a + t.c) / t.b);
        // 1 - lo_i(T) = clamp((T b - (a + c)) / -c, 0, 1): a nondecreasing ramp.
        lo_complements.push_back({t.b, t.a + t.c, -t.c});
      }
    }
  }
  double t_star = t0;
  if (fixed_hi == 0) t_star = std::max(t_star, smallest_reaching(hi_ramps, 1.0, t0));
  if (!lo_complements.empty()) {
    // sum lo <= 1  <=>  sum (1 - lo) >= count - 1.
    const double target = static_cast<double>(lo_complements.size()) - 1.0;
    t_star = std::max(t_star, smallest_reaching(lo_complements, target, t0));
  }

  // Fractions at T*: every member at the same share of its slack, so that sum x = 1.
  std::vector<double> lo(terms.size()), hi(terms.size());
  double sum_lo = 0, sum_hi = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    const Term& t = terms[k];
    lo[k] = t.c < 0 ? std::clamp((t.a - t_star * t.b) / -t.c, 0.0, 1.0) : 0.0;
    hi[k] = t.c > 0 ? std::clamp((t_star * t.b - t.a) / t.c, 0.0, 1.0) : 1.0;
    sum_lo += lo[k];
    sum_hi += hi[k];
  }
  const double lambda =
      sum_hi > sum_lo ? std::clamp((1.0 - sum_lo) / (sum_hi - sum_lo), 0.0, 1.0) : 0.0;
  BalanceSolution out;
  out.fractions.assign(n, 0.0);
  double total = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    out.fractions[idx[k]] = lo[k] + lambda * (hi[k] - lo[k]);
    total += out.fractions[idx[k]];
  }
  CT_CHECK(total > 0);
  for (double& x : out.fractions) x /= total;  // removes rounding drift
  out.round_time = t_star;
  return out;
}

double round_time_of(const std::vector<BalanceInput>& members,
                     const std::vector<double>& fractions) {
  CT_CHECK(members.size() == fractions.size());
  int senders = 0;
  for (const auto& m : members) senders += m.mode != AveragingMode::kAux;
  double t = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const BalanceInput& m = members[i];
    if (m.mode == AveragingMode::kClient || m.bandwidth == 0) continue;
    const bool aux = m.mode == AveragingMode::kAux;
    const double a = aux ? 0.0 : 1.0;
    const double c = aux ? senders : senders - 2.0;
    t = std::max(t, (a + c * fractions[i]) / m.bandwidth);
  }
  return t;
}

std::vector<int64_t> integer_part_sizes(int64_t vector_size, const std::vector<double>& fractions) {
  CT_CHECK(vector_size >= 0);
  std::vector<int64_t> sizes(fractions.size(), 0);
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t i = 0; i < fractions.size(); ++i) {
    CT_CHECK(fractions[i] >= 0 && std::isfinite(fractions[i]));
    if (fractions[i] == 0) continue;
    const double exact = fractions[i] * static_cast<double>(vector_size);
    sizes[i] = std::min<int64_t>(static_cast<int64_t>(std::floor(exact)), vector_size);
    assigned += sizes[i];
    remainders.push_back({exact - static_cast<double>(sizes[i]), i});
  }
  CT_CHECK(!remainders.empty() || vector_size == 0);
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& x, const auto& y) { return x.first > y.first; });
  // Trim an overshoot (only possible through rounding), then hand out the leftover.
  for (size_t k = remainders.size(); assigned > vector_size && k-- > 0;) {
    const size_t i = remainders[k].second;
    const int64_t take = std::min(sizes[i], assigned - vector_size);
    sizes[i] -= take;
    assigned -= take;
  }
  for (size_t k = 0; assigned < vector_size; k = (k + 1) % remainders.size()) {
    ++sizes[remainders[k].second];
    ++assigned;
  }
  return sizes;
}

Result<std::vector<int64_t>> load_balance(int64_t vector_size,
                                          const std::vector<BalanceInput>& members) {
  auto sol = optimize_fractions(members);
  if (!sol.ok()) return sol.status();
  return integer_part_sizes(vector_size, sol->fractions);
}

}  // namespace crowdtrain
