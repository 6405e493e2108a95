// Product-key gating of one DMoE layer (Learning@home; hivemind's RemoteMixtureOfExperts): a
// Linear(in, sum(grid sizes)) whose output holds, for every grid dimension d, one score per
// coordinate; an expert's logit is the sum of its coordinates' scores. With pre_norm the input is
// first standardised per sample (a LayerNorm without parameters: the Linear can absorb its scale
// and shift), as the paper's convergence emulator normalises before its gate, so the scores do
// not grow with the hidden state. The Gating owns its
// parameters through module(), which a bigger model registers as a submodule (core/train/
// dmoe_model.h). Expert uids ("prefix.i.j") become coordinates through parse_expert_coords, the one
// place that knows the uid syntax. No LibTorch in this header. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace at {
class Tensor;
}
namespace torch::nn {
class Module;
}

namespace crowdtrain::moe {

using GridScores = std::vector<std::vector<std::vector<double>>>;  // [sample][dim][coordinate]
using ExpertCoords = std::vector<int64_t>;                         // one coordinate per dim

class Gating {
 public:
  // Parameters are drawn from torch's global generator (seed it first). CT_CHECKs input_dim > 0
  // and a non-empty grid of positive sizes.
  Gating(int64_t input_dim, std::vector<int64_t> grid_sizes, bool pre_norm = false);
  ~Gating();
  Gating(const Gating&) = delete;
  Gating& operator=(const Gating&) = delete;

  int64_t input_dim() const { return input_dim_; }
  bool pre_norm() const { return pre_norm_; }
  const std::vector<int64_t>& grid_sizes() const { return grid_sizes_; }
  int64_t num_scores() const;  // sum of the grid sizes
  // The Linear module (parameters: weight [num_scores, input_dim], then bias [num_scores]).
  std::shared_ptr<torch::nn::Module> module() const { return module_; }

  // logits [n, num_scores] of x [n, input_dim] with the module's own parameters, or with
  // `params` = {weight, bias} of the same shapes (a snapshot taken by the trainer).
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor forward(const at::Tensor& x, const std::vector<at::Tensor>& params) const;
  double forward_flops(int64_t batch) const;

  // logits as the scores[s][d][i] an ExpertFinder takes (copied to doubles, no gradient).
  GridScores grid_scores(const at::Tensor& logits) const;
  // [n, m] differentiable expert logits, m = max_s coords[s].size(): entry (s, j) is the sum of
  // the scores of coords[s][j]; entries past coords[s].size() are -inf (no expert). CT_CHECKs
  // that coords has n rows and every coordinate lies in the grid.
  at::Tensor expert_logits(const at::Tensor& logits,
                           const std::vector<std::vector<ExpertCoords>>& coords) const;

 private:
  at::Tensor normalized(const at::Tensor& x) const;  // x, or x standardised when pre_norm

  int64_t input_dim_;
  std::vector<int64_t> grid_sizes_;
  bool pre_norm_ = false;
  std::shared_ptr<torch::nn::Module> module_;
};

// "prefix.i.j" -> {i, j}: the last grid_sizes.size() dot-separated parts, each a decimal integer
// inside its dimension, after a non-empty prefix. An error naming the uid otherwise.
Result<ExpertCoords> parse_expert_coords(const std::string& uid,
                                         const std::vector<int64_t>& grid_sizes);
// The inverse: prefix + "." + coordinates joined by dots.
std::string make_expert_uid(const std::string& prefix, const ExpertCoords& coords);

// One grid point and its score (sum of its coordinates' scores).
struct GridPoint {
  ExpertCoords coords;
  double score = 0;
};
// For tests and fakes: for every sample, the k best points of the whole grid, best first (ties:
// smaller coordinates first), by enumerating every point (CT_CHECK: at most 2^20 points).
std::vector<std::vector<GridPoint>> brute_force_top_k(const GridScores& scores,
                                                      const std::vector<int64_t>& grid_sizes,
                                                      size_t k);

}  // namespace crowdtrain::moe
