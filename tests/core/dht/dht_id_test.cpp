// DhtId: SHA-1 test vectors, XOR distance, prefixes, raw-byte parsing.
#include "core/dht/dht_id.h"

#include <gtest/gtest.h>

#include "core/dht/sha1.h"

namespace crowdtrain::dht {
namespace {

TEST(Sha1, KnownVectors) {
  EXPECT_EQ(DhtId::from_key("").hex(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(DhtId::from_key("abc").hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(DhtId::from_key("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex(),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(DhtId::from_key(std::string(1000000, 'a')).hex(),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  // Lengths around the padding boundary (55, 56, 64 bytes) must not crash and must differ.
  EXPECT_NE(DhtId::from_key(std::string(55, 'x')), DhtId::from_key(std::string(56, 'x')));
  EXPECT_NE(DhtId::from_key(std::string(64, 'x')), DhtId::from_key(std::string(63, 'x')));
  EXPECT_EQ(DhtId::from_key(std::string(64, 'x')), DhtId::from_key(std::string(64, 'x')));
}

TEST(DhtId, XorDistanceIsAMetric) {
  Rng rng(5);
  for (int i = 0; i < 200; ++i) {
    DhtId a = DhtId::random(rng), b = DhtId::random(rng), c = DhtId::random(rng);
    EXPECT_EQ((a ^ a), DhtId());
    EXPECT_EQ((a ^ b), (b ^ a));
    EXPECT_EQ(((a ^ b) ^ (b ^ c)), (a ^ c));  // XOR's triangle: d(a,c) = d(a,b) ^ d(b,c)
    // Unidirectional: for a fixed target, distinct ids have distinct distances.
    if (a != b) EXPECT_NE((a ^ c), (b ^ c));
  }
}

TEST(DhtId, CloserAndPrefix) {
  DhtId target;  // all zeros
  DhtId near = DhtId::with_prefix(target, 0);
  near.set_bit(159, true);  // distance 1
  DhtId far;
  far.set_bit(0, true);  // distance 2^159
  EXPECT_TRUE(closer(near, far, target));
  EXPECT_FALSE(closer(far, near, target));
  EXPECT_EQ(near.common_prefix_bits(target), 159);
  EXPECT_EQ(far.common_prefix_bits(target), 0);
  EXPECT_EQ(target.common_prefix_bits(target), 160);
  EXPECT_TRUE(far.bit(0));
  EXPECT_FALSE(far.bit(1));
  DhtId p = DhtId::with_prefix(DhtId::from_key("abc"), 12);
  EXPECT_GE(p.common_prefix_bits(DhtId::from_key("abc")), 12);
  for (int i = 12; i < 160; ++i) EXPECT_FALSE(p.bit(i));
}

TEST(DhtId, FromBytes) {
  DhtId id = DhtId::from_key("k");
  auto back = DhtId::from_bytes(id.to_bytes(), "key");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), id);
  auto bad = DhtId::from_bytes("short", "sender id");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("sender id"), std::string::npos) << bad.error();
  EXPECT_NE(bad.error().find("got 5"), std::string::npos) << bad.error();
}

}  // namespace
}  // namespace crowdtrain::dht
