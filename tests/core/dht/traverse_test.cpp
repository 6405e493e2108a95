// The pure traversal on a synthetic network: 1,000 nodes with full-knowledge routing tables, some
// unresponsive (they time out), some late. No runtime: a small event queue stands in for the
// network.
#include "core/dht/traverse.h"

#include <gtest/gtest.h>
#include <algorithm>
#include <map>
#include <queue>

#include "core/dht/routing_table.h"

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;

class SyntheticNetwork {
 public:
  SyntheticNetwork(size_t n, uint64_t seed, double dead_fraction, double late_fraction)
      : rng_(seed) {
    for (size_t i = 0; i < n; ++i) {
      nodes_.push_back(Contact{DhtId::random(rng_), static_cast<PeerId>(i)});
      const double u = rng_.uniform01();
      behaviour_.push_back(u < dead_fraction                   ? kDead
                           : u < dead_fraction + late_fraction ? kLate
                                                               : kFast);
    }
    for (size_t i = 0; i < n; ++i) {
      tables_.emplace_back(nodes_[i].id, RoutingTableOptions{20, 20, 5});
      std::vector<size_t> order(n);
      for (size_t j = 0; j < n; ++j) order[j] = j;
      for (size_t j = n; j > 1; --j) std::swap(order[j - 1], order[rng_.uniform_int(j)]);
      for (size_t j : order) tables_[i].update(nodes_[j], Time(0));
    }
  }

  // The network as the traversal sees it; asks are logged to check the in-flight bounds.
  FindFn find_fn(const std::map<DhtId, PeerId>* holders = nullptr) {
    return [this, holders](const Contact& peer, const std::vector<DhtId>& keys, FindCallback cb) {
      ++requests;
      ++in_flight_;
      max_in_flight = std::max(max_in_flight, in_flight_);
      for (const DhtId& k : keys) {
        max_key_in_flight = std::max(max_key_in_flight, ++key_in_flight_[k]);
      }
      max_keys_per_call = std::max(max_keys_per_call, keys.size());
      const Behaviour b = behaviour_[peer.peer];
      const Time delay = b == kDead   ? 2s
                         : b == kLate ? 1500ms
                                      : Time(10ms + 5ms * rng_.uniform_int(8));
      at(now_ + delay, [this, peer, keys, cb, b, holders] {
        --in_flight_;
        for (const DhtId& k : keys) --key_in_flight_[k];
        if (b == kDead) return cb(std::nullopt);
        std::vector<FindReply> replies;
        for (const DhtId& k : keys) {
          FindReply r;
          r.nearest = tables_[peer.peer].nearest(k, 20);
          if (holders) {
            auto it = holders->find(k);
            r.stop = it != holders->end() && it->second == peer.peer;
          }
          replies.push_back(std::move(r));
        }
        cb(std::move(replies));
      });
    };
  }
  void run() {
    while (!queue_.empty()) {
      auto [t, id] = queue_.top();
      queue_.pop();
      now_ = t;
      auto fn = std::move(fns_[id]);
      fns_.erase(id);
      fn();
    }
  }
  // The responsive nodes among the k nearest to `key`, nearest first (brute force). Every routing
  // table still lists the dead nodes, so no peer ever names a live node beyond the overall k
  // nearest: these are what a lookup must find (Kademlia's guarantee), then the beam fills up with
  // others.
  std::vector<Contact> true_nearest(const DhtId& key, size_t k, const DhtId* exclude) const {
    std::vector<size_t> all;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!(exclude && nodes_[i].id == *exclude)) all.push_back(i);
    }
    std::sort(all.begin(), all.end(),
              [&](size_t a, size_t b) { return closer(nodes_[a].id, nodes_[b].id, key); });
    all.resize(std::min(k, all.size()));
    std::vector<Contact> live;
    for (size_t i : all) {
      if (behaviour_[i] != kDead) live.push_back(nodes_[i]);
    }
    return live;
  }
  const Contact& node(size_t i) const { return nodes_[i]; }
  bool dead(size_t i) const { return behaviour_[i] == kDead; }
  RoutingTable& table(size_t i) { return tables_[i]; }

  size_t requests = 0, max_in_flight = 0, max_key_in_flight = 0, max_keys_per_call = 0;

 private:
  enum Behaviour { kFast, kLate, kDead };
  void at(Time t, std::function<void()> fn) {
    queue_.push({t, next_});
    fns_[next_++] = std::move(fn);
  }
  Rng rng_;
  std::vector<Contact> nodes_;
  std::vector<Behaviour> behaviour_;
  std::vector<RoutingTable> tables_;
  Time now_{0};
  size_t in_flight_ = 0;
  std::map<DhtId, size_t> key_in_flight_;
  uint64_t next_ = 0;
  std::priority_queue<std::pair<Time, uint64_t>, std::vector<std::pair<Time, uint64_t>>,
                      std::greater<>>
      queue_;
  std::map<uint64_t, std::function<void()>> fns_;
};

