// Dataset handle, split, shards and the batch iterator. Index bookkeeping happens in plain vectors
// with crowdtrain::Rng; LibTorch only gathers rows (index_select), so no torch RNG is ever drawn.
#include "core/train/dataset.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace crowdtrain::train {

struct Dataset::Tensors {
  torch::Tensor images;
  torch::Tensor labels;
};

namespace {

const torch::Tensor& empty_tensor() {
  static const torch::Tensor kEmpty;
  return kEmpty;
}

torch::Tensor index_tensor(const std::vector<int64_t>& indices) {
  return torch::tensor(indices, torch::kInt64);
}

}  // namespace

Dataset::Dataset() = default;

Dataset::Dataset(const at::Tensor& images, const at::Tensor& labels, int64_t num_classes)
    : num_classes_(num_classes) {
  CT_CHECK(images.defined() && labels.defined());
  CT_CHECK(images.dim() == 2 && images.scalar_type() == torch::kFloat32);
  CT_CHECK(labels.dim() == 1 && labels.scalar_type() == torch::kInt64);
  CT_CHECK(images.size(0) == labels.size(0));
  CT_CHECK(num_classes > 0);
  auto t = std::make_shared<Tensors>();
  t->images = images.contiguous();
  t->labels = labels.contiguous();
  t_ = std::move(t);
}

int64_t Dataset::size() const { return t_ ? t_->labels.size(0) : 0; }
int64_t Dataset::num_features() const { return t_ ? t_->images.size(1) : 0; }
const at::Tensor& Dataset::images() const { return t_ ? t_->images : empty_tensor(); }
const at::Tensor& Dataset::labels() const { return t_ ? t_->labels : empty_tensor(); }

Dataset Dataset::subset(const std::vector<int64_t>& indices) const {
  CT_CHECK(t_ != nullptr);
  for (int64_t i : indices) CT_CHECK(i >= 0 && i < size());
  const torch::Tensor idx = index_tensor(indices);
  return Dataset(t_->images.index_select(0, idx), t_->labels.index_select(0, idx), num_classes_);
}

Standardization fit_standardization(const Dataset& data) {
  Standardization s;
  if (data.size() == 0) return s;
  const torch::Tensor x = data.images().to(torch::kFloat64);
  s.mean = x.mean().item<double>();
  const double sd = x.std(/*unbiased=*/false).item<double>();
  if (std::isfinite(sd) && sd > 0) s.stddev = sd;
  return s;
}

Dataset standardized(const Dataset& data, const Standardization& s) {
  CT_CHECK(std::isfinite(s.mean) && std::isfinite(s.stddev) && s.stddev > 0);
  if (data.size() == 0) return data;
  const torch::Tensor x = (data.images().to(torch::kFloat64) - s.mean) / s.stddev;
  return Dataset(x.to(torch::kFloat32).contiguous(), data.labels(), data.num_classes());
}

std::vector<int64_t> Dataset::label_vector() const {
  if (!t_) return {};
  const int64_t* p = t_->labels.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + size());
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(static_cast<size_t>(num_classes_), 0);
  for (int64_t y : label_vector()) {
    CT_CHECK(y >= 0 && y < num_classes_);
    ++counts[static_cast<size_t>(y)];
  }
  return counts;
}

std::vector<int64_t> permutation(int64_t n, Rng& rng) {
  CT_CHECK(n >= 0);
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.uniform_int(static_cast<uint64_t>(i + 1)));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

