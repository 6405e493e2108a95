#include "core/distribution.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace crowdtrain {
namespace {

// Linear interpolation in a percentile table at quantile q.
double table_at(const std::vector<std::pair<double, double>>& table, double q) {
  if (table.empty()) return 0.0;
  if (q <= table.front().first) return table.front().second;
  for (size_t i = 1; i < table.size(); ++i) {
    if (q <= table[i].first) {
      const auto& [q0, v0] = table[i - 1];
      const auto& [q1, v1] = table[i];
      if (q1 <= q0) return v1;
      return v0 + (v1 - v0) * (q - q0) / (q1 - q0);
    }
  }
  return table.back().second;
}

std::string fmt(const char* f, double a, double b = 0.0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

}  // namespace

double DistSpec::sample(Rng& rng) const {
  double v = 0.0;
  switch (kind) {
    case Kind::kConstant:
      v = value;
      break;
    case Kind::kUniform:
      v = rng.uniform(min, max);
      break;
    case Kind::kExponential:
      v = rng.exponential(mean);
      break;
    case Kind::kNormal:
      v = rng.normal(mean, stddev);
      break;
    case Kind::kLognormal:
      v = rng.lognormal(std::log(median), sigma);
      break;
    case Kind::kWeibull:
      v = rng.weibull(shape, scale);
      break;
    case Kind::kPercentiles:
      v = table_at(table, rng.uniform01());
      break;
  }
  return std::max(v, 0.0);
}

double DistSpec::median_value() const {
  switch (kind) {
    case Kind::kConstant:
      return value;
    case Kind::kUniform:
      return 0.5 * (min + max);
    case Kind::kExponential:
      return mean * std::log(2.0);
    case Kind::kNormal:
      return std::max(mean, 0.0);
    case Kind::kLognormal:
      return median;
    case Kind::kWeibull:
      return scale * std::pow(std::log(2.0), 1.0 / shape);
    case Kind::kPercentiles:
      return table_at(table, 0.5);
  }
  return 0.0;
}

std::string DistSpec::describe() const {
  switch (kind) {
    case Kind::kConstant:
      return fmt("%g", value);
    case Kind::kUniform:
      return fmt("uniform(%g, %g)", min, max);
    case Kind::kExponential:
      return fmt("exponential(mean=%g)", mean);
    case Kind::kNormal:
      return fmt("normal(mean=%g, stddev=%g)", mean, stddev);
    case Kind::kLognormal:
      return fmt("lognormal(median=%g, sigma=%g)", median, sigma);
    case Kind::kWeibull:
      return fmt("weibull(shape=%g, scale=%g)", shape, scale);
    case Kind::kPercentiles:
      return "percentiles(" + std::to_string(table.size()) + " points)";
  }
  return "?";
}

}  // namespace crowdtrain
