// DhtNode end to end on the fake world: 50-200 nodes bootstrap, store and get (plain and dictionary
// values) with every operation succeeding; the same with lost and late messages; with replica
// holders dead; republishing, bucket refresh, caching along the lookup path; determinism.
#include "core/dht/node.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/dht/dht_app.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeWorld;

// `n` DHT peers (peer ids 0..n-1) joining 20 ms apart, each bootstrapping from peer 0 and one
// earlier peer.
struct Swarm {
  FakeWorld world;
  std::vector<std::unique_ptr<DhtApp>> apps;

  Swarm(size_t n, uint64_t seed, DhtOptions options = DhtOptions()) : world(seed) {
    Rng rng(derive_seed(seed, "dht-test"));
    for (size_t i = 0; i < n; ++i) {
      auto& rt = world.add_peer(static_cast<PeerId>(i));
      std::vector<PeerId> initial;
      if (i > 0) initial = {0, static_cast<PeerId>(rng.uniform_int(i))};
      apps.push_back(std::make_unique<DhtApp>(rt, DhtId::random(rng), options, initial));
      world.attach(static_cast<PeerId>(i), apps.back().get());
      world.schedule_at(Time(20ms) * static_cast<int64_t>(i),
                        [app = apps.back().get()] { app->start(); });
    }
    world.run_for(Time(20ms) * static_cast<int64_t>(n) + 10s);
  }
  DhtNode& node(size_t i) { return apps[i]->node(); }
  bool alive(size_t i) const { return apps[i] != nullptr; }
  void kill(size_t i) {
    world.detach(static_cast<PeerId>(i));
    apps[i].reset();
  }
  // How many live peers hold `key` in their primary storage.
  size_t holders(const std::string& key) {
    size_t n = 0;
    for (size_t i = 0; i < apps.size(); ++i) {
      if (alive(i) && node(i).storage().get(DhtId::from_key(key))) ++n;
    }
    return n;
  }
  int64_t counter(const char* name) { return world.sink.counter(name); }
  Time expiry() { return world.now() + 3600s; }
};

std::string key_of(int i) { return "key" + std::to_string(i); }
std::string value_of(int i) { return "value-" + std::to_string(i * 7919); }

// Stores keys 0..count-1 from peers picked by `rng`; returns per key the replicas that took it.
std::vector<size_t> store_keys(Swarm& s, int count, Rng& rng) {
  std::vector<size_t> stored(count, 999);
  for (int i = 0; i < count; ++i) {
    size_t from;
    do from = rng.uniform_int(s.apps.size());
    while (!s.alive(from));
    s.node(from).store(key_of(i), value_of(i), s.expiry(),
                       [&stored, i](size_t n) { stored[i] = n; });
  }
  s.world.run_for(30s);
  return stored;
}

// Gets keys 0..count-1 from live peers picked by `rng`; returns how many came back right.
int get_keys(Swarm& s, int count, Rng& rng, std::vector<std::string>* errors = nullptr) {
  int ok = 0;
  for (int i = 0; i < count; ++i) {
    size_t from;
    do from = rng.uniform_int(s.apps.size());
    while (!s.alive(from));
    s.node(from).get(key_of(i), [&ok, errors, i](Result<DhtValue> r) {
      if (r.ok() && !r->is_dictionary && r->plain.value == value_of(i)) {
        ++ok;
      } else if (errors) {
        errors->push_back(r.ok() ? "wrong value for " + key_of(i) : r.error());
      }
    });
  }
  s.world.run_for(30s);
  return ok;
}

TEST(DhtNode, HundredNodesStoreAndGetEverything) {
  Swarm s(100, 1);
  for (auto& app : s.apps) {
    ASSERT_TRUE(app->bootstrapped().has_value());
    EXPECT_TRUE(app->bootstrapped()->ok()) << app->bootstrapped()->message();
    EXPECT_GE(app->node().routing_table().size(), 20u);
  }
  Rng rng(2);
  auto stored = store_keys(s, 100, rng);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(stored[i], 5u) << key_of(i);
    EXPECT_EQ(s.holders(key_of(i)), 5u) << key_of(i);
  }
  std::vector<std::string> errors;
  EXPECT_EQ(get_keys(s, 100, rng, &errors), 100) << (errors.empty() ? "" : errors[0]);
  EXPECT_EQ(s.counter("dht_store_ok"), 100);
  EXPECT_EQ(s.counter("dht_get_failed"), 0);
  EXPECT_EQ(s.counter("dht_rpc_failed"), 0);
  EXPECT_GT(s.world.sink.sample_count("dht_lookup_hops"), 100u);
  EXPECT_GT(s.world.sink.sample_count("dht_messages_per_lookup"), 0u);
  EXPECT_LT(s.world.sink.percentile("dht_messages_per_lookup", 0.5), 30.0);
  // A missing key is an error that names it.
  std::optional<Result<DhtValue>> missing;
  s.node(3).get("nobody-stored-this", [&](Result<DhtValue> r) { missing = std::move(r); });
  s.world.run_for(10s);
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->ok());
  EXPECT_NE(missing->error().find("nobody-stored-this"), std::string::npos) << missing->error();
}

