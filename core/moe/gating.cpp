// Gating: product-key scores with a torch::nn::Linear, the uid parser, and the brute-force top-k
// that tests and fakes use as the ground truth for beam search.
#include "core/moe/gating.h"

#include "core/moe/expert_uid.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

namespace crowdtrain::moe {

Gating::Gating(int64_t input_dim, std::vector<int64_t> grid_sizes, bool pre_norm)
    : input_dim_(input_dim), grid_sizes_(std::move(grid_sizes)), pre_norm_(pre_norm) {
  CT_CHECK(input_dim_ > 0 && !grid_sizes_.empty());
  for (int64_t s : grid_sizes_) CT_CHECK(s > 0);
  module_ = torch::nn::Linear(input_dim_, num_scores()).ptr();
}

Gating::~Gating() = default;

int64_t Gating::num_scores() const {
  return std::accumulate(grid_sizes_.begin(), grid_sizes_.end(), int64_t{0});
}

at::Tensor Gating::forward(const at::Tensor& x) const {
  auto* linear = dynamic_cast<torch::nn::LinearImpl*>(module_.get());
  CT_CHECK(linear != nullptr);
  return linear->forward(normalized(x));
}

at::Tensor Gating::normalized(const at::Tensor& x) const {
  return pre_norm_ ? torch::layer_norm(x, {input_dim_}) : x;
}

at::Tensor Gating::forward(const at::Tensor& x, const std::vector<at::Tensor>& params) const {
  CT_CHECK(params.size() == 2);
  CT_CHECK(params[0].dim() == 2 && params[0].size(0) == num_scores() &&
           params[0].size(1) == input_dim_);
  return torch::nn::functional::linear(normalized(x), params[0], params[1]);
}

double Gating::forward_flops(int64_t batch) const {
  const double norm = pre_norm_ ? 5.0 * static_cast<double>(input_dim_) : 0.0;  // mean, var, scale
  return (2.0 * static_cast<double>(input_dim_) * static_cast<double>(num_scores()) + norm) *
         static_cast<double>(batch);
}

GridScores Gating::grid_scores(const at::Tensor& logits) const {
  CT_CHECK(logits.dim() == 2 && logits.size(1) == num_scores());
  const torch::Tensor cpu = logits.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = cpu.data_ptr<double>();
  const int64_t n = cpu.size(0), width = cpu.size(1);
  GridScores scores(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; ++s) {
    int64_t offset = 0;
    for (int64_t size : grid_sizes_) {
      const double* row = p + s * width + offset;
      scores[static_cast<size_t>(s)].emplace_back(row, row + size);
      offset += size;
    }
  }
  return scores;
}

at::Tensor Gating::expert_logits(const at::Tensor& logits,
                                 const std::vector<std::vector<ExpertCoords>>& coords) const {
  CT_CHECK(logits.dim() == 2 && logits.size(1) == num_scores());
  const int64_t n = logits.size(0);
  CT_CHECK(static_cast<int64_t>(coords.size()) == n);
  const int64_t dims = static_cast<int64_t>(grid_sizes_.size());
  size_t m = 0;
  for (const auto& row : coords) m = std::max(m, row.size());
  const int64_t width = static_cast<int64_t>(m);
  // Column of every (sample, expert, dim) score in `logits`; padding points at column 0.
  std::vector<int64_t> columns(static_cast<size_t>(n * width * dims), 0);
  std::vector<uint8_t> missing(static_cast<size_t>(n * width), 1);
  for (int64_t s = 0; s < n; ++s) {
    const auto& row = coords[static_cast<size_t>(s)];
    for (size_t j = 0; j < row.size(); ++j) {
      CT_CHECK(static_cast<int64_t>(row[j].size()) == dims);
      missing[static_cast<size_t>(s * width) + j] = 0;
      int64_t offset = 0;
      for (int64_t d = 0; d < dims; ++d) {
        const int64_t c = row[j][static_cast<size_t>(d)];
        CT_CHECK(c >= 0 && c < grid_sizes_[static_cast<size_t>(d)]);
        columns[static_cast<size_t>((s * width + static_cast<int64_t>(j)) * dims + d)] = offset + c;
        offset += grid_sizes_[static_cast<size_t>(d)];
      }
    }
  }
  if (width == 0) return logits.new_zeros({n, 0});
  const torch::Tensor index =
      torch::tensor(columns, torch::kInt64).view({n, width * dims}).to(logits.device());
  const torch::Tensor mask =
      torch::tensor(std::vector<int64_t>(missing.begin(), missing.end()), torch::kInt64)
          .view({n, width})
          .to(logits.device())
          .to(torch::kBool);
  const torch::Tensor summed = logits.gather(1, index).view({n, width, dims}).sum(2);
  return summed.masked_fill(mask, -std::numeric_limits<double>::infinity());
}

Result<ExpertCoords> parse_expert_coords(const std::string& uid,
                                         const std::vector<int64_t>& grid_sizes) {
  auto parsed = parse_expert_uid(uid);
  if (!parsed.ok()) return parsed.status();
  const ExpertCoords& coords = parsed->coords;
  if (coords.size() != grid_sizes.size()) {
    return Status::error("expert uid '" + uid + "': " + std::to_string(coords.size()) +
                         " coordinates on a grid of " + std::to_string(grid_sizes.size()) +
                         " dimensions");
  }
  for (size_t d = 0; d < coords.size(); ++d) {
    if (coords[d] >= grid_sizes[d]) {
      return Status::error("expert uid '" + uid + "': coordinate " + std::to_string(d) + " = " +
                           std::to_string(coords[d]) + " outside a grid of " +
                           std::to_string(grid_sizes[d]));
    }
  }
  return coords;
}

std::string make_expert_uid(const std::string& prefix, const ExpertCoords& coords) {
  std::string uid = prefix;
  for (int64_t c : coords) uid += "." + std::to_string(c);
  return uid;
}

std::vector<std::vector<GridPoint>> brute_force_top_k(const GridScores& scores,
                                                      const std::vector<int64_t>& grid_sizes,
                                                      size_t k) {
  int64_t total = 1;
  for (int64_t s : grid_sizes) {
    CT_CHECK(s > 0);
    total *= s;
    CT_CHECK(total <= (int64_t{1} << 20));
  }
  std::vector<std::vector<GridPoint>> result;
  for (const auto& sample : scores) {
    CT_CHECK(sample.size() == grid_sizes.size());
    std::vector<GridPoint> points;
    for (int64_t flat = 0; flat < total; ++flat) {
      GridPoint p;
      p.coords.assign(grid_sizes.size(), 0);
      int64_t rest = flat;
      for (size_t d = grid_sizes.size(); d-- > 0;) {
        p.coords[d] = rest % grid_sizes[d];
        rest /= grid_sizes[d];
        p.score += sample[d][static_cast<size_t>(p.coords[d])];
      }
      points.push_back(std::move(p));
    }
    // `points` is in lexicographic order already, so a stable sort breaks ties by coordinates.
    std::stable_sort(points.begin(), points.end(),
                     [](const GridPoint& a, const GridPoint& b) { return a.score > b.score; });
    if (points.size() > k) points.resize(k);
    result.push_back(std::move(points));
  }
  return result;
}

}  // namespace crowdtrain::moe
