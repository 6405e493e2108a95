// BeamSearch against a brute force over the declared experts, with an in-memory ExpertDirectory
// that answers after a delay on a fake runtime: exact top-k on full grids (additive scores, beam =
// k), declared experts with the right scores and servers on partial grids (exact with a wide
// enough beam), the O(k * d) bound on keys asked, the negative cache, malformed entries, the
// whole-search time-out with late answers, and bad arguments.
#include "core/moe/beam_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>

#include "core/moe/declare.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeRuntime;
using crowdtrain::testing::FakeWorld;
using Dict = ExpertDirectory::Dict;
using Scores = std::vector<std::vector<std::vector<double>>>;
using Found = std::vector<std::vector<FoundExpert>>;

// Declarations in a map; answers `delay` after each get_many (or holds them when `hold`).
class MapDirectory final : public ExpertDirectory {
 public:
  MapDirectory(Runtime& rt, Time delay) : rt_(rt), delay_(delay) {}
  void declare(const std::vector<std::string>& uids, PeerId server) {
    for (const auto& item : declaration_items(uids, server, Time::max())) {
      data[item.key][*item.subkey] = item.value;
    }
  }
  void get_many(std::vector<std::string> keys,
                std::function<void(std::vector<std::optional<Dict>>)> done) override {
    asked.insert(asked.end(), keys.begin(), keys.end());
    std::vector<std::optional<Dict>> out;
    for (const auto& key : keys) {
      auto it = data.find(key);
      out.push_back(it == data.end() ? std::nullopt : std::optional<Dict>(it->second));
    }
    auto answer = [done = std::move(done), out = std::move(out)] { done(out); };
    if (hold) {
      held.push_back(std::move(answer));
    } else {
      rt_.schedule(delay_, std::move(answer));
    }
  }
  void release() {
    auto all = std::move(held);
    held.clear();
    for (auto& fn : all) rt_.schedule(Time(0), std::move(fn));
  }

  std::map<std::string, Dict> data;
  std::vector<std::string> asked;
  bool hold = false;
  std::vector<std::function<void()>> held;

 private:
  Runtime& rt_;
  Time delay_;
};

bool better(const FoundExpert& a, const FoundExpert& b) {
  return a.score != b.score ? a.score > b.score : a.expert.uid < b.expert.uid;
}

// The top k of `declared` for one sample's scores (uids and scores).
std::vector<FoundExpert> brute_force(const ExpertGrid& grid, const std::set<std::string>& declared,
                                     const MapDirectory& dir,
                                     const std::vector<std::vector<double>>& scores, size_t k) {
  std::vector<FoundExpert> all;
  for (const auto& text : declared) {
    const ExpertUid uid = *parse_expert_uid(text);
    double score = 0.0;
    for (size_t d = 0; d < grid.dims(); ++d) score += scores[d][uid.coords[d]];
    // Which replica a search names is drawn at random; Fixture::find checks it is a declared one.
    all.push_back(FoundExpert{ExpertRef{text, kNoPeer}, score});
  }
  std::sort(all.begin(), all.end(), better);
  if (all.size() > k) all.resize(k);
  return all;
}

Scores random_scores(const ExpertGrid& grid, size_t samples, Rng& rng) {
  Scores s(samples);
  for (auto& sample : s) {
    for (uint32_t size : grid.sizes) {
      sample.emplace_back(size);
      for (auto& v : sample.back()) v = rng.normal();
    }
  }
  return s;
}

struct Fixture {
  FakeWorld world{5};
  FakeRuntime& rt = world.add_peer(0);
  MapDirectory dir{rt, 30ms};
  std::set<std::string> declared;

