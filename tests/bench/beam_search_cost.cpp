// Beam search's cost against grid size and dimensions: Learning@home's argument that finding the
// top-k experts costs O(k·d·log N) DHT hops, nearly independent of how many experts the grid
// holds, measured — side by side with the flat baseline that fetches every expert's declaration.
//
// A swarm of `peers` DHT nodes on the fake world (tests/fake_runtime.h: 10 ms per message, so a
// request/response round trip is 20 ms of simulated time; no bandwidth model). Every peer is an
// expert server: after bootstrap every peer looks up ten random ids (warming routing tables), then
// full grids (each expert on one server, assign_experts) are declared with declaration_items +
// store_many. Then, per grid, `searches` beam searches with random gating
// scores (one sample each) run one after another, each from a random peer through a fresh
// BeamSearch over DhtExpertDirectory (default DHT options except the ones bench_dht_options names),
// and `baseline` flat scans get_many every expert's uid key from a random peer. Per search: the
// find RPCs the searching node sent (dht_find_requests), the keys asked (moe_beam_lookups, or the
// expert count for the scan), every message the world carried from the start of the search until
// the network fell quiet (responses and the DHT's caching stores included) and their bytes
// (Message::wire_size), and the simulated time from the call to its answer. Each beam result is
// checked against the exact top k (a full grid with beam >= k must give it).
//
//   beam_search_cost [--peers 64,256] [--more-peers 16,1024] [--searches 50] [--baseline 3]
//                    [--out FILE.csv] [--check]
// --peers: swarm sizes that run every grid; --more-peers: swarm sizes that run only the grids of
// 4096 experts (how the cost grows with the swarm).
//
// --check: a small sweep (32 peers, grids of 64 and 4096 experts in 2 dimensions) that exits 1
// unless every search is exact and every scan complete, the beam search's requests grow under 2x
// and the flat scan's bytes over 16x.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>
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
using Scores = std::vector<std::vector<std::vector<double>>>;
using Found = std::vector<std::vector<FoundExpert>>;

// Defaults, except: no background refresh or republish (every message in a search's window is
// the search's), a 1-D grid's single "prefix." key may hold every expert as a subkey, and the flat
// scan may ask for every expert in one traversal.
dht::DhtOptions bench_dht_options() {
  return dht::DhtOptions()
      .refresh_period(Time(0))
      .republish_period(Time(0))
      .max_subkeys_per_key(kMaxGridSize)
      .max_requests_per_lookup(size_t{1} << 22);
}

struct Swarm {
  FakeWorld world;
  std::vector<FakeRuntime*> runtimes;
  std::vector<std::unique_ptr<dht::DhtApp>> apps;
  uint64_t bytes = 0;  // wire bytes of every message sent

  Swarm(PeerId peers, uint64_t seed) : world(seed) {
    world.filter = [this](PeerId, PeerId, Message& m) {
      bytes += m.wire_size();
      return true;
    };
    Rng rng(seed + 1);
    for (PeerId i = 0; i < peers; ++i) {
      runtimes.push_back(&world.add_peer(i));
      std::vector<PeerId> initial;
      if (i > 0) initial = {0, static_cast<PeerId>(rng.uniform_int(i))};
      apps.push_back(std::make_unique<dht::DhtApp>(*runtimes.back(), dht::DhtId::random(rng),
                                                   bench_dht_options(), initial));
      world.attach(i, apps.back().get());
      world.schedule_at(Time(20ms) * i, [app = apps.back().get()] { app->start(); });
    }
    world.run_for(Time(20ms) * peers + 10s);
    warm_up(rng);
  }
  // Every peer looks up a few random ids (what bucket refreshes do over time), so that the grids
  // measured first do not meet routing tables fresher from bootstrap than the later ones.
  void warm_up(Rng& rng) {
    for (int round = 0; round < 10; ++round) {
      for (auto& app : apps) app->node().find_nearest(dht::DhtId::random(rng), 20, [](auto) {});
      world.run_for(10s);
    }
  }
  PeerId size() const { return static_cast<PeerId>(apps.size()); }
  dht::DhtNode& node(PeerId i) { return apps[i]->node(); }
  int64_t counter(const char* name) const { return world.sink.counter(name); }
};

// Declares the full grid, each expert on one server; returns the store items that no peer took.
size_t declare_grid(Swarm& s, const ExpertGrid& grid) {
  auto assignment = assign_experts(grid, 0, s.size(), 1, 11);
  CT_CHECK(assignment.ok());
  size_t failed = 0;
  for (PeerId p = 0; p < s.size(); ++p) {
    s.node(p).store_many(declaration_items((*assignment)[p], p, s.world.now() + 100h),
                         [&failed](std::vector<size_t> stored) {
                           for (size_t n : stored) failed += n == 0;
                         });
  }
  s.world.run_for(60s);
  return failed;
}

