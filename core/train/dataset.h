// A labelled data set in memory, and the ways peers take their part of it: a deterministic
// train/validation split, per-peer shards (iid, or non-iid by label), and a batch iterator. Every
// random choice comes from a crowdtrain::Rng seeded by the caller (never torch's generator), so
// each peer computes its own shard from (seed, peer count, peer index) and all peers agree.
// A Dataset is a cheaply copyable handle to shared tensors that nobody modifies (never write into
// images() or labels() in place; subset() copies). Not thread-safe. LibTorch types are
// forward-declared so that including this header stays cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/random.h"

namespace at {
class Tensor;
}

namespace crowdtrain::train {

class Dataset {
 public:
  Dataset();  // empty: size() == 0
  // `images`: float32 [N, D]; `labels`: int64 [N] in [0, num_classes). CT_CHECKs the shapes and
  // dtypes.
  Dataset(const at::Tensor& images, const at::Tensor& labels, int64_t num_classes);

  int64_t size() const;
  int64_t num_features() const;  // D
  int64_t num_classes() const { return num_classes_; }
  const at::Tensor& images() const;
  const at::Tensor& labels() const;
  // The samples at `indices` (each < size()), in that order, as a new Dataset (copies the rows).
  Dataset subset(const std::vector<int64_t>& indices) const;
  // How many samples carry each label (num_classes() entries).
  std::vector<int64_t> class_counts() const;
  // Labels as a plain vector (copied), for index bookkeeping without LibTorch.
  std::vector<int64_t> label_vector() const;

 private:
  struct Tensors;
  std::shared_ptr<const Tensors> t_;
  int64_t num_classes_ = 0;
};

// Stratified split: in every class, a seeded shuffle puts round(count * validation_fraction)
// samples in validation and the rest in train. Both keep the original order. fraction in [0, 1).
std::pair<Dataset, Dataset> split_train_validation(const Dataset& data, double validation_fraction,
                                                   uint64_t seed);

// Peer `peer` of `num_peers`: a seeded permutation dealt round-robin, so shard sizes differ by at
// most one and every sample belongs to exactly one shard. With more peers than samples, peer p gets
// the single sample at permutation position p mod N (samples are then shared).
Dataset shard_iid(const Dataset& data, uint32_t num_peers, uint32_t peer, uint64_t seed);

// Non-iid by label (FedAvg's pathological split): samples sorted by label (shuffled inside each
// label), cut into num_peers * pieces_per_peer contiguous pieces, pieces dealt to peers in a seeded
// order; a peer sees about pieces_per_peer labels. Every sample belongs to exactly one shard while
// num_peers * pieces_per_peer <= N; beyond that a peer whose pieces are empty gets one sample.
Dataset shard_by_label(const Dataset& data, uint32_t num_peers, uint32_t peer,
                       uint32_t pieces_per_peer, uint64_t seed);

// Input standardisation with one mean and one standard deviation over every feature of every
// sample (for MNIST, torchvision's Normalize((0.1307,), (0.3081,)) computed from the data itself).
struct Standardization {
  double mean = 0.0;
  double stddev = 1.0;
};
// The statistics of `data`'s images (stddev 1 when they are constant or `data` is empty).
Standardization fit_standardization(const Dataset& data);
// A new Dataset with images (x - mean) / stddev; labels shared. `data` is left as it was.
Dataset standardized(const Dataset& data, const Standardization& s);

// A seeded Fisher-Yates permutation of [0, n) drawn from `rng`.
std::vector<int64_t> permutation(int64_t n, Rng& rng);

// Endless batches of exactly batch_size samples: epochs of a fresh seeded permutation, a batch may
// straddle two epochs (so every step costs the same FLOPs). A data set smaller than the batch
// repeats samples. The iterator keeps its own Rng; same seed, same batches.
class BatchIterator {
 public:
  BatchIterator(Dataset data, int64_t batch_size, uint64_t seed);

  // The next batch: images float32 [batch, D], labels int64 [batch].
  void next(at::Tensor* images, at::Tensor* labels);
  int64_t batch_size() const { return batch_size_; }
  int64_t epoch() const { return epoch_; }  // completed passes over the data
  const Dataset& data() const { return data_; }

 private:
  Dataset data_;
  int64_t batch_size_;
  Rng rng_;
  std::vector<int64_t> order_;
  size_t pos_ = 0;
  int64_t epoch_ = 0;
};

}  // namespace crowdtrain::train
