// Split, shards and batches: deterministic from the seed, class-balanced where promised, and every
// sample in exactly one shard.
#include "core/train/dataset.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <vector>

namespace crowdtrain::train {
namespace {

// n samples, 3 features; feature 0 is the sample's index (to identify it), labels cycle
// 0..classes-1.
Dataset indexed(int64_t n, int64_t classes) {
  torch::Tensor x = torch::zeros({n, 3});
  x.select(1, 0).copy_(torch::arange(n, torch::kFloat32));
  return Dataset(x, torch::arange(n, torch::kInt64).remainder(classes), classes);
}

std::vector<int64_t> ids(const Dataset& d) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < d.size(); ++i) {
    out.push_back(static_cast<int64_t>(d.images()[i][0].item<float>()));
  }
  return out;
}

TEST(DatasetTest, SubsetAndCounts) {
  const Dataset d = indexed(10, 3);
  EXPECT_EQ(d.class_counts(), (std::vector<int64_t>{4, 3, 3}));
  const Dataset s = d.subset({9, 1, 4});
  EXPECT_EQ(ids(s), (std::vector<int64_t>{9, 1, 4}));
  EXPECT_EQ(s.label_vector(), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(Dataset().size(), 0);
}

// Statistics from one set, applied to another: the fitted set comes out with mean 0 and standard
// deviation 1 over all of its values; the original is untouched; labels are kept.
TEST(DatasetTest, StandardizationFitsOneSetAndAppliesToAnother) {
  const torch::Tensor x =
      torch::tensor({0.0f, 1.0f, 0.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f}).view({4, 2});
  const Dataset train(x, torch::tensor({0, 1, 0, 1}, torch::kInt64), 2);
  const Standardization st = fit_standardization(train);
  EXPECT_DOUBLE_EQ(st.mean, 0.5);
  EXPECT_DOUBLE_EQ(st.stddev, 0.5);
  const Dataset z = standardized(train, st);
  EXPECT_TRUE(torch::allclose(z.images(), (x - 0.5) / 0.5));
  EXPECT_NEAR(z.images().mean().item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(z.images().std(false).item<double>(), 1.0, 1e-6);
  EXPECT_EQ(z.label_vector(), train.label_vector());
  EXPECT_TRUE(torch::equal(train.images(), x));  // the original is unchanged
  const Dataset other(torch::full({2, 2}, 2.0f), torch::tensor({1, 0}, torch::kInt64), 2);
  EXPECT_TRUE(torch::allclose(standardized(other, st).images(), torch::full({2, 2}, 3.0f)));
  // Constant or empty data: nothing to scale by.
  EXPECT_DOUBLE_EQ(fit_standardization(other).stddev, 1.0);
  EXPECT_DOUBLE_EQ(fit_standardization(Dataset()).mean, 0.0);
}

TEST(DatasetTest, SplitIsStratifiedDisjointAndSeeded) {
  const Dataset d = indexed(1000, 10);
  auto [train, val] = split_train_validation(d, 0.2, 42);
  EXPECT_EQ(train.size(), 800);
  EXPECT_EQ(val.size(), 200);
  for (int64_t c : val.class_counts()) EXPECT_EQ(c, 20);
  std::vector<int64_t> all = ids(train), v = ids(val);
  all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(all[static_cast<size_t>(i)], i);

  auto [train2, val2] = split_train_validation(d, 0.2, 42);
  EXPECT_EQ(ids(val2), ids(val));
  auto [train3, val3] = split_train_validation(d, 0.2, 43);
  EXPECT_NE(ids(val3), ids(val));
}

TEST(DatasetTest, IidShardsPartitionTheData) {
  const Dataset d = indexed(1003, 10);
  std::vector<int64_t> all;
  for (uint32_t p = 0; p < 7; ++p) {
    const Dataset s = shard_iid(d, 7, p, 5);
    EXPECT_TRUE(s.size() == 143 || s.size() == 144) << s.size();
    EXPECT_EQ(ids(s), ids(shard_iid(d, 7, p, 5)));       // every peer computes the same shard
    for (int64_t c : s.class_counts()) EXPECT_GT(c, 5);  // iid: every class present
    const std::vector<int64_t> i = ids(s);
    all.insert(all.end(), i.begin(), i.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 1003u);
  for (int64_t i = 0; i < 1003; ++i) ASSERT_EQ(all[static_cast<size_t>(i)], i);
  EXPECT_NE(ids(shard_iid(d, 7, 0, 5)), ids(shard_iid(d, 7, 0, 6)));
  // More peers than samples: one (shared) sample each.
  const Dataset tiny = indexed(3, 2);
  for (uint32_t p = 0; p < 10; ++p) EXPECT_EQ(shard_iid(tiny, 10, p, 1).size(), 1);
}

TEST(DatasetTest, LabelShardsSeeFewLabels) {
  const Dataset d = indexed(2000, 10);
  std::vector<int64_t> all;
  for (uint32_t p = 0; p < 10; ++p) {
    const Dataset s = shard_by_label(d, 10, p, 2, 9);
    EXPECT_EQ(s.size(), 200);
    int labels_seen = 0;
    for (int64_t c : s.class_counts()) labels_seen += c > 0;
    EXPECT_LE(labels_seen, 2) << "peer " << p;
    EXPECT_EQ(ids(s), ids(shard_by_label(d, 10, p, 2, 9)));
    const std::vector<int64_t> i = ids(s);
    all.insert(all.end(), i.begin(), i.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 2000u);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 2000u);
  const Dataset tiny = indexed(5, 2);
  for (uint32_t p = 0; p < 8; ++p) EXPECT_GE(shard_by_label(tiny, 8, p, 2, 1).size(), 1);
}

TEST(BatchIteratorTest, EpochsCoverEverySampleAndRepeatWithTheSeed) {
  const Dataset d = indexed(10, 2);
  BatchIterator a(d, 4, 77), b(d, 4, 77), c(d, 4, 78);
  std::vector<int64_t> seen_a, seen_b, seen_c;
  for (int i = 0; i < 5; ++i) {  // 20 samples = 2 epochs
    torch::Tensor x, y;
    a.next(&x, &y);
    ASSERT_EQ(x.size(0), 4);
    ASSERT_EQ(y.size(0), 4);
    for (int64_t k = 0; k < 4; ++k) {
      seen_a.push_back(static_cast<int64_t>(x[k][0].item<float>()));
      EXPECT_EQ(y[k].item<int64_t>(), seen_a.back() % 2);
    }
    b.next(&x, &y);
    for (int64_t k = 0; k < 4; ++k) seen_b.push_back(static_cast<int64_t>(x[k][0].item<float>()));
    c.next(&x, &y);
    for (int64_t k = 0; k < 4; ++k) seen_c.push_back(static_cast<int64_t>(x[k][0].item<float>()));
  }
  EXPECT_EQ(a.epoch(), 2);
  EXPECT_EQ(seen_a, seen_b);
  EXPECT_NE(seen_a, seen_c);
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> epoch(seen_a.begin() + 10 * e, seen_a.begin() + 10 * (e + 1));
    std::sort(epoch.begin(), epoch.end());
    for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(epoch[static_cast<size_t>(i)], i);
  }
  // Smaller than a batch: samples repeat, batches keep their size.
  BatchIterator small(indexed(3, 2), 8, 1);
  torch::Tensor x, y;
  small.next(&x, &y);
  EXPECT_EQ(x.size(0), 8);
}

}  // namespace
}  // namespace crowdtrain::train