// `found` starts with exactly `expected` and holds at most `beam` peers.
void expect_nearest(const std::vector<Contact>& found, const std::vector<Contact>& expected,
                    size_t beam) {
  ASSERT_GE(found.size(), expected.size());
  ASSERT_LE(found.size(), beam);
  EXPECT_EQ(std::vector<Contact>(found.begin(), found.begin() + expected.size()), expected);
}

std::vector<TraverseResult> run_lookup(SyntheticNetwork& net, size_t from, std::vector<DhtId> keys,
                                       TraverseOptions opts, TraverseStats* stats_out = nullptr,
                                       const std::map<DhtId, PeerId>* holders = nullptr) {
  TraverseInput in;
  in.keys = keys;
  in.exclude = net.node(from).id;
  for (const DhtId& k : keys) in.initial.push_back(net.table(from).nearest(k, 20));
  std::vector<TraverseResult> out;
  bool called = false;
  traverse(std::move(in), opts, net.find_fn(holders),
           [&](std::vector<TraverseResult> r, TraverseStats s) {
             EXPECT_FALSE(called);
             called = true;
             out = std::move(r);
             if (stats_out) *stats_out = s;
           });
  net.run();
  EXPECT_TRUE(called);
  return out;
}

TEST(Traverse, FindsTheTrueNearestDespiteDeadAndLateNodes) {
  SyntheticNetwork net(1000, 11, 0.10, 0.10);
  Rng rng(3);
  std::vector<DhtId> keys;
  for (int i = 0; i < 40; ++i) keys.push_back(DhtId::random(rng));
  size_t from = 0;
  while (net.dead(from)) ++from;
  TraverseStats stats;
  auto results = run_lookup(net, from, keys, TraverseOptions().with_max_keys_per_call(8), &stats);
  ASSERT_EQ(results.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const DhtId self = net.node(from).id;
    expect_nearest(results[i].nearest, net.true_nearest(keys[i], 20, &self), 20);
    if (::testing::Test::HasFailure()) FAIL() << "key " << i;
    EXPECT_GE(results[i].hops, 1);
    EXPECT_FALSE(results[i].stopped);
  }
  EXPECT_LE(net.max_key_in_flight, 3u);
  EXPECT_EQ(stats.max_key_in_flight, net.max_key_in_flight);
  EXPECT_LE(net.max_in_flight, TraverseOptions().max_in_flight);
  EXPECT_LE(net.max_keys_per_call, 8u);
  EXPECT_GT(net.max_keys_per_call, 1u) << "keys sharing a peer should share a request";
  EXPECT_EQ(stats.requests, net.requests);
  EXPECT_GT(stats.failures, 0u);
  EXPECT_LT(stats.requests, keys.size() * 60) << "a lookup should not ask most of the network";
}