// What one search cost.
struct Cost {
  double requests = 0, lookups = 0, messages = 0, kbytes = 0, ms = 0;
  bool ok = false;  // exact top k (beam search) or every expert found (scan)
};

// Runs `start` (which calls its argument once, when the search answers) and measures it: the
// counters' growth from the start until the network is quiet again.
Cost measure(Swarm& s, const std::function<void(std::function<void()>)>& start) {
  const int64_t requests = s.counter("dht_find_requests");
  const uint64_t sent = s.world.sent, bytes = s.bytes;
  const Time t0 = s.world.now();
  std::optional<Time> answered;
  start([&] { answered = s.world.now(); });
  while (!answered && s.world.now() - t0 < 60s) s.world.run_for(1ms);
  CT_CHECK(answered.has_value());
  s.world.run_for(10s);  // late responses, caching stores
  Cost c;
  c.requests = static_cast<double>(s.counter("dht_find_requests") - requests);
  c.messages = static_cast<double>(s.world.sent - sent);
  c.kbytes = static_cast<double>(s.bytes - bytes) / 1024.0;
  c.ms = to_millis(*answered - t0);
  return c;
}

Scores random_scores(const ExpertGrid& grid, Rng& rng) {
  Scores s(1);
  for (uint32_t size : grid.sizes) {
    s[0].emplace_back(size);
    for (auto& v : s[0].back()) v = rng.normal();
  }
  return s;
}

// The exact best k scores of a full grid: every expert's summed score, sorted.
std::vector<double> exact_top(const ExpertGrid& grid, const std::vector<std::vector<double>>& sc,
                              size_t k) {
  std::vector<double> all{0.0};
  for (size_t d = 0; d < grid.dims(); ++d) {
    std::vector<double> next;
    next.reserve(all.size() * sc[d].size());
    for (double a : all) {
      for (double b : sc[d]) next.push_back(a + b);
    }
    all = std::move(next);
  }
  k = std::min(k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    std::greater<double>());
  all.resize(k);
  return all;
}

bool same_scores(const std::vector<FoundExpert>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::abs(got[i].score - want[i]) > 1e-9) return false;
  }
  return true;
}

Cost one_beam_search(Swarm& s, const ExpertGrid& grid, size_t k, size_t beam, Rng& rng) {
  const PeerId from = static_cast<PeerId>(rng.uniform_int(s.size()));
  const Scores scores = random_scores(grid, rng);
  DhtExpertDirectory directory(s.node(from));
  BeamSearch search(*s.runtimes[from], directory, grid, BeamSearchOptions().beam_size(beam));
  const int64_t lookups = s.counter("moe_beam_lookups");
  std::optional<Result<Found>> got;
  Cost c = measure(s, [&](std::function<void()> answered) {
    search.find(scores, k, [&got, answered](Result<Found> r) {
      got = std::move(r);
      answered();
    });
  });
  c.lookups = static_cast<double>(s.counter("moe_beam_lookups") - lookups);
  c.ok = got->ok() && same_scores((*got)->at(0), exact_top(grid, scores[0], k));
  return c;
}

Cost one_flat_scan(Swarm& s, const ExpertGrid& grid, Rng& rng) {
  const PeerId from = static_cast<PeerId>(rng.uniform_int(s.size()));
  std::vector<std::string> uids;
  for (uint64_t i = 0; i < grid.count(); ++i) uids.push_back(grid.uid_at(i));
  size_t found = 0;
  Cost c = measure(s, [&](std::function<void()> answered) {
    s.node(from).get_many(uids, [&found, answered](std::vector<Result<dht::DhtValue>> values) {
      for (const auto& v : values) found += v.ok();
      answered();
    });
  });
  c.lookups = static_cast<double>(uids.size());
  c.ok = found == uids.size();
  return c;
}

// Means over many searches; `ok` is the fraction that were exact (or complete).
struct Summary {
  size_t n = 0;
  Cost mean;
  double ms_max = 0;
  void add(const Cost& c) {
    ++n;
    mean.requests += c.requests;
    mean.lookups += c.lookups;
    mean.messages += c.messages;
    mean.kbytes += c.kbytes;
    mean.ms += c.ms;
    ms_max = std::max(ms_max, c.ms);
    ok += c.ok;
  }
  Summary finished() const {
    Summary s = *this;
    const double d = n > 0 ? static_cast<double>(n) : 1.0;
    s.mean.requests /= d;
    s.mean.lookups /= d;
    s.mean.messages /= d;
    s.mean.kbytes /= d;
    s.mean.ms /= d;
    s.ok /= d;
    return s;
  }
  double ok = 0;
};