TEST(DhtNode, DictionaryValuesCollectEveryPeersSubkey) {
  Swarm s(60, 3);
  // 30 peers declare themselves under one key, each with its own subkey (hivemind's expert prefix).
  int stored = 0;
  for (int i = 0; i < 30; ++i) {
    s.node(i).store_subkey("ffn.3.", std::to_string(i), "peer" + std::to_string(i), s.expiry(),
                           [&stored](size_t n) { stored += n > 0; });
  }
  s.world.run_for(30s);
  EXPECT_EQ(stored, 30);
  for (size_t from : {0u, 31u, 59u}) {
    std::optional<Result<DhtValue>> got;
    s.node(from).get("ffn.3.", [&](Result<DhtValue> r) { got = std::move(r); });
    s.world.run_for(10s);
    ASSERT_TRUE(got && got->ok()) << (got ? got->error() : "no answer");
    ASSERT_TRUE(got->value().is_dictionary);
    EXPECT_EQ(got->value().dictionary.size(), 30u) << "from " << from;
    EXPECT_EQ(got->value().dictionary.at("7").value, "peer7");
  }
  // An older entry does not replace a newer one; a newer one does.
  const Time later = s.expiry() + 100s;
  size_t n_old = 9, n_new = 9;
  s.node(40).store_subkey("ffn.3.", "7", "stale", s.world.now() + 60s,
                          [&](size_t n) { n_old = n; });
  s.node(41).store_subkey("ffn.3.", "8", "fresh", later, [&](size_t n) { n_new = n; });
  s.world.run_for(10s);
  EXPECT_EQ(n_old, 0u);
  EXPECT_EQ(n_new, 5u);
  std::optional<Result<DhtValue>> got;
  s.node(50).get_many(
      {"ffn.3."}, [&](std::vector<Result<DhtValue>> r) { got = r[0]; }, true);
  s.world.run_for(10s);
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ(got->value().dictionary.at("7").value, "peer7");
  EXPECT_EQ(got->value().dictionary.at("8").value, "fresh");
}

TEST(DhtNode, SurvivesLostAndLateMessages) {
  Swarm s(120, 4, DhtOptions().rpc_retries(2).rpc_timeout(1s));
  s.world.loss = 0.05;
  Rng late(9);
  // 10% of messages arrive late: 100 ms to 2.5 s (past the time-out for some).
  s.world.filter = [&](PeerId from, PeerId to, Message& m) {
    if (m.flags & 0x80) {
      m.flags &= static_cast<uint8_t>(~0x80);
      return true;
    }
    if (!late.bernoulli(0.1)) return true;
    Message copy = m;
    copy.flags |= 0x80;
    const Time delay = from_millis(100 + static_cast<double>(late.uniform_int(2400)));
    s.world.schedule_at(s.world.now() + delay,
                        [&s, from, to, copy] { s.world.send(from, to, copy); });
    return false;
  };
  Rng rng(5);
  auto stored = store_keys(s, 100, rng);
  for (int i = 0; i < 100; ++i) EXPECT_GE(stored[i], 3u) << key_of(i);
  std::vector<std::string> errors;
  EXPECT_EQ(get_keys(s, 100, rng, &errors), 100) << (errors.empty() ? "" : errors[0]);
  EXPECT_GT(s.counter("rpc_retries"), 0);
  EXPECT_GT(s.counter("rpc_unmatched_responses"), 0) << "late responses after their time-out";
}

