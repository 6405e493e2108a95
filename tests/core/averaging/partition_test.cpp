// Parts and chunks: spans cover the vector exactly, in order, and chunks respect the byte limit.
#include "core/averaging/partition.h"

#include <gtest/gtest.h>

#include "core/random.h"

namespace crowdtrain {
namespace {

TEST(Partition, PartSpans) {
  auto s = part_spans({3, 0, 5});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], (Span{0, 3}));
  EXPECT_EQ(s[1], (Span{3, 0}));
  EXPECT_EQ(s[2], (Span{3, 5}));
}

TEST(Partition, ChunkElements) {
  EXPECT_EQ(chunk_elements(kDefaultChunkBytes, 4.0, 0), 131072);
  EXPECT_EQ(chunk_elements(kDefaultChunkBytes, 2.0, 0), 262144);
  EXPECT_EQ(chunk_elements(kDefaultChunkBytes, 1.0, 1024), 523264);
  EXPECT_EQ(chunk_elements(16, 4.0, 100), 1);
  EXPECT_EQ(chunk_elements(3, 4.0, 0), 1);
}

TEST(Partition, ChunksCoverPartsExactly) {
  Rng rng(1);
  for (int trial = 0; trial < 300; ++trial) {
    const Span part{static_cast<int64_t>(rng.uniform_int(1000)),
                    static_cast<int64_t>(rng.uniform_int(5000))};
    const int64_t max = 1 + static_cast<int64_t>(rng.uniform_int(700));
    auto chunks = chunk_spans(part, max);
    EXPECT_EQ(static_cast<int64_t>(chunks.size()), chunk_count(part.size, max));
    int64_t at = part.offset;
    for (size_t k = 0; k < chunks.size(); ++k) {
      EXPECT_EQ(chunks[k].offset, at);
      EXPECT_GT(chunks[k].size, 0);
      EXPECT_LE(chunks[k].size, max);
      EXPECT_EQ(chunks[k], chunk_span(part, max, static_cast<int64_t>(k)));
      at += chunks[k].size;
    }
    EXPECT_EQ(at, part.offset + part.size);
  }
  EXPECT_TRUE(chunk_spans({5, 0}, 10).empty());
}

}  // namespace
}  // namespace crowdtrain
