// What a beam search costs against the grid's size and dimensions (Learning@home's O(k·d·log N)
// argument, measured): a swarm of PEERS DHT nodes on the fake world (10 ms per message), every peer
// an expert server declaring its share of one grid's experts; then a trainer peer runs SEARCHES
// beam searches (one sample, k = 4, beam 4, random scores), counting the DHT requests it sends and
// the simulated time each takes. Side by side, the flat alternative: fetching every expert's
// record (get_many of every uid), what a client without the prefix dictionaries would have to do.
// Prints CSV (peers,dims,grid,experts,k,beam,searches,requests_mean,sim_ms_mean,kbytes_mean,
// flat_requests,flat_sim_ms,flat_kbytes: requests sent, simulated time, kB of responses received)
// on stdout; docs/benchmarks.md and docs/results/beam_search_cost.csv.
//   build/tests/beam_search_cost [--peers 64] [--searches 50]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dht/dht_app.h"
#include "core/moe/beam_search.h"
#include "core/moe/declare.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeRuntime;
using crowdtrain::testing::FakeWorld;

struct Swarm {
  FakeWorld world{3};
  std::vector<FakeRuntime*> runtimes;
  std::vector<std::unique_ptr<dht::DhtApp>> apps;
  explicit Swarm(PeerId peers) {
    world.latency = 10ms;
    Rng rng(8);
    for (PeerId i = 0; i < peers; ++i) {
      runtimes.push_back(&world.add_peer(i));
      std::vector<PeerId> initial;
      if (i > 0) initial = {0, static_cast<PeerId>(rng.uniform_int(i))};
      apps.push_back(std::make_unique<dht::DhtApp>(*runtimes.back(), dht::DhtId::random(rng),
                                                   dht::DhtOptions(), initial));
      world.attach(i, apps.back().get());
      world.schedule_at(Time(20ms) * i, [app = apps.back().get()] { app->start(); });
    }
    world.run_for(Time(20ms) * peers + 10s);
  }
  dht::DhtNode& node(PeerId i) { return apps[i]->node(); }
};

struct Cost {
  double requests = 0, sim_ms = 0, kbytes = 0;  // kbytes: responses received
};

// Requests (not responses) sent by `peer` while `run` goes on, and the simulated time it takes.
template <typename Start>
Cost measure(Swarm& s, PeerId peer, Start start) {
  int64_t requests = 0;
  double bytes = 0;
  s.world.filter = [&](PeerId from, PeerId to, Message& m) {
    if (from == peer && !m.is_response()) ++requests;
    if (to == peer && m.is_response()) bytes += static_cast<double>(m.wire_size());
    return true;
  };
  bool done = false;
  const Time t0 = s.world.now();
  Time t1 = t0;
  start([&] {
    done = true;
    t1 = s.world.now();
  });
  for (int i = 0; i < 600 && !done; ++i) s.world.run_for(100ms);
  s.world.filter = nullptr;
  return {static_cast<double>(requests), to_seconds(t1 - t0) * 1e3, bytes / 1e3};
}

void run_grid(PeerId peers, const std::vector<uint32_t>& sizes, int searches) {
  Swarm s(peers);
  const ExpertGrid grid{"g", sizes};
  auto assignment = assign_experts(grid, 0, peers - 1, 1, 5);  // the last peer searches
  CT_CHECK(assignment.ok());
  for (PeerId p = 0; p + 1 < peers; ++p) {
    s.node(p).store_many(declaration_items((*assignment)[p], p, s.world.now() + 36000s),
                         [](std::vector<size_t>) {});
  }
  s.world.run_for(60s);
  const PeerId me = peers - 1;
  DhtExpertDirectory directory(s.node(me));
  BeamSearch search(*s.runtimes[me], directory, grid,
                    BeamSearchOptions().beam_size(4).timeout(60s).negative_cache(0s));
  Rng rng(11);
  Cost total;
  for (int i = 0; i < searches; ++i) {
    std::vector<std::vector<double>> scores;
    for (uint32_t size : sizes) {
      scores.emplace_back(size);
      for (double& v : scores.back()) v = rng.normal();
    }
    const Cost c = measure(s, me, [&](std::function<void()> done) {
      search.find({scores}, 4, [done](Result<std::vector<std::vector<FoundExpert>>> r) {
        CT_CHECK(r.ok());
        done();
      });
    });
    total.requests += c.requests / searches;
    total.sim_ms += c.sim_ms / searches;
    total.kbytes += c.kbytes / searches;
  }
  Cost flat{-1, -1, -1};
  if (grid.count() <= 4096) {
    std::vector<std::string> all;
    for (uint64_t i = 0; i < grid.count(); ++i) all.push_back(grid.uid_at(i));
    flat = measure(s, me, [&](std::function<void()> done) {
      directory.get_many(all,
                         [done](std::vector<std::optional<ExpertDirectory::Dict>>) { done(); });
    });
  }
  std::string g;
  for (uint32_t v : sizes) g += (g.empty() ? "" : "x") + std::to_string(v);
  std::printf("%u,%zu,%s,%llu,4,4,%d,%.2f,%.1f,%.1f,%.0f,%.1f,%.1f\n", peers, sizes.size(),
              g.c_str(), static_cast<unsigned long long>(grid.count()), searches, total.requests,
              total.sim_ms, total.kbytes, flat.requests, flat.sim_ms, flat.kbytes);
  std::fflush(stdout);
}

}  // namespace
}  // namespace crowdtrain::moe

int main(int argc, char** argv) {
  uint32_t peers = 64;
  int searches = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--peers") == 0) peers = static_cast<uint32_t>(std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--searches") == 0) searches = std::atoi(argv[i + 1]);
  }
  std::printf(
      "peers,dims,grid,experts,k,beam,searches,requests_mean,sim_ms_mean,kbytes_mean,"
      "flat_requests,flat_sim_ms,flat_kbytes\n");
  const std::vector<std::vector<uint32_t>> grids{
      {16}, {256}, {4096}, {4, 4}, {16, 16}, {64, 64}, {16, 16, 16}, {256, 256}, {8, 8, 8, 8}};
  for (const auto& g : grids) crowdtrain::moe::run_grid(peers, g, searches);
  return 0;
}
