// Storage: expirations, the later-expiration-wins rule, dictionary subkeys, limits, eviction.
#include "core/dht/storage.h"

#include <gtest/gtest.h>

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  Time now{0};
  Storage s{StorageLimits{}, [this] { return now; }};
  DhtId key = DhtId::from_key("k");
};

TEST(Storage, LaterExpirationWins) {
  Fixture f;
  ASSERT_TRUE(f.s.store(f.key, "a", 10s).ok());
  Status older = f.s.store(f.key, "b", 5s);
  ASSERT_FALSE(older.ok());
  EXPECT_NE(older.message().find("expiring later"), std::string::npos) << older.message();
  EXPECT_EQ(f.s.get(f.key)->plain.value, "a");
  ASSERT_TRUE(f.s.store(f.key, "c", 20s).ok());
  EXPECT_EQ(f.s.get(f.key)->plain, (ValueEntry{"c", 20s}));
  ASSERT_TRUE(f.s.store(f.key, "d", 20s).ok());  // same expiration: the newer store replaces
  EXPECT_EQ(f.s.get(f.key)->plain.value, "d");
}

TEST(Storage, ExpiresOnReadAndRefusesExpiredValues) {
  Fixture f;
  f.now = 5s;
  EXPECT_FALSE(f.s.store(f.key, "x", 5s).ok());
  EXPECT_FALSE(f.s.store(f.key, "x", 1s).ok());
  ASSERT_TRUE(f.s.store(f.key, "x", 8s).ok());
  EXPECT_EQ(f.s.size(), 1u);
  f.now = 8s;
  EXPECT_FALSE(f.s.get(f.key).has_value());
  EXPECT_EQ(f.s.size(), 0u);
  // Once expired, an older value may be stored again.
  ASSERT_TRUE(f.s.store(f.key, "y", 9s).ok());
  ASSERT_TRUE(f.s.store(DhtId::from_key("other"), "z", 9s).ok());
  f.now = 10s;
  EXPECT_EQ(f.s.purge(), 2u);
  EXPECT_EQ(f.s.size(), 0u);
}

TEST(Storage, DictionarySubkeysExpireOneByOne) {
  Fixture f;
  ASSERT_TRUE(f.s.store_subkey(f.key, "a", "1", 10s).ok());
  ASSERT_TRUE(f.s.store_subkey(f.key, "b", "2", 20s).ok());
  EXPECT_FALSE(f.s.store_subkey(f.key, "a", "old", 5s).ok());
  ASSERT_TRUE(f.s.store_subkey(f.key, "a", "3", 15s).ok());
  auto v = f.s.get(f.key);
  ASSERT_TRUE(v && v->is_dictionary);
  EXPECT_EQ(v->dictionary.size(), 2u);
  EXPECT_EQ(v->dictionary.at("a"), (ValueEntry{"3", 15s}));
  EXPECT_EQ(v->expiration(), 20s);
  f.now = 16s;
  v = f.s.get(f.key);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->dictionary.size(), 1u);
  EXPECT_EQ(v->dictionary.count("b"), 1u);
  f.now = 20s;
  EXPECT_FALSE(f.s.get(f.key).has_value());
}

TEST(Storage, PlainAndDictionaryReplaceEachOtherByExpiration) {
  Fixture f;
  ASSERT_TRUE(f.s.store(f.key, "plain", 10s).ok());
  EXPECT_FALSE(f.s.store_subkey(f.key, "a", "1", 5s).ok());  // the plain value lives longer
  ASSERT_TRUE(f.s.store_subkey(f.key, "a", "1", 12s).ok());  // replaces it by a dictionary
  EXPECT_TRUE(f.s.get(f.key)->is_dictionary);
  ASSERT_TRUE(f.s.store_subkey(f.key, "b", "2", 30s).ok());
  EXPECT_FALSE(f.s.store(f.key, "plain", 20s).ok());  // older than the dictionary's latest entry
  ASSERT_TRUE(f.s.store(f.key, "plain", 40s).ok());
  EXPECT_FALSE(f.s.get(f.key)->is_dictionary);
}

TEST(Storage, LimitsRefuseWithAReason) {
  Time now{0};
  StorageLimits limits;
  limits.max_keys = 2;
  limits.max_value_bytes = 8;
  limits.max_subkey_bytes = 4;
  limits.max_subkeys_per_key = 2;
  Storage s(limits, [&] { return now; });
  Status big = s.store(DhtId::from_key("a"), std::string(9, 'x'), 10s);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.message().find("limit 8"), std::string::npos) << big.message();
  EXPECT_FALSE(s.store_subkey(DhtId::from_key("a"), "toolong", "v", 10s).ok());
  ASSERT_TRUE(s.store_subkey(DhtId::from_key("a"), "s1", "v", 10s).ok());
  ASSERT_TRUE(s.store_subkey(DhtId::from_key("a"), "s2", "v", 10s).ok());
  Status full = s.store_subkey(DhtId::from_key("a"), "s3", "v", 10s);
  EXPECT_NE(full.message().find("dictionary full"), std::string::npos) << full.message();
  ASSERT_TRUE(s.store(DhtId::from_key("b"), "v", 10s).ok());
  Status no_room = s.store(DhtId::from_key("c"), "v", 10s);
  EXPECT_NE(no_room.message().find("storage full"), std::string::npos) << no_room.message();
  EXPECT_EQ(s.size(), 2u);
  EXPECT_FALSE(s.get(DhtId::from_key("c")).has_value());
}

TEST(Storage, ACacheEvictsTheKeyExpiringFirst) {
  Time now{0};
  StorageLimits limits;
  limits.max_keys = 2;
  limits.evict_when_full = true;
  Storage s(limits, [&] { return now; });
  ASSERT_TRUE(s.store(DhtId::from_key("a"), "v", 30s).ok());
  ASSERT_TRUE(s.store(DhtId::from_key("b"), "v", 10s).ok());
  ASSERT_TRUE(s.store(DhtId::from_key("c"), "v", 20s).ok());
  EXPECT_TRUE(s.get(DhtId::from_key("a")).has_value());
  EXPECT_FALSE(s.get(DhtId::from_key("b")).has_value());
  EXPECT_TRUE(s.get(DhtId::from_key("c")).has_value());
}

TEST(DhtValue, MergeKeepsTheLaterEntry) {
  DhtValue a, b;
  a.is_dictionary = b.is_dictionary = true;
  a.dictionary = {{"x", {"1", 10s}}, {"y", {"2", 30s}}};
  b.dictionary = {{"x", {"3", 20s}}, {"z", {"4", 5s}}};
  a.merge(b);
  EXPECT_EQ(a.dictionary.size(), 3u);
  EXPECT_EQ(a.dictionary.at("x").value, "3");
  EXPECT_EQ(a.dictionary.at("y").value, "2");
  DhtValue plain;
  plain.plain = {"p", 100s};
  a.merge(plain);
  EXPECT_FALSE(a.is_dictionary);
  EXPECT_EQ(a.plain.value, "p");
}

}  // namespace
}  // namespace crowdtrain::dht