TEST(Traverse, FindsExactlyTheKNearestWhenNobodyDies) {
  SyntheticNetwork net(1000, 21, 0.0, 0.2);
  Rng rng(8);
  std::vector<DhtId> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(DhtId::random(rng));
  auto results = run_lookup(net, 5, keys, TraverseOptions());
  const DhtId self = net.node(5).id;
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(results[i].nearest, net.true_nearest(keys[i], 20, &self)) << "key " << i;
  }
  EXPECT_LE(net.max_key_in_flight, 3u);
}

TEST(Traverse, AlphaOneNeverHasTwoRequestsForAKey) {
  SyntheticNetwork net(300, 12, 0.05, 0.05);
  Rng rng(4);
  const DhtId key = DhtId::random(rng);
  auto results = run_lookup(net, 1, {key}, TraverseOptions().with_alpha(1));
  const DhtId self = net.node(1).id;
  expect_nearest(results[0].nearest, net.true_nearest(key, 20, &self), 20);
  EXPECT_EQ(net.max_key_in_flight, 1u);
  EXPECT_EQ(net.max_in_flight, 1u);
}

TEST(Traverse, StopsAKeyWhenItsValueIsFound) {
  SyntheticNetwork net(500, 13, 0.0, 0.0);
  Rng rng(5);
  const DhtId key = DhtId::random(rng);
  const DhtId self = net.node(2).id;
  std::map<DhtId, PeerId> holders{{key, net.true_nearest(key, 1, &self)[0].peer}};
  TraverseStats with_value, without;
  auto found = run_lookup(net, 2, {key}, TraverseOptions(), &with_value, &holders);
  EXPECT_TRUE(found[0].stopped);
  auto plain = run_lookup(net, 2, {key}, TraverseOptions(), &without);
  EXPECT_FALSE(plain[0].stopped);
  EXPECT_LE(with_value.requests, without.requests);
}

TEST(Traverse, RequestBudgetAndEmptyInputs) {
  SyntheticNetwork net(400, 14, 0.0, 0.0);
  Rng rng(6);
  TraverseStats stats;
  auto r = run_lookup(net, 0, {DhtId::random(rng), DhtId::random(rng)},
                      TraverseOptions().with_max_requests(4), &stats);
  EXPECT_LE(stats.requests, 4u);
  EXPECT_EQ(r.size(), 2u);
  // No keys, or nobody to ask: done at once.
  bool done = false;
  traverse(TraverseInput{}, TraverseOptions(), net.find_fn(),
           [&](std::vector<TraverseResult> res, TraverseStats) { done = res.empty(); });
  EXPECT_TRUE(done);
  done = false;
  TraverseInput lonely;
  lonely.keys = {DhtId::random(rng)};
  traverse(lonely, TraverseOptions(), net.find_fn(),
           [&](std::vector<TraverseResult> res, TraverseStats) {
             done = res.size() == 1 && res[0].nearest.empty();
           });
  EXPECT_TRUE(done);
}

TEST(Traverse, WorksWithASynchronousNetwork) {
  SyntheticNetwork net(200, 15, 0.0, 0.0);
  Rng rng(7);
  const DhtId key = DhtId::random(rng);
  // A `find` that answers inside the call.
  FindFn sync = [&](const Contact& peer, const std::vector<DhtId>& keys, FindCallback cb) {
    std::vector<FindReply> replies;
    for (const DhtId& k : keys)
      replies.push_back(FindReply{net.table(peer.peer).nearest(k, 20), false});
    cb(std::move(replies));
  };
  TraverseInput in;
  in.keys = {key};
  in.initial = {net.table(0).nearest(key, 20)};
  in.exclude = net.node(0).id;
  std::vector<TraverseResult> out;
  traverse(in, TraverseOptions(), sync,
           [&](std::vector<TraverseResult> r, TraverseStats) { out = r; });
  ASSERT_EQ(out.size(), 1u);
  const DhtId self = net.node(0).id;
  EXPECT_EQ(out[0].nearest, net.true_nearest(key, 20, &self));
}

}  // namespace
}  // namespace crowdtrain::dht