  // Declares `num_experts` of `grid` (0: all) on 5 servers, 2 replicas each.
  void declare(const ExpertGrid& grid, uint64_t num_experts, uint64_t seed) {
    auto hosts = assign_experts(grid, num_experts, 5, 2, seed);
    ASSERT_TRUE(hosts.ok()) << hosts.error();
    for (PeerId s = 0; s < hosts->size(); ++s) {
      dir.declare((*hosts)[s], s + 10);
      declared.insert((*hosts)[s].begin(), (*hosts)[s].end());
    }
  }
  // Runs one find() to the end; fails the test unless done ran exactly once.
  Result<Found> find(BeamSearch& search, Scores scores, size_t k) {
    int calls = 0;
    std::optional<Result<Found>> out;
    search.find(std::move(scores), k, [&](Result<Found> r) {
      ++calls;
      out = std::move(r);
    });
    EXPECT_EQ(calls, 0) << "done ran inside find()";
    world.run_for(60s);
    EXPECT_EQ(calls, 1);
    if (out && out->ok()) {
      for (const auto& sample : out->value()) {
        for (const auto& e : sample) {
          EXPECT_TRUE(hosts(e.expert.uid).count(e.expert.server))
              << e.expert.uid << " is not declared by server " << e.expert.server;
        }
      }
    }
    return out ? std::move(*out) : Result<Found>(Status::error("no answer"));
  }
  // The servers the directory says host `uid`: last-level entries "<coord>.<server>", or a plain
  // "<coord>" whose value is the server.
  std::set<PeerId> hosts(const std::string& text) {
    std::set<PeerId> out;
    const ExpertUid uid = *parse_expert_uid(text);
    const std::string coord = std::to_string(uid.coords.back());
    for (const auto& [subkey, value] : dir.data[uid_prefix(uid, uid.coords.size() - 1)]) {
      auto server = subkey == coord ? parse_server_value(value)
                    : subkey.rfind(coord + ".", 0) == 0
                        ? parse_server_value(subkey.substr(coord.size() + 1))
                        : std::nullopt;
      if (server) out.insert(*server);
    }
    return out;
  }
  int64_t lookups() { return world.sink.counter("moe_beam_lookups"); }
};

void expect_same(const std::vector<FoundExpert>& got, const std::vector<FoundExpert>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].expert.uid, want[i].expert.uid) << what << " rank " << i;
    EXPECT_DOUBLE_EQ(got[i].score, want[i].score) << what << " rank " << i;
  }
}

// Random grids of `dims` dimensions with sizes in [2, max_size]; on a full grid with beam = k
// the search is exact, and each call asks at most 1 + samples * k * (dims - 1) keys.
void full_grid_trials(size_t dims, uint32_t max_size, uint64_t seed) {
  Rng rng(seed);
  for (int trial = 0; trial < 12; ++trial) {
    Fixture f;
    ExpertGrid grid{"ffn", {}};
    for (size_t d = 0; d < dims; ++d) grid.sizes.push_back(2 + rng.uniform_int(max_size - 1));
    f.declare(grid, 0, seed + trial);
    BeamSearch search(f.rt, f.dir, grid);
    const size_t k = 1 + rng.uniform_int(8);
    const size_t samples = 1 + rng.uniform_int(5);
    Scores scores = random_scores(grid, samples, rng);
    const int64_t before = f.lookups();
    auto got = f.find(search, scores, k);
    ASSERT_TRUE(got.ok()) << got.error();
    ASSERT_EQ(got->size(), samples);
    for (size_t s = 0; s < samples; ++s) {
      expect_same((*got)[s], brute_force(grid, f.declared, f.dir, scores[s], k),
                  "trial " + std::to_string(trial) + " sample " + std::to_string(s));
    }
    EXPECT_LE(f.lookups() - before, static_cast<int64_t>(1 + samples * k * (dims - 1)));
    // One sample alone: at most 1 + k * (dims - 1) keys.
    const int64_t before_one = f.lookups();
    auto one = f.find(search, {scores[0]}, k);
    ASSERT_TRUE(one.ok()) << one.error();
    expect_same((*one)[0], (*got)[0], "alone");
    EXPECT_LE(f.lookups() - before_one, static_cast<int64_t>(1 + k * (dims - 1)));
    EXPECT_EQ(f.world.sink.counter("moe_beam_bad_entries"), 0);
  }
}

TEST(BeamSearch, ExactOnFullTwoDimensionalGrids) { full_grid_trials(2, 12, 1); }
TEST(BeamSearch, ExactOnFullThreeDimensionalGrids) { full_grid_trials(3, 6, 2); }
TEST(BeamSearch, ExactOnFullFourDimensionalGrids) { full_grid_trials(4, 4, 3); }