struct Row {
  ExpertGrid grid;
  PeerId peers = 0;
  size_t k = 0, beam = 0;
  size_t declare_failed = 0;
  Summary beam_search, scan;
};

std::string sizes_text(const ExpertGrid& g) {
  std::string out;
  for (uint32_t v : g.sizes) out += (out.empty() ? "" : "x") + std::to_string(v);
  return out;
}

void write_header(std::ostream& out) {
  out << "dims,grid,experts,peers,k,beam,searches,exact_frac,dht_requests_mean,lookups_mean,"
         "messages_mean,kbytes_mean,sim_time_ms_mean,sim_time_ms_max,baseline_searches,"
         "baseline_found_frac,baseline_requests_mean,baseline_lookups_mean,"
         "baseline_messages_mean,baseline_kbytes_mean,baseline_sim_time_ms_mean,declare_failed\n";
}

void write_row(std::ostream& out, const Row& r) {
  const Cost& b = r.beam_search.mean;
  const Cost& f = r.scan.mean;
  char line[512];
  std::snprintf(line, sizeof line,
                "%zu,%s,%llu,%u,%zu,%zu,%zu,%.3f,%.2f,%.2f,%.1f,%.1f,%.1f,%.1f,%zu,%.3f,%.1f,%.0f,"
                "%.0f,%.0f,%.1f,%zu\n",
                r.grid.dims(), sizes_text(r.grid).c_str(),
                static_cast<unsigned long long>(r.grid.count()), r.peers, r.k, r.beam,
                r.beam_search.n, r.beam_search.ok, b.requests, b.lookups, b.messages, b.kbytes,
                b.ms, r.beam_search.ms_max, r.scan.n, r.scan.ok, f.requests, f.lookups, f.messages,
                f.kbytes, f.ms, r.declare_failed);
  out << line;
}

struct Plan {
  std::vector<PeerId> peers{64, 256};
  std::vector<ExpertGrid> grids;
  std::vector<size_t> beams{4};                // 0 = k
  std::vector<size_t> sweep_beams{1, 16, 64};  // extra beams on the grids of `sweep_experts`
  uint64_t sweep_experts = 4096;
  // More swarm sizes, on the grids of `sweep_experts` only, without the beam sweep.
  std::vector<PeerId> more_peers{16, 1024};
  size_t k = 4, searches = 50, baseline = 3;
  std::string out = "beam_search_cost.csv";
  bool check = false;
};

// Runs `grids` on a swarm of `peers`; one row per grid and beam (plan.beams, and plan.sweep_beams
// on multi-dimensional grids of plan.sweep_experts when `beam_sweep`).
std::vector<Row> run_peers(const Plan& plan, PeerId peers, const std::vector<ExpertGrid>& grids,
                           bool beam_sweep) {
  Swarm s(peers, 17 + peers);
  std::vector<Row> rows;
  Rng rng(29 + peers);
  for (size_t g = 0; g < grids.size(); ++g) {
    ExpertGrid grid = grids[g];
    grid.prefix = "g" + std::to_string(g);
    const size_t failed = declare_grid(s, grid);
    Summary scan;
    for (size_t i = 0; i < plan.baseline; ++i) scan.add(one_flat_scan(s, grid, rng));
    std::vector<size_t> beams = plan.beams;
    if (beam_sweep && grid.count() == plan.sweep_experts &&
        grid.dims() > 1) {  // 1-D: one key, no beam
      beams.insert(beams.end(), plan.sweep_beams.begin(), plan.sweep_beams.end());
    }
    for (size_t beam : beams) {
      Row row{grid, peers, plan.k, beam, failed, {}, scan.finished()};
      Summary sum;
      for (size_t i = 0; i < plan.searches; ++i)
        sum.add(one_beam_search(s, grid, plan.k, beam, rng));
      row.beam_search = sum.finished();
      rows.push_back(row);
      write_row(std::cerr, row);
    }
  }
  return rows;
}

std::vector<ExpertGrid> grids_of(const std::vector<std::vector<uint32_t>>& sizes) {
  std::vector<ExpertGrid> out;
  for (const auto& s : sizes) out.push_back(ExpertGrid{"g", s});
  return out;
}

