// RoutingTable: splitting, LRU order, ping-before-evict with the replacement cache, peers that
// change id, nearest() against brute force, stale buckets and refresh targets.
#include "core/dht/routing_table.h"

#include <gtest/gtest.h>
#include <algorithm>

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;

// An id whose first bit is `top` and whose last 32 bits are `n` (the far half when top is set).
DhtId make_id(bool top, uint32_t n) {
  DhtId id;
  id.set_bit(0, top);
  for (int i = 0; i < 32; ++i) id.set_bit(159 - i, (n >> i) & 1);
  return id;
}

TEST(RoutingTable, SplitsOnlyAlongItsOwnIdInStrictMode) {
  Rng rng(1);
  const DhtId self = DhtId::random(rng);
  RoutingTable t(self, RoutingTableOptions{20, 20, 0});
  std::vector<Contact> all;
  for (uint32_t i = 0; i < 2000; ++i) {
    Contact c{DhtId::random(rng), i};
    all.push_back(c);
    t.update(c, Time(i));
  }
  const auto& b = t.buckets();
  ASSERT_GT(b.size(), 5u);
  size_t own = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_LE(b[i].contacts.size(), 20u);
    if (i > 0) EXPECT_LT(b[i - 1].lo, b[i].lo);
    if (b[i].covers(self)) ++own;
    for (const Contact& c : b[i].contacts) EXPECT_EQ(t.bucket_index(c.id), i);
  }
  EXPECT_EQ(own, 1u);
  // Only the own bucket split: every other bucket's depth is one more than its shared prefix.
  for (const auto& bucket : b) {
    if (!bucket.covers(self)) EXPECT_EQ(bucket.lo.common_prefix_bits(self), bucket.depth - 1);
  }
  // nearest() matches brute force over the contacts the table holds.
  const DhtId target = DhtId::random(rng);
  std::vector<Contact> held;
  for (const auto& bucket : b)
    held.insert(held.end(), bucket.contacts.begin(), bucket.contacts.end());
  std::sort(held.begin(), held.end(),
            [&](const Contact& x, const Contact& y) { return closer(x.id, y.id, target); });
  held.resize(20);
  EXPECT_EQ(t.nearest(target, 20), held);
  EXPECT_EQ(all.size(), 2000u);
}

TEST(RoutingTable, RelaxedSplittingKeepsMoreContacts) {
  Rng rng(2);
  const DhtId self = DhtId::random(rng);
  RoutingTable strict(self, RoutingTableOptions{20, 20, 0});
  RoutingTable relaxed(self, RoutingTableOptions{20, 20, 5});
  for (uint32_t i = 0; i < 3000; ++i) {
    Contact c{DhtId::random(rng), i};
    strict.update(c, Time(0));
    relaxed.update(c, Time(0));
  }
  EXPECT_GT(relaxed.size(), strict.size());
  EXPECT_GT(relaxed.buckets().size(), strict.buckets().size());
}

TEST(RoutingTable, PingsTheLeastRecentlySeenBeforeEvicting) {
  const DhtId self = make_id(false, 0);
  RoutingTable t(self, RoutingTableOptions{4, 2, 0});
  // Four contacts in the far half fill its bucket; it does not hold self, so it cannot split.
  for (uint32_t i = 1; i <= 4; ++i) EXPECT_FALSE(t.update(Contact{make_id(true, i), i}, Time(i)));
  ASSERT_EQ(t.size(), 4u);
  // A refresh of contact 1 moves it to most recently seen: contact 2 is now the oldest.
  EXPECT_FALSE(t.update(Contact{make_id(true, 1), 1}, Time(5)));
  auto ping = t.update(Contact{make_id(true, 5), 5}, Time(6));
  ASSERT_TRUE(ping.has_value());
  EXPECT_EQ(ping->peer, 2u);
  EXPECT_FALSE(t.contains(make_id(true, 5)));  // waits in the replacement cache
  // While that ping is in flight, another newcomer asks for no second ping.
  EXPECT_FALSE(t.update(Contact{make_id(true, 6), 6}, Time(7)));
  // Contact 2 answers: it stays; the newcomers keep waiting.
  t.ping_answered(*ping, Time(8));
  EXPECT_TRUE(t.contains(make_id(true, 2)));
  EXPECT_FALSE(t.contains(make_id(true, 5)));
  // The next newcomer: the oldest is now contact 3; it fails, and the most recent newcomer takes
  // its place. The replacement cache holds 2: contact 5 was pushed out by 6 and 7.
  ping = t.update(Contact{make_id(true, 7), 7}, Time(9));
  ASSERT_TRUE(ping.has_value());
  EXPECT_EQ(ping->peer, 3u);
  EXPECT_TRUE(t.remove(ping->id));
  EXPECT_FALSE(t.contains(make_id(true, 3)));
  EXPECT_TRUE(t.contains(make_id(true, 7)));
  EXPECT_EQ(t.size(), 4u);
  const auto& bucket = t.buckets()[t.bucket_index(make_id(true, 1))];
  ASSERT_EQ(bucket.replacements.size(), 1u);
  EXPECT_EQ(bucket.replacements.front().peer, 6u);
  // Another failure promotes 6; then the cache is empty and a removal only shrinks the bucket.
  EXPECT_TRUE(t.remove(make_id(true, 4)));
  EXPECT_TRUE(t.contains(make_id(true, 6)));
  EXPECT_TRUE(t.remove(make_id(true, 1)));
  EXPECT_EQ(t.size(), 3u);
  EXPECT_FALSE(t.remove(make_id(true, 99)));
}