namespace {

// Indices of each label, in data order.
std::vector<std::vector<int64_t>> indices_by_label(const Dataset& data) {
  std::vector<std::vector<int64_t>> by(static_cast<size_t>(data.num_classes()));
  const std::vector<int64_t> labels = data.label_vector();
  for (size_t i = 0; i < labels.size(); ++i) {
    CT_CHECK(labels[i] >= 0 && labels[i] < data.num_classes());
    by[static_cast<size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  }
  return by;
}

void shuffle(std::vector<int64_t>& v, Rng& rng) {
  const std::vector<int64_t> p = permutation(static_cast<int64_t>(v.size()), rng);
  std::vector<int64_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[static_cast<size_t>(p[i])];
  v = std::move(out);
}

}  // namespace

std::pair<Dataset, Dataset> split_train_validation(const Dataset& data, double validation_fraction,
                                                   uint64_t seed) {
  CT_CHECK(validation_fraction >= 0.0 && validation_fraction < 1.0);
  Rng rng(derive_seed(seed, "split"));
  std::vector<int64_t> train, validation;
  for (std::vector<int64_t>& idx : indices_by_label(data)) {
    shuffle(idx, rng);
    const auto n_val =
        static_cast<size_t>(std::llround(static_cast<double>(idx.size()) * validation_fraction));
    validation.insert(validation.end(), idx.begin(), idx.begin() + static_cast<int64_t>(n_val));
    train.insert(train.end(), idx.begin() + static_cast<int64_t>(n_val), idx.end());
  }
  std::sort(train.begin(), train.end());
  std::sort(validation.begin(), validation.end());
  return {data.subset(train), data.subset(validation)};
}

Dataset shard_iid(const Dataset& data, uint32_t num_peers, uint32_t peer, uint64_t seed) {
  CT_CHECK(num_peers > 0 && peer < num_peers);
  CT_CHECK(data.size() > 0);
  Rng rng(derive_seed(seed, "shard_iid"));
  const std::vector<int64_t> perm = permutation(data.size(), rng);
  std::vector<int64_t> mine;
  for (size_t i = peer; i < perm.size(); i += num_peers) mine.push_back(perm[i]);
  if (mine.empty()) mine.push_back(perm[peer % perm.size()]);
  std::sort(mine.begin(), mine.end());
  return data.subset(mine);
}

Dataset shard_by_label(const Dataset& data, uint32_t num_peers, uint32_t peer,
                       uint32_t pieces_per_peer, uint64_t seed) {
  CT_CHECK(num_peers > 0 && peer < num_peers && pieces_per_peer > 0);
  CT_CHECK(data.size() > 0);
  Rng rng(derive_seed(seed, "shard_by_label"));
  std::vector<int64_t> sorted;
  for (std::vector<int64_t>& idx : indices_by_label(data)) {
    shuffle(idx, rng);
    sorted.insert(sorted.end(), idx.begin(), idx.end());
  }
  const uint64_t pieces = static_cast<uint64_t>(num_peers) * pieces_per_peer;
  const std::vector<int64_t> piece_order = permutation(static_cast<int64_t>(pieces), rng);
  const auto n = static_cast<uint64_t>(sorted.size());
  std::vector<int64_t> mine;
  for (uint64_t k = 0; k < pieces_per_peer; ++k) {
    const auto piece = static_cast<uint64_t>(piece_order[peer * pieces_per_peer + k]);
    const uint64_t begin = piece * n / pieces, end = (piece + 1) * n / pieces;
    for (uint64_t i = begin; i < end; ++i) mine.push_back(sorted[i]);
  }
  if (mine.empty()) {
    const auto piece = static_cast<uint64_t>(piece_order[peer * pieces_per_peer]);
    mine.push_back(sorted[std::min(piece * n / pieces, n - 1)]);
  }
  std::sort(mine.begin(), mine.end());
  return data.subset(mine);
}

BatchIterator::BatchIterator(Dataset data, int64_t batch_size, uint64_t seed)
    : data_(std::move(data)), batch_size_(batch_size), rng_(seed) {
  CT_CHECK(batch_size_ > 0);
  CT_CHECK(data_.size() > 0);
  order_ = permutation(data_.size(), rng_);
}

void BatchIterator::next(at::Tensor* images, at::Tensor* labels) {
  std::vector<int64_t> idx;
  idx.reserve(static_cast<size_t>(batch_size_));
  while (static_cast<int64_t>(idx.size()) < batch_size_) {
    idx.push_back(order_[pos_++]);
    if (pos_ == order_.size()) {  // a pass is complete: the next one has a fresh order
      order_ = permutation(data_.size(), rng_);
      pos_ = 0;
      ++epoch_;
    }
  }
  const torch::Tensor t = index_tensor(idx);
  *images = data_.images().index_select(0, t);
  *labels = data_.labels().index_select(0, t);
}

}  // namespace crowdtrain::train
