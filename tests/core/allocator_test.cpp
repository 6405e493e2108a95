// core/allocator.h: big blocks freed are kept for the next allocation of their size (bounded), and
// blocks of other sizes, small ones and LibTorch tensors behave as plain allocations.
#include "core/allocator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <set>
#include <vector>

namespace crowdtrain {
namespace {

TEST(Allocator, BigBlocksAreReusedBySize) {
  keep_freed_memory();
  ASSERT_TRUE(huge_blocks());
  const size_t big = size_t{40} << 20;
  uint8_t* first = nullptr;
  {
    auto a = alloc_bytes(big);
    first = a.get();
    std::memset(a.get(), 7, big);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (size_t{2} << 20), 0u);
  }
  auto again = alloc_bytes(big - 1000);  // the same 2 MiB-rounded size: the cached block
  EXPECT_EQ(again.get(), first);
  auto other = alloc_bytes(big * 2);  // another size: a fresh block
  EXPECT_NE(other.get(), first);
  std::memset(other.get(), 1, big * 2);
  again.reset();
  other.reset();
  // A LibTorch tensor of the same size made again reuses the block too.
  void* data = nullptr;
  {
    at::Tensor t = torch::empty({static_cast<int64_t>(big / 4)});
    data = t.data_ptr();
  }
  at::Tensor u = torch::zeros({static_cast<int64_t>(big / 4)});
  EXPECT_EQ(u.data_ptr(), data);
  EXPECT_EQ(u.sum().item<float>(), 0.0f);  // zeros() still zeroes a reused block
}

TEST(Allocator, TheCacheIsBounded) {
  keep_freed_memory();
  // Ten 48 MiB blocks freed at once: as many as fit in 256 MiB with what is cached already stay
  // cached; the rest go back to the system.
  const size_t size = size_t{48} << 20, cap = size_t{256} << 20;
  const size_t before = cached_block_bytes();
  ASSERT_LE(before, cap);
  std::vector<std::shared_ptr<uint8_t>> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(alloc_bytes(size));
  std::set<uint8_t*> held;
  for (auto& b : blocks) held.insert(b.get());
  blocks.clear();
  const size_t kept = (cap - before) / size;
  EXPECT_EQ(cached_block_bytes(), before + kept * size);
  int reused = 0;
  for (int i = 0; i < 10; ++i) {
    blocks.push_back(alloc_bytes(size));
    reused += held.count(blocks.back().get()) > 0;
  }
  EXPECT_GE(reused, static_cast<int>(kept));  // (the system may hand back a freed address too)
  EXPECT_EQ(cached_block_bytes(), before);
  // Small blocks work as ever.
  auto small = alloc_bytes(100);
  std::memset(small.get(), 0, 100);
}

}  // namespace
}  // namespace crowdtrain
