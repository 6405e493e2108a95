// A distribution of a non-negative quantity, as scenarios write it. In JSON either a plain number
// (a constant) or an object: {"dist": "constant", "value": v} | {"dist": "uniform", "min", "max"} |
// {"dist": "exponential", "mean"} | {"dist": "normal", "mean", "stddev"} (clipped at 0) |
// {"dist": "lognormal", "median", "sigma"} | {"dist": "weibull", "shape", "scale" or "median"} |
// {"dist": "percentiles", "table": [[q, value], ...]} (q rising from 0 to 1, linear in between).
// The unit is the one its key names (session_s, upload_mbps, ...). Sampling uses crowdtrain::Rng
// only.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/random.h"

namespace crowdtrain {

struct DistSpec {
  enum class Kind {
    kConstant,
    kUniform,
    kExponential,
    kNormal,
    kLognormal,
    kWeibull,
    kPercentiles
  };
  Kind kind = Kind::kConstant;
  double value = 0.0;                            // constant
  double min = 0.0, max = 0.0;                   // uniform
  double mean = 0.0, stddev = 0.0;               // exponential (mean), normal
  double median = 0.0, sigma = 0.0;              // lognormal
  double shape = 1.0, scale = 1.0;               // weibull (scale derived from median when given)
  std::vector<std::pair<double, double>> table;  // percentiles

  static DistSpec constant(double v) {
    DistSpec d;
    d.value = v;
    return d;
  }
  double sample(Rng& rng) const;  // always >= 0
  double median_value() const;
  std::string describe() const;  // e.g. "weibull(shape=0.5, scale=5200)"
};

}  // namespace crowdtrain