TEST(DhtNode, GetsSucceedFromReplicasAfterHoldersDie) {
  Swarm s(100, 6, DhtOptions().blacklist_time(60s).blacklist_max_time(120s));
  Rng rng(7);
  auto stored = store_keys(s, 60, rng);
  for (int i = 0; i < 60; ++i) ASSERT_EQ(stored[i], 5u);
  // Kill 4 of the 5 holders of key0 and 10 more random peers.
  std::vector<size_t> killed;
  for (size_t i = 0; i < s.apps.size() && killed.size() < 4; ++i) {
    if (s.node(i).storage().get(DhtId::from_key(key_of(0)))) killed.push_back(i);
  }
  while (killed.size() < 14) {
    const size_t i = rng.uniform_int(s.apps.size());
    if (std::find(killed.begin(), killed.end(), i) == killed.end()) killed.push_back(i);
  }
  for (size_t i : killed) s.kill(i);
  EXPECT_EQ(s.holders(key_of(0)), 1u);
  std::vector<std::string> errors;
  EXPECT_EQ(get_keys(s, 60, rng, &errors), 60) << (errors.empty() ? "" : errors[0]);
  EXPECT_GT(s.counter("dht_rpc_failed"), 0);
  // Peers that asked a dead one blacklisted it and dropped it from their routing tables.
  size_t blacklisting = 0;
  for (size_t i = 0; i < s.apps.size(); ++i) {
    if (s.alive(i) && s.node(i).blacklisted(static_cast<PeerId>(killed[0]))) ++blacklisting;
  }
  EXPECT_GT(blacklisting, 0u);
}

TEST(DhtNode, RepublishRestoresReplicasAndIdleBucketsAreRefreshed) {
  Swarm s(80, 8, DhtOptions().replicas(4).republish_period(30s).refresh_period(20s));
  size_t stored = 0;
  s.node(10).store("precious", "v", s.expiry(), [&](size_t n) { stored = n; });
  s.world.run_for(5s);
  ASSERT_EQ(stored, 4u);
  size_t left = 0;
  for (size_t i = 0; i < s.apps.size(); ++i) {
    if (!s.node(i).storage().get(DhtId::from_key("precious"))) continue;
    if (left++ > 0) s.kill(i);  // keep one holder
  }
  ASSERT_EQ(s.holders("precious"), 1u);
  s.world.run_for(70s);
  EXPECT_GE(s.holders("precious"), 4u);
  EXPECT_GT(s.counter("dht_republished"), 0);
  EXPECT_GT(s.counter("dht_bucket_refreshes"), 0);
}

TEST(DhtNode, GetCachesTheValueAtTheNearestPeerThatLackedIt) {
  Swarm s(100, 10, DhtOptions().replicas(1));
  size_t stored = 0;
  s.node(0).store("popular", "v", s.expiry(), [&](size_t n) { stored = n; });
  s.world.run_for(5s);
  ASSERT_EQ(stored, 1u);
  int ok = 0;
  for (size_t from : {20u, 40u, 60u}) {
    s.node(from).get("popular", [&](Result<DhtValue> r) { ok += r.ok(); });
    s.world.run_for(5s);
  }
  EXPECT_EQ(ok, 3);
  EXPECT_GT(s.counter("dht_cache_stores"), 0);
  size_t cached = 0;
  for (size_t i = 0; i < s.apps.size(); ++i) {
    if (s.node(i).cache().get(DhtId::from_key("popular"))) ++cached;
  }
  EXPECT_GE(cached, 1u);
}

// Kademlia's hand-off: keys stored by the first peer while it was alone reach the `replicas`
// peers nearest them as the others join (republishing off, so nothing else could move them);
// without the hand-off they stay at the first peer only.
TEST(DhtNode, KeysStoredWhileAloneReachTheNearestPeersThatJoinLater) {
  for (bool handoff : {true, false}) {
    const auto options = DhtOptions().republish_period(Time(0)).handoff(handoff);
    FakeWorld world(14);
    Rng rng(15);
    std::vector<std::unique_ptr<DhtApp>> apps;
    for (size_t i = 0; i < 60; ++i) {
      auto& rt = world.add_peer(static_cast<PeerId>(i));
      std::vector<PeerId> initial;
      if (i > 0) initial = {0, static_cast<PeerId>(rng.uniform_int(i))};
      apps.push_back(std::make_unique<DhtApp>(rt, DhtId::random(rng), options, initial));
      world.attach(static_cast<PeerId>(i), apps.back().get());
      world.schedule_at(Time(20ms) * static_cast<int64_t>(i + 1),
                        [app = apps.back().get()] { app->start(); });
    }
    world.schedule_at(Time(30ms), [&] {  // peer 0 alone
      for (int k = 0; k < 30; ++k) {
        apps[0]->node().store(key_of(k), value_of(k), world.now() + 3600s, [](size_t) {});
      }
    });
    world.run_for(20s);
    for (int k = 0; k < 30; ++k) {
      const DhtId key = DhtId::from_key(key_of(k));
      std::vector<size_t> order(apps.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return closer(apps[a]->node().id(), apps[b]->node().id(), key);
      });
      size_t nearest_holding = 0, holders = 0;
      for (size_t r = 0; r < order.size(); ++r) {
        const bool holds = apps[order[r]]->node().storage().get(key).has_value();
        holders += holds;
        if (r < 5) nearest_holding += holds;
      }
      if (handoff) {
        EXPECT_GE(nearest_holding, 4u) << key_of(k);
      } else {
        EXPECT_EQ(holders, 1u) << key_of(k);
      }
    }
    EXPECT_EQ(world.sink.counter("dht_handed_off") > 0, handoff);
  }
}

