// How butterfly all-reduce splits a vector among the members of a group (hivemind's
// load_balancing), solved exactly by our own small solver instead of a general LP.
//
// Member i averages a fraction x_i of the vector. With s senders (members that contribute a
// vector) and V elements, member i moves (a_i + c_i x_i) V elements each way: a sender sends the
// parts it does not average and returns the average of its part to the s-1 others (a=1, c=s-2);
// an auxiliary member only averages (a=0, c=s). A client (bandwidth 0) averages nothing and is
// left out of the objective. We minimise T = max_i (a_i + c_i x_i) / b_i subject to sum x = 1,
// x >= 0. Pure functions; no state, no threads.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace crowdtrain {

enum class AveragingMode : uint8_t {
  kNode = 0,    // contributes a vector and averages a part (if its bandwidth > 0)
  kClient = 1,  // contributes a vector, averages nothing (bandwidth is ignored: treated as 0)
  kAux = 2,     // contributes nothing, only averages
};

struct BalanceInput {
  double bandwidth = 1.0;  // any unit; > 0 to average a part; 0 = client
  AveragingMode mode = AveragingMode::kNode;
};

struct BalanceSolution {
  std::vector<double> fractions;  // x_i, sum to 1; 0 for clients
  double round_time = 0.0;        // T* in units of V / bandwidth
};

// The exact optimum of the min-max program. Errors: no member can average (every bandwidth is 0,
// or every member is a client), a negative or non-finite bandwidth.
Result<BalanceSolution> optimize_fractions(const std::vector<BalanceInput>& members);

// The round time T of `fractions` (for tests and logs): max over averaging members of
// (a_i + c_i x_i) / b_i.
double round_time_of(const std::vector<BalanceInput>& members,
                     const std::vector<double>& fractions);

// Integer part sizes summing to `vector_size`: floor(V x_i), then the leftover elements one each
// to the largest remainders (ties: lower index). Members with x_i = 0 get 0.
std::vector<int64_t> integer_part_sizes(int64_t vector_size, const std::vector<double>& fractions);

// optimize_fractions, then integer_part_sizes.
Result<std::vector<int64_t>> load_balance(int64_t vector_size,
                                          const std::vector<BalanceInput>& members);

}  // namespace crowdtrain