// Grids of 64, 512, 4096 and 65536 experts in 1, 2 and 3 dimensions, but no 1-D grid of 65536:
// its one key would hold 65536 subkeys, and Storage::store_subkey scans the whole dictionary for
// expired entries on every store (drop_expired), quadratic at that size (minutes of wall time).
std::vector<ExpertGrid> full_grids() {
  return grids_of({{64},
                   {8, 8},
                   {4, 4, 4},
                   {512},
                   {16, 32},
                   {8, 8, 8},
                   {4096},
                   {64, 64},
                   {16, 16, 16},
                   {256, 256},
                   {32, 32, 64}});
}

// From 64 to 4096 experts the beam search's requests must stay nearly flat (under 2x) while the
// flat scan's bytes grow with the expert count (over 16x; its requests grow less, since one find
// asks a peer for up to 128 keys), every search exact and every scan complete.
int check(const std::vector<Row>& rows) {
  CT_CHECK(rows.size() == 2);
  const Row& small = rows[0];
  const Row& big = rows[1];
  const double beam_growth = big.beam_search.mean.requests / small.beam_search.mean.requests;
  const double scan_growth = big.scan.mean.requests / small.scan.mean.requests;
  const double scan_bytes_growth = big.scan.mean.kbytes / small.scan.mean.kbytes;
  std::cout << "from " << small.grid.count() << " to " << big.grid.count()
            << " experts: beam search requests x" << beam_growth << ", flat scan requests x"
            << scan_growth << ", flat scan bytes x" << scan_bytes_growth << "\n";
  bool ok = small.beam_search.ok == 1.0 && big.beam_search.ok == 1.0 && small.scan.ok == 1.0 &&
            big.scan.ok == 1.0 && small.declare_failed == 0 && big.declare_failed == 0;
  ok = ok && beam_growth < 2.0 && scan_bytes_growth > 16.0;
  std::cout << (ok ? "ok" : "FAILED") << "\n";
  return ok ? 0 : 1;
}

std::vector<PeerId> parse_list(const std::string& text) {
  std::vector<PeerId> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    out.push_back(static_cast<PeerId>(std::stoul(item)));
  }
  return out;
}

Plan parse_args(int argc, char** argv) {
  Plan plan;
  plan.grids = full_grids();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--peers" && has_value) {
      plan.peers = parse_list(argv[++i]);
    } else if (a == "--more-peers" && has_value) {
      plan.more_peers = parse_list(argv[++i]);
    } else if (a == "--searches" && has_value) {
      plan.searches = std::stoul(argv[++i]);
    } else if (a == "--baseline" && has_value) {
      plan.baseline = std::stoul(argv[++i]);
    } else if (a == "--out" && has_value) {
      plan.out = argv[++i];
    } else if (a == "--check") {
      plan.check = true;
      plan.peers = {32};
      plan.more_peers.clear();
      plan.grids = grids_of({{8, 8}, {64, 64}});
      plan.sweep_beams.clear();
      plan.searches = 10;
      plan.baseline = 1;
    } else {
      std::cerr << "usage: beam_search_cost [--peers 64,256] [--more-peers 16,1024] [--searches N] "
                   "[--baseline N] [--out FILE.csv] [--check]\n";
      std::exit(2);
    }
  }
  return plan;
}

int run(int argc, char** argv) {
  const Plan plan = parse_args(argc, argv);
  std::vector<Row> rows;
  write_header(std::cerr);
  for (PeerId peers : plan.peers) {
    auto more = run_peers(plan, peers, plan.grids, true);
    rows.insert(rows.end(), more.begin(), more.end());
  }
  std::vector<ExpertGrid> swept;
  for (const auto& g : plan.grids) {
    if (g.count() == plan.sweep_experts) swept.push_back(g);
  }
  for (PeerId peers : plan.more_peers) {
    auto more = run_peers(plan, peers, swept, false);
    rows.insert(rows.end(), more.begin(), more.end());
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::make_tuple(a.peers, a.grid.count(), a.grid.dims()) <
           std::make_tuple(b.peers, b.grid.count(), b.grid.dims());
  });
  if (plan.check) return check(rows);
  std::ofstream out(plan.out);
  write_header(out);
  for (const Row& r : rows) write_row(out, r);
  std::cout << "wrote " << rows.size() << " rows to " << plan.out << "\n";
  return out ? 0 : 1;
}

}  // namespace
}  // namespace crowdtrain::moe

int main(int argc, char** argv) { return crowdtrain::moe::run(argc, argv); }