// A node dropped after a time-out and met again had its hand-off the first time: handing every
// record off at each re-meeting floods a congested swarm (the home-links throughput runs).
TEST(DhtNode, AHandOffGoesOnlyToNodesMetForTheFirstTime) {
  const auto options = DhtOptions().republish_period(Time(0)).handoff(true).rpc_timeout(1s);
  FakeWorld world(16);
  Rng rng(17);
  DhtApp a(world.add_peer(0), DhtId::random(rng), options, {});
  DhtApp b(world.add_peer(1), DhtId::random(rng), options, {0});
  world.attach(0, &a);
  world.attach(1, &b);
  a.start();
  for (int k = 0; k < 10; ++k) a.node().store(key_of(k), value_of(k), 3600s, [](size_t) {});
  world.run_for(1s);
  b.start();
  world.run_for(2s);
  EXPECT_EQ(world.sink.counter("dht_handed_off"), 10);
  ASSERT_TRUE(a.node().routing_table().contains(b.node().id()));
  // B stops answering A: A's next lookup times out on B, which stays in A's table (its bucket has
  // no replacement: RoutingTable::remove_if_replaceable) but is blacklisted for a while.
  world.filter = [](PeerId from, PeerId, Message&) { return from != 1; };
  a.node().get("absent", [](Result<DhtValue>) {});
  world.run_for(5s);
  ASSERT_TRUE(a.node().blacklisted(1));
  ASSERT_GE(world.sink.counter("dht_failed_contact_kept"), 1);
  // B speaks again and bootstraps anew: A meets it again, and hands nothing off a second time.
  world.filter = nullptr;
  b.node().bootstrap({0}, [](Status) {});
  world.run_for(5s);
  EXPECT_TRUE(a.node().routing_table().contains(b.node().id()));
  EXPECT_EQ(world.sink.counter("dht_handed_off"), 10);
}

TEST(DhtNode, TwoHundredNodesBatchedStoreManyAndGetMany) {
  Swarm s(200, 12);
  // hivemind's benchmark shape: records stored and fetched in batches of 64, one traversal each.
  std::vector<StoreItem> items;
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) {
    items.push_back(StoreItem{key_of(i), std::nullopt, value_of(i), s.expiry()});
    keys.push_back(key_of(i));
  }
  std::vector<size_t> stored;
  s.node(7).store_many(items, [&](std::vector<size_t> n) { stored = std::move(n); });
  s.world.run_for(30s);
  ASSERT_EQ(stored.size(), 64u);
  for (size_t n : stored) EXPECT_EQ(n, 5u);
  std::vector<Result<DhtValue>> got;
  const int64_t before = s.counter("dht_find_requests");
  s.node(150).get_many(keys, [&](std::vector<Result<DhtValue>> r) { got = std::move(r); });
  s.world.run_for(30s);
  ASSERT_EQ(got.size(), 64u);
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].error();
    EXPECT_EQ(got[i].value().plain.value, value_of(i));
  }
  // Keys that share peers share requests: fewer find messages than keys.
  const int64_t finds = s.counter("dht_find_requests") - before;
  EXPECT_LT(finds, 64) << finds << " find requests for 64 keys";
}

// Everything a run observes, for comparing two runs.
std::string fingerprint(uint64_t seed) {
  Swarm s(50, seed, DhtOptions().rpc_retries(1));
  s.world.loss = 0.03;
  Rng rng(seed);
  auto stored = store_keys(s, 40, rng);
  std::vector<std::string> errors;
  const int ok = get_keys(s, 40, rng, &errors);
  std::string out = "ok=" + std::to_string(ok) + " sent=" + std::to_string(s.world.sent);
  for (size_t n : stored) out += " " + std::to_string(n);
  for (const auto& [name, v] : s.world.sink.counters()) out += " " + name + "=" + std::to_string(v);
  out += " p50=" + std::to_string(s.world.sink.percentile("dht_lookup_ms", 0.5));
  return out;
}

TEST(DhtNode, SameSeedSameRun) {
  const std::string a = fingerprint(21);
  EXPECT_EQ(a, fingerprint(21));
  EXPECT_NE(a, fingerprint(22));
  EXPECT_NE(a.find("ok=40"), std::string::npos) << a;
}

}  // namespace
}  // namespace crowdtrain::dht
