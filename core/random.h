// Deterministic randomness. One master seed; every component draws from its own named stream
// derived from it (derive_seed(master, "peer", 17)), so adding a component never shifts another's
// draws. Rng is xoshiro256** and the distributions are written here, not taken from <random>, whose
// distributions differ between standard libraries. Not thread-safe: one Rng per peer or component.
#pragma once

#include <cstdint>
#include <string_view>

namespace crowdtrain {

// A seed for the stream called `name` (with up to two indices) under `master`. Pure function.
uint64_t derive_seed(uint64_t master, std::string_view name, uint64_t index = 0,
                     uint64_t index2 = 0);

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);

  uint64_t next_u64();
  double uniform01();                    // [0, 1)
  double uniform(double lo, double hi);  // [lo, hi)
  uint64_t uniform_int(uint64_t n);      // [0, n), unbiased; n > 0
  bool bernoulli(double p);
  double exponential(double mean);
  double normal(double mean = 0.0, double stddev = 1.0);
  double lognormal(double mu, double sigma);  // exp(N(mu, sigma))
  double weibull(double shape, double scale);

 private:
  uint64_t s_[4];
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace crowdtrain