// Found by `crowdtrain swarm` (scenarios/swarm_dht.json, seed 19): after a loss burst a node had
// dropped every contact that timed out, was left with an empty table and never found anything
// again. A contact that fails now leaves only when a replacement takes its place.
TEST(RoutingTable, AFailedContactLeavesOnlyForAReplacement) {
  const DhtId self = make_id(false, 0);
  RoutingTable t(self, RoutingTableOptions{2, 2, 0});
  EXPECT_FALSE(t.update(Contact{make_id(true, 1), 1}, Time(1)));
  EXPECT_FALSE(t.update(Contact{make_id(true, 2), 2}, Time(2)));
  EXPECT_FALSE(t.remove_if_replaceable(make_id(true, 1)));  // nobody waits: it stays
  EXPECT_TRUE(t.contains(make_id(true, 1)));
  ASSERT_TRUE(t.update(Contact{make_id(true, 3), 3}, Time(3)).has_value());  // 3 waits
  EXPECT_TRUE(t.remove_if_replaceable(make_id(true, 1)));
  EXPECT_FALSE(t.contains(make_id(true, 1)));
  EXPECT_TRUE(t.contains(make_id(true, 3)));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_FALSE(t.remove_if_replaceable(make_id(true, 99)));
}

TEST(RoutingTable, IgnoresSelfAndReplacesAPeersOldId) {
  const DhtId self = make_id(false, 0);
  RoutingTable t(self, RoutingTableOptions{20, 20, 5});
  EXPECT_FALSE(t.update(Contact{self, 9}, Time(0)));
  EXPECT_EQ(t.size(), 0u);
  t.update(Contact{make_id(true, 1), 7}, Time(0));
  t.update(Contact{make_id(true, 2), 7}, Time(1));  // peer 7 restarted with a new id
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.contains(make_id(true, 1)));
  EXPECT_EQ(t.find(make_id(true, 2))->peer, 7u);
}

TEST(RoutingTable, ListsIdleBucketsForRefresh) {
  Rng rng(3);
  const DhtId self = DhtId::random(rng);
  RoutingTable t(self, RoutingTableOptions{20, 20, 0});
  for (uint32_t i = 0; i < 500; ++i) t.update(Contact{DhtId::random(rng), i}, Time(0));
  const size_t n = t.buckets().size();
  EXPECT_EQ(t.stale_buckets(Time(0) + 10s, 10s).size(), n);
  EXPECT_TRUE(t.stale_buckets(Time(0) + 9s, 10s).empty());
  // A lookup of an id in bucket 0 refreshes it; the rest stay idle.
  const DhtId target = t.random_id_in(0, rng);
  EXPECT_EQ(t.bucket_index(target), 0u);
  t.touch(target, Time(0) + 5s);
  auto stale = t.stale_buckets(Time(0) + 10s, 10s);
  EXPECT_EQ(stale.size(), n - 1);
  EXPECT_EQ(std::count(stale.begin(), stale.end(), 0u), 0);
  for (size_t i = 0; i < n; ++i) {
    for (int j = 0; j < 20; ++j) EXPECT_EQ(t.bucket_index(t.random_id_in(i, rng)), i);
  }
}

}  // namespace
}  // namespace crowdtrain::dht