// Partially declared grids: every expert found is declared with the right score and server,
// min(k, declared) of them, best first; with a beam as wide as every level's prefixes (the
// largest dimension in 2-D; the product of all but the last dimension in general) the result is
// the brute force's.
void partial_grid_trials(size_t dims, uint32_t max_size, uint64_t seed) {
  Rng rng(seed);
  for (int trial = 0; trial < 12; ++trial) {
    Fixture f;
    ExpertGrid grid{"ffn", {}};
    for (size_t d = 0; d < dims; ++d) grid.sizes.push_back(2 + rng.uniform_int(max_size - 1));
    const uint64_t n = 1 + rng.uniform_int(grid.count() / 2);
    f.declare(grid, n, seed * 100 + trial);
    size_t wide = 1;
    for (size_t d = 0; d + 1 < dims; ++d) wide *= grid.sizes[d];
    if (dims == 2) wide = *std::max_element(grid.sizes.begin(), grid.sizes.end());
    const size_t k = 1 + rng.uniform_int(6);
    BeamSearch narrow(f.rt, f.dir, grid);
    BeamSearch exact(f.rt, f.dir, grid, BeamSearchOptions().beam_size(wide));
    Scores scores = random_scores(grid, 3, rng);
    auto got = f.find(narrow, scores, k);
    auto all = f.find(exact, scores, k);
    ASSERT_TRUE(got.ok() && all.ok());
    for (size_t s = 0; s < scores.size(); ++s) {
      const std::string what = "trial " + std::to_string(trial) + " sample " + std::to_string(s);
      const auto want = brute_force(grid, f.declared, f.dir, scores[s], k);
      expect_same((*all)[s], want, what + " (wide beam)");
      const auto& mine = (*got)[s];
      EXPECT_EQ(mine.size(), want.size()) << what;
      for (size_t i = 0; i < mine.size(); ++i) {
        const auto one = brute_force(grid, {mine[i].expert.uid}, f.dir, scores[s], 1);
        EXPECT_TRUE(f.declared.count(mine[i].expert.uid)) << what << ": " << mine[i].expert.uid;
        EXPECT_EQ(mine[i].expert.uid, one[0].expert.uid) << what;  // (its server: Fixture::find)
        EXPECT_DOUBLE_EQ(mine[i].score, one[0].score) << what;
        if (i > 0) {
          EXPECT_TRUE(better(mine[i - 1], mine[i])) << what << " order at " << i;
        }
      }
    }
  }
}

TEST(BeamSearch, PartialTwoDimensionalGrids) { partial_grid_trials(2, 16, 4); }
TEST(BeamSearch, PartialThreeDimensionalGrids) { partial_grid_trials(3, 6, 5); }

TEST(BeamSearch, NegativeCacheSkipsEmptyPrefixes) {
  Fixture f;
  const ExpertGrid grid{"ffn", {6, 6}};
  f.declare(grid, 0, 1);
  // A stale entry: "ffn." still lists coordinate 5, whose prefix has expired.
  f.dir.data.erase("ffn.5.");
  for (int i = 0; i < 6; ++i) f.declared.erase("ffn.5." + std::to_string(i));
  // Coordinate 5 looks best; with beam 3 and k 2 the two live prefixes of the beam still hold
  // the true top 2 (a full grid below them, additive scores).
  Scores scores(1, {{0, 1, 2, 3, 4, 9}, {1, 2, 3, 4, 5, 6.5}});
  BeamSearch search(f.rt, f.dir, grid, BeamSearchOptions().beam_size(3).negative_cache(10s));
  int64_t before = f.lookups();
  auto first = f.find(search, scores, 2);  // 60 s pass inside find(): cache expired after
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(f.lookups() - before, 4);  // "ffn." and three prefixes, "ffn.5." among them
  expect_same((*first)[0], brute_force(grid, f.declared, f.dir, scores[0], 2), "first");
  EXPECT_EQ((*first)[0][0].expert.uid, "ffn.4.5");
  EXPECT_EQ((*first)[0][1].expert.uid, "ffn.3.5");

  // Two searches 1 s apart: the second skips "ffn.5.".
  std::vector<Result<Found>> results;
  before = f.lookups();
  search.find(scores, 2, [&](Result<Found> r) { results.push_back(std::move(r)); });
  f.world.run_for(1s);
  const int64_t first_keys = f.lookups() - before;
  search.find(scores, 2, [&](Result<Found> r) { results.push_back(std::move(r)); });
  f.world.run_for(1s);
  const int64_t second_keys = f.lookups() - before - first_keys;
  EXPECT_EQ(first_keys, 4);
  EXPECT_EQ(second_keys, 3);
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].ok() && results[1].ok());
  expect_same((*results[1])[0], (*results[0])[0], "cached");
  EXPECT_EQ(std::count(f.dir.asked.begin(), f.dir.asked.end(), "ffn.5."), 2);
}

