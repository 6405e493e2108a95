// DHT microbenchmarks (Google Benchmark): routing-table insert and nearest-k at 10^4 contacts, and
// one iterative lookup (traverse) over a synthetic network of 10^4 nodes whose routing tables are
// built in memory and answer synchronously. Deterministic inputs from a fixed seed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/dht/routing_table.h"
#include "core/dht/traverse.h"

namespace crowdtrain::dht {
namespace {

std::vector<Contact> contacts(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<Contact> out;
  for (size_t i = 0; i < n; ++i) out.push_back(Contact{DhtId::random(rng), PeerId(i)});
  return out;
}

// Inserting 10^4 contacts into an empty table (splits, full buckets, replacement caches).
void BM_RoutingTableInsert(benchmark::State& state) {
  const auto cs = contacts(state.range(0), 1);
  Rng rng(2);
  const DhtId self = DhtId::random(rng);
  for (auto _ : state) {
    RoutingTable t(self, RoutingTableOptions{});
    for (const Contact& c : cs) benchmark::DoNotOptimize(t.update(c, Time(1)));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RoutingTableInsert)->Arg(10000);

// nearest(target, 20) on a table that was offered 10^4 contacts.
void BM_RoutingTableNearest(benchmark::State& state) {
  const auto cs = contacts(state.range(0), 1);
  Rng rng(3);
  RoutingTable t(DhtId::random(rng), RoutingTableOptions{});
  for (const Contact& c : cs) t.update(c, Time(1));
  std::vector<DhtId> targets;
  for (int i = 0; i < 1024; ++i) targets.push_back(DhtId::random(rng));
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(t.nearest(targets[i++ % targets.size()], 20));
  state.counters["contacts_kept"] = static_cast<double>(t.size());
}
BENCHMARK(BM_RoutingTableNearest)->Arg(10000);

// Sorting 10^4 ids by XOR distance to a target: DhtId's inline word comparison against the byte
// array's lexicographic comparison (a libc memcmp call per comparison), which it replaced.
void sort_by_distance(benchmark::State& state, bool words) {
  const auto cs = contacts(state.range(0), 4);
  Rng rng(5);
  const DhtId target = DhtId::random(rng);
  std::vector<DhtId> d;
  for (const Contact& c : cs) d.push_back(c.id ^ target);
  for (auto _ : state) {
    std::vector<DhtId> v = d;
    if (words) {
      std::sort(v.begin(), v.end());
    } else {
      std::sort(v.begin(), v.end(),
                [](const DhtId& a, const DhtId& b) { return a.bytes() < b.bytes(); });
    }
    benchmark::DoNotOptimize(v.data());
  }
}
void BM_SortIdsWords(benchmark::State& state) { sort_by_distance(state, true); }
void BM_SortIdsByteArray(benchmark::State& state) { sort_by_distance(state, false); }
BENCHMARK(BM_SortIdsWords)->Arg(10000);
BENCHMARK(BM_SortIdsByteArray)->Arg(10000);

// One lookup of a random key over N in-memory nodes (each table offered 400 random others),
// answered synchronously: the cost of the pure traversal algorithm per lookup.
void BM_TraverseSynthetic(benchmark::State& state) {
  const size_t n = state.range(0);
  const auto cs = contacts(n, 4);
  std::vector<std::unique_ptr<RoutingTable>> tables;
  Rng rng(5);
  for (size_t i = 0; i < n; ++i) {
    tables.push_back(std::make_unique<RoutingTable>(cs[i].id, RoutingTableOptions{}));
    for (int j = 0; j < 400; ++j) tables[i]->update(cs[rng.uniform_int(n)], Time(1));
  }
  FindFn find = [&](const Contact& peer, const std::vector<DhtId>& keys, FindCallback cb) {
    std::vector<FindReply> replies(keys.size());
    for (size_t k = 0; k < keys.size(); ++k) {
      replies[k].nearest = tables[peer.peer]->nearest(keys[k], 20);
    }
    cb(std::move(replies));
  };
  double hops = 0, requests = 0;
  for (auto _ : state) {
    TraverseInput in;
    in.keys = {DhtId::random(rng)};
    const size_t start = rng.uniform_int(n);
    in.initial = {tables[start]->nearest(in.keys[0], 20)};
    in.exclude = cs[start].id;
    traverse(std::move(in), TraverseOptions(), find,
             [&](std::vector<TraverseResult> r, TraverseStats s) {
               hops += r[0].hops;
               requests += static_cast<double>(s.requests);
             });
  }
  state.counters["hops"] = benchmark::Counter(hops, benchmark::Counter::kAvgIterations);
  state.counters["requests"] = benchmark::Counter(requests, benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_TraverseSynthetic)->Arg(10000);

}  // namespace
}  // namespace crowdtrain::dht

BENCHMARK_MAIN();
