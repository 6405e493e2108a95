// LiveKeySchedule: the DHT workload's store schedule and item names (workload.dht.keys
// "schedule"), which every peer computes for every other, agree with each other (ops_due vs
// store_time), name distinct items, and check answers strictly; "oracle" keys are refused where the
// world keeps no oracle.
#include "core/dht/dht_live_keys.h"

#include <gtest/gtest.h>

#include <set>

#include "core/dht/dht_workload.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::dht {
namespace {

DhtWorkloadOptions spec() {
  DhtWorkloadOptions s;
  s.store_rate_hz = 2;
  s.batch = 3;
  s.warmup_s = 1;
  s.dictionary_fraction = 0.5;
  s.dictionary_keys = 4;
  s.value_bytes = 32;
  return s;
}

TEST(LiveKeySchedule, OpsDueAgreesWithStoreTimes) {
  const DhtWorkloadOptions s = spec();
  LiveKeySchedule sched(s);
  for (PeerId p : {0u, 1u, 7u, 1000u}) {
    EXPECT_EQ(sched.ops_due(p, Time(0)), 0u);
    EXPECT_GE(sched.store_time(p, 0), from_seconds(1.0));
    EXPECT_LT(sched.store_time(p, 0), from_seconds(1.5));
    for (uint64_t n = 0; n < 50; ++n) {
      const Time t = sched.store_time(p, n);
      EXPECT_EQ(sched.ops_due(p, t), n + 1) << "peer " << p << " op " << n;
      EXPECT_EQ(sched.ops_due(p, t - Time(1)), n) << "peer " << p << " op " << n;
      EXPECT_EQ(sched.store_time(p, n + 1) - t, from_seconds(0.5));
    }
  }
  DhtWorkloadOptions off = s;
  off.store_rate_hz = 0;
  LiveKeySchedule none(off);
  EXPECT_EQ(none.ops_due(3, from_seconds(1e6)), 0u);
  EXPECT_EQ(none.store_time(3, 0), Time::max());
}

TEST(LiveKeySchedule, ItemsAreDistinctAndAnswersAreCheckedStrictly) {
  const DhtWorkloadOptions s = spec();
  LiveKeySchedule sched(s);
  std::set<std::pair<std::string, std::string>> names;
  int dict = 0;
  for (PeerId p = 0; p < 4; ++p) {
    for (uint64_t n = 0; n < 20; ++n) {
      for (uint32_t b = 0; b < s.batch; ++b) {
        const LiveItem it = sched.item(p, n, b);
        EXPECT_TRUE(names.emplace(it.key, it.subkey.value_or("")).second) << it.key;
        EXPECT_GE(it.value.size(), s.value_bytes);
        const LiveItem again = sched.item(p, n, b);  // a pure function: others compute the same
        EXPECT_EQ(again.key, it.key);
        EXPECT_EQ(again.value, it.value);
        if (!it.subkey) continue;
        ++dict;
        EXPECT_EQ(it.key.rfind("dict/", 0), 0u) << it.key;
      }
    }
  }
  EXPECT_GT(dict, 60);  // about half of 240
  EXPECT_LT(dict, 180);

  LiveItem plain{"live/1/2.0", std::nullopt, "v1/2.0"};
  DhtValue v;
  v.plain = ValueEntry{"v1/2.0", Time(5)};
  EXPECT_TRUE(LiveKeySchedule::matches(plain, v));
  v.plain.value = "v1/2.1";
  EXPECT_FALSE(LiveKeySchedule::matches(plain, v));

  LiveItem entry{"dict/0", std::string("peer1/2.0"), "v1/2.0"};
  DhtValue d;
  d.is_dictionary = true;
  d.dictionary["peer3/0.0"] = ValueEntry{"v3/0.0", Time(5)};
  EXPECT_FALSE(LiveKeySchedule::matches(entry, d));   // the dictionary lacks the item's subkey:
  EXPECT_FALSE(LiveKeySchedule::has_slot(entry, d));  // a miss, not a wrong value
  d.dictionary["peer1/2.0"] = ValueEntry{"v1/2.9", Time(5)};
  EXPECT_TRUE(LiveKeySchedule::has_slot(entry, d));  // a wrong value in the item's place
  EXPECT_FALSE(LiveKeySchedule::matches(entry, d));
  d.dictionary["peer1/2.0"] = ValueEntry{"v1/2.0", Time(5)};
  EXPECT_TRUE(LiveKeySchedule::matches(entry, d));
  EXPECT_TRUE(LiveKeySchedule::has_slot(plain, v));
  EXPECT_TRUE(LiveKeySchedule::has_slot(entry, v));  // a plain value where a dictionary belongs
  EXPECT_FALSE(LiveKeySchedule::matches(plain, d));
  EXPECT_FALSE(LiveKeySchedule::matches(entry, v));
}

TEST(DhtWorkload, OracleKeysNeedAWorldThatKeepsTheOracle) {
  testing::FakeWorld world;
  DhtWorkloadOptions o = spec();
  WorkloadContext alone;  // no shared state: the live world's context
  auto refused = make_dht_workload_app(world.add_peer(0), o, alone, 4);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("workload.dht.keys"), std::string::npos) << refused.error();
  o.keys = DhtKeys::kSchedule;
  EXPECT_TRUE(make_dht_workload_app(world.add_peer(1), o, alone, 4).ok());
  WorkloadContext with_oracle;
  with_oracle.shared = make_dht_workload_shared(4);
  o.keys = DhtKeys::kOracle;
  EXPECT_TRUE(make_dht_workload_app(world.add_peer(2), o, with_oracle, 4).ok());
}

}  // namespace
}  // namespace crowdtrain::dht