TEST(BeamSearch, ReplicasAreOneExpertAndSearchesSpreadOverThem) {
  Fixture f;
  const ExpertGrid grid{"ffn", {2, 2}};
  std::vector<std::string> all;
  for (uint64_t i = 0; i < grid.count(); ++i) all.push_back(grid.uid_at(i));
  f.dir.declare(all, 10);  // every expert on two servers
  f.dir.declare(all, 11);
  f.declared.insert(all.begin(), all.end());
  BeamSearch search(f.rt, f.dir, grid, BeamSearchOptions());
  std::map<std::string, std::set<PeerId>> seen;
  Rng rng(9);
  for (int i = 0; i < 40; ++i) {
    const Scores scores = random_scores(grid, 1, rng);
    auto got = f.find(search, scores, 4);  // also checks each server is a declared host
    ASSERT_TRUE(got.ok());
    expect_same((*got)[0], brute_force(grid, f.declared, f.dir, scores[0], 4), "replicas");
    for (const auto& e : (*got)[0]) seen[e.expert.uid].insert(e.expert.server);
  }
  ASSERT_EQ(seen.size(), 4u);  // four distinct experts, never one entry per replica
  for (const auto& [uid, servers] : seen) {
    EXPECT_EQ(servers, (std::set<PeerId>{10, 11})) << uid << ": calls do not spread";
  }
}

TEST(BeamSearch, MalformedEntriesAreSkippedAndCounted) {
  Fixture f;
  const ExpertGrid grid{"ffn", {4, 6}};
  f.declare(grid, 0, 2);
  auto& top = f.dir.data["ffn."];
  top["4"] = "1";   // outside dimension 0
  top["03"] = "1";  // leading zero
  top["x"] = "1";   // not a number
  top["-1"] = "1";  // negative
  top[""] = "1";    // empty
  top["2"] = "05";  // a server value with a leading zero: coordinate 2 is unreachable
  auto& row1 = f.dir.data["ffn.1."];  // expert ffn.1.3 loses its replicas' entries ...
  for (auto it = row1.begin(); it != row1.end();) {
    it = it->first.rfind("3.", 0) == 0 ? row1.erase(it) : std::next(it);
  }
  row1["3"] = "abc";                // ... and has only a malformed server value
  row1["3.x"] = "1";                // ... and a replica entry that names no server
  f.dir.data["ffn.0."]["6"] = "1";  // outside dimension 1
  for (int i = 0; i < 6; ++i) f.declared.erase("ffn.2." + std::to_string(i));
  f.declared.erase("ffn.1.3");
  BeamSearch search(f.rt, f.dir, grid, BeamSearchOptions().beam_size(6));
  Rng rng(4);
  Scores scores = random_scores(grid, 2, rng);
  auto got = f.find(search, scores, 24);
  ASSERT_TRUE(got.ok());
  for (size_t s = 0; s < 2; ++s) {
    expect_same((*got)[s], brute_force(grid, f.declared, f.dir, scores[s], 24), "sample");
    EXPECT_EQ((*got)[s].size(), 24u - 7u);
  }
  EXPECT_EQ(f.world.sink.counter("moe_beam_bad_entries"), 9);
}

TEST(BeamSearch, TimesOutOnceWhenTheDirectoryNeverAnswers) {
  Fixture f;
  const ExpertGrid grid{"ffn", {4, 4}};
  f.declare(grid, 0, 3);
  f.dir.hold = true;
  BeamSearch search(f.rt, f.dir, grid, BeamSearchOptions().timeout(5s));
  Rng rng(1);
  std::vector<Result<Found>> results;
  search.find(random_scores(grid, 2, rng), 2,
              [&](Result<Found> r) { results.push_back(std::move(r)); });
  f.world.run_for(4900ms);
  EXPECT_TRUE(results.empty());
  f.world.run_for(200ms);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].status().is_timed_out()) << results[0].error();
  EXPECT_NE(results[0].error().find("level 0 of 2"), std::string::npos) << results[0].error();
  f.dir.release();  // the late answer is ignored
  f.world.run_for(60s);
  EXPECT_EQ(results.size(), 1u);
  EXPECT_EQ(f.world.sink.counter("moe_beam_timeouts"), 1);
  EXPECT_EQ(f.dir.asked.size(), 1u);  // the search did not go on
}

TEST(BeamSearch, TimeoutCoversTheWholeSearch) {
  Fixture f;  // every level answers within 2 s, but three levels take 6 s
  MapDirectory slow(f.rt, 2s);
  const ExpertGrid grid{"ffn", {3, 3, 3}};
  slow.declare({"ffn.0.0.0", "ffn.1.2.0"}, 1);
  BeamSearch search(f.rt, slow, grid, BeamSearchOptions().timeout(5s));
  Rng rng(1);
  std::vector<Result<Found>> results;
  search.find(random_scores(grid, 1, rng), 2,
              [&](Result<Found> r) { results.push_back(std::move(r)); });
  f.world.run_for(60s);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].status().is_timed_out());
  EXPECT_EQ(slow.asked.size(), 1u + 2u + 2u);  // the last level's answer came late
  EXPECT_EQ(f.world.sink.sample_count("moe_beam_search_s"), 0u);
  // Without the deadline pressure it finishes in 6 s.
  BeamSearch patient(f.rt, slow, grid, BeamSearchOptions().timeout(10s));
  int64_t ok = 0;
  patient.find(random_scores(grid, 1, rng), 2, [&](Result<Found> r) { ok += r.ok(); });
  f.world.run_for(60s);
  EXPECT_EQ(ok, 1);
  EXPECT_DOUBLE_EQ(f.world.sink.percentile("moe_beam_search_s", 0.5), 6.0);
}

TEST(BeamSearch, RefusesBadScoresAndAnswersEmptyRequestsLater) {
  Fixture f;
  const ExpertGrid grid{"ffn", {3, 4}};
  f.declare(grid, 0, 1);
  BeamSearch search(f.rt, f.dir, grid);
  auto wrong_dims = f.find(search, Scores(1, {{1, 2, 3}}), 2);
  ASSERT_FALSE(wrong_dims.ok());
  EXPECT_NE(wrong_dims.error().find("sample 0 has scores for 1 dimensions, the grid has 2"),
            std::string::npos)
      << wrong_dims.error();
  auto wrong_size = f.find(search, Scores{{{1, 2, 3}, {1, 2, 3, 4}}, {{1, 2, 3}, {1, 2, 3}}}, 2);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.error().find("sample 1 dimension 1 has 3 scores"), std::string::npos)
      << wrong_size.error();
  auto nan = f.find(search, Scores{{{1, 2, 3}, {1, 2, std::nan(""), 4}}}, 2);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.error().find("coordinate 2 has a non-finite score"), std::string::npos);
  auto none = f.find(search, Scores{{{1, 2, 3}, {1, 2, 3, 4}}}, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->size(), 1u);
  EXPECT_TRUE((*none)[0].empty());
  BeamSearch limited(f.rt, f.dir, grid, BeamSearchOptions().max_keys_per_level(10));
  auto too_many = f.find(limited, Scores(3, {{1, 2, 3}, {1, 2, 3, 4}}), 4);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().find("exceed the limit of 10"), std::string::npos);
  EXPECT_TRUE(f.dir.asked.empty());
  EXPECT_EQ(f.world.sink.counter("moe_beam_searches"), 5);
}

TEST(BeamSearch, NothingDeclaredGivesEmptyResultsAndDestroyedSearchesStaySilent) {
  Fixture f;
  const ExpertGrid grid{"ffn", {3, 4}};
  BeamSearch search(f.rt, f.dir, grid);
  auto got = f.find(search, Scores(2, {{1, 2, 3}, {1, 2, 3, 4}}), 2);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE((*got)[0].empty() && (*got)[1].empty());
  f.declare(grid, 0, 1);
  int calls = 0;
  auto doomed = std::make_unique<BeamSearch>(f.rt, f.dir, grid);
  doomed->find(Scores(1, {{1, 2, 3}, {1, 2, 3, 4}}), 2, [&](Result<Found>) { ++calls; });
  doomed.reset();
  f.world.run_for(60s);
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace crowdtrain::moe
