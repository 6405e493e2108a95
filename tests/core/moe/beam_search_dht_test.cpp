// BeamSearch over real DHT nodes: ten peers on a fake world, each an expert server declaring its
// experts (ExpertDeclarer for one grid, plain store_many of declaration_items for another); a
// trainer's BeamSearch over DhtExpertDirectory finds exactly what a brute force over the
// assignment says, with a server that really hosts each expert. Signed declarations
// (core/dht/record_signing.h) are found alike, and no other peer can overwrite them.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/dht/dht_app.h"
#include "core/dht/record_signing.h"
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

constexpr PeerId kPeers = 10;

struct Swarm {
  FakeWorld world{21};
  std::vector<FakeRuntime*> runtimes;
  std::vector<std::unique_ptr<dht::DhtApp>> apps;
  Swarm() {
    Rng rng(8);
    for (PeerId i = 0; i < kPeers; ++i) {
      runtimes.push_back(&world.add_peer(i));
      std::vector<PeerId> initial;
      if (i > 0) initial = {0, static_cast<PeerId>(rng.uniform_int(i))};
      apps.push_back(std::make_unique<dht::DhtApp>(*runtimes.back(), dht::DhtId::random(rng),
                                                   dht::DhtOptions(), initial));
      world.attach(i, apps.back().get());
      world.schedule_at(Time(20ms) * i, [app = apps.back().get()] { app->start(); });
    }
    world.run_for(5s);
  }
  dht::DhtNode& node(PeerId i) { return apps[i]->node(); }
};

// uid -> the servers hosting it, from an assignment.
std::map<std::string, std::set<PeerId>> hosts_of(const std::vector<std::vector<std::string>>& a) {
  std::map<std::string, std::set<PeerId>> out;
  for (PeerId s = 0; s < a.size(); ++s) {
    for (const auto& uid : a[s]) out[uid].insert(s);
  }
  return out;
}

// The top k of the hosted experts by summed score, ties by uid.
std::vector<std::pair<std::string, double>> brute_force(
    const std::map<std::string, std::set<PeerId>>& hosts,
    const std::vector<std::vector<double>>& scores, size_t k) {
  std::vector<std::pair<std::string, double>> all;
  for (const auto& [text, servers] : hosts) {
    const ExpertUid uid = *parse_expert_uid(text);
    double score = 0.0;
    for (size_t d = 0; d < uid.coords.size(); ++d) score += scores[d][uid.coords[d]];
    all.emplace_back(text, score);
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
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

// Runs a search from peer `from` and checks it against the brute force.
void check_search(Swarm& s, PeerId from, const ExpertGrid& grid,
                  const std::map<std::string, std::set<PeerId>>& hosts, BeamSearchOptions options,
                  size_t k, bool latest, uint64_t seed) {
  DhtExpertDirectory directory(s.node(from), latest);
  BeamSearch search(*s.runtimes[from], directory, grid, options);
  Rng rng(seed);
  const Scores scores = random_scores(grid, 4, rng);
  std::optional<Result<Found>> got;
  search.find(scores, k, [&](Result<Found> r) { got = std::move(r); });
  s.world.run_for(10s);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->error();
  for (size_t i = 0; i < scores.size(); ++i) {
    const auto want = brute_force(hosts, scores[i], k);
    const auto& mine = (*got)->at(i);
    ASSERT_EQ(mine.size(), want.size()) << grid.prefix << " sample " << i;
    for (size_t r = 0; r < want.size(); ++r) {
      EXPECT_EQ(mine[r].expert.uid, want[r].first) << grid.prefix << " sample " << i;
      EXPECT_DOUBLE_EQ(mine[r].score, want[r].second);
      EXPECT_TRUE(hosts.at(want[r].first).count(mine[r].expert.server))
          << mine[r].expert.uid << " is not hosted by " << mine[r].expert.server;
    }
  }
}

// The servers that the replica dictionary of `uid` names, as peer `from` reads it (owner markers
// dropped); with `signed_entries`, every entry must carry a signature.
std::set<PeerId> replica_servers(Swarm& s, PeerId from, const std::string& uid,
                                 bool signed_entries = false) {
  std::optional<Result<dht::DhtValue>> replicas;
  s.node(from).get(uid, [&](Result<dht::DhtValue> r) { replicas = std::move(r); });
  s.world.run_for(5s);
  std::set<PeerId> named;
  EXPECT_TRUE(replicas && replicas->ok());
  if (!replicas || !replicas->ok()) return named;
  for (const auto& [subkey, entry] : (*replicas)->dictionary) {
    named.insert(*parse_server_value(without_owner(subkey)));
    if (signed_entries) EXPECT_TRUE(dht::split_signed(entry.value).has_value()) << subkey;
  }
  return named;
}

TEST(BeamSearchOverDht, FindsExactlyWhatTheServersDeclared) {
  Swarm s;
  // "ffn": a partial 2-D grid, 20 of 64 experts, 2 replicas each, declared by ExpertDeclarers.
  const ExpertGrid ffn{"ffn", {8, 8}};
  auto ffn_assignment = assign_experts(ffn, 20, kPeers, 2, 5);
  ASSERT_TRUE(ffn_assignment.ok());
  std::vector<std::unique_ptr<ExpertDeclarer>> declarers;
  for (PeerId p = 0; p < kPeers; ++p) {
    declarers.push_back(
        std::make_unique<ExpertDeclarer>(*s.runtimes[p], s.node(p), (*ffn_assignment)[p]));
    declarers.back()->start();
  }
  // "attn": a full 3-D grid, one replica each, stored once with plain store_many (1 h).
  const ExpertGrid attn{"attn", {3, 4, 5}};
  auto attn_assignment = assign_experts(attn, 0, kPeers, 1, 6);
  ASSERT_TRUE(attn_assignment.ok());
  size_t failed = 0;
  for (PeerId p = 0; p < kPeers; ++p) {
    s.node(p).store_many(declaration_items((*attn_assignment)[p], p, s.world.now() + 3600s),
                         [&failed](std::vector<size_t> stored) {
                           for (size_t n : stored) failed += n == 0;
                         });
  }
  s.world.run_for(10s);
  EXPECT_EQ(failed, 0u);
  EXPECT_GT(s.world.sink.counter("moe_declare_ok"), 0);
  EXPECT_EQ(s.world.sink.counter("moe_declare_failed"), 0);

  const auto ffn_hosts = hosts_of(*ffn_assignment);
  const auto attn_hosts = hosts_of(*attn_assignment);
  // Partial 2-D grid: a beam as wide as the largest dimension is exact.
  check_search(s, 3, ffn, ffn_hosts, BeamSearchOptions().beam_size(8), 4, false, 1);
  check_search(s, 7, ffn, ffn_hosts, BeamSearchOptions().beam_size(8), 6, true, 2);
  // Full 3-D grid: beam = k is exact.
  check_search(s, 0, attn, attn_hosts, BeamSearchOptions(), 3, false, 3);
  check_search(s, 9, attn, attn_hosts, BeamSearchOptions(), 5, true, 4);

  // The replica dictionary of one "ffn" expert names both of its hosts.
  const auto& [uid, servers] = *ffn_hosts.begin();
  EXPECT_EQ(replica_servers(s, 5, uid), servers);

  // Two minutes later the declarers have re-declared (records live 60 s): still found.
  s.world.run_for(120s);
  check_search(s, 4, ffn, ffn_hosts, BeamSearchOptions().beam_size(8), 4, false, 5);
  EXPECT_EQ(s.world.sink.counter("moe_beam_timeouts"), 0);
  EXPECT_EQ(s.world.sink.counter("moe_beam_bad_entries"), 0);
}

TEST(BeamSearchOverDht, SignedDeclarationsAreFoundAndCannotBeOverwritten) {
  Swarm s;
  for (PeerId p = 0; p < kPeers; ++p) {
    Rng rng(100 + p);
    s.node(p).set_signing_key(dht::SigningKey::from_rng(rng));
  }
  const ExpertGrid ffn{"ffn", {8, 8}};
  auto assignment = assign_experts(ffn, 20, kPeers, 2, 5);
  ASSERT_TRUE(assignment.ok());
  std::vector<std::unique_ptr<ExpertDeclarer>> declarers;
  for (PeerId p = 0; p < kPeers; ++p) {
    declarers.push_back(std::make_unique<ExpertDeclarer>(
        *s.runtimes[p], s.node(p), (*assignment)[p], ExpertDeclarerOptions().sign(true)));
    declarers.back()->start();
  }
  s.world.run_for(10s);
  EXPECT_EQ(s.world.sink.counter("moe_declare_failed"), 0);
  const auto hosts = hosts_of(*assignment);
  check_search(s, 3, ffn, hosts, BeamSearchOptions().beam_size(8), 4, false, 1);
  check_search(s, 7, ffn, hosts, BeamSearchOptions().beam_size(8), 6, true, 2);
  EXPECT_EQ(s.world.sink.counter("moe_beam_bad_entries"), 0);

  // Server 0's entries name its owner marker; peer 9 (another identity) tries to overwrite them
  // to point elsewhere, and to declare server 0's expert unsigned under the same subkeys.
  const std::string owner = s.node(0).signing_key()->marker();
  const std::string uid = (*assignment)[0].front();
  std::vector<dht::StoreItem> forged;
  for (const auto& item : declaration_items({uid}, 0, s.world.now() + 3600s, owner)) {
    if (item.subkey && item.subkey->find(owner) != std::string::npos) forged.push_back(item);
  }
  ASSERT_EQ(forged.size(), 2u);  // "<coord>.0[owner:..]" and the replica entry "0[owner:..]"
  std::vector<size_t> stored;
  s.node(9).store_many(forged, [&](std::vector<size_t> n) { stored = std::move(n); });
  s.world.run_for(5s);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0], 0u);
  EXPECT_EQ(stored[1], 0u);
  EXPECT_GT(s.world.sink.counter("dht_forged_records"), 0);
  // The replica dictionary still names server 0, signed by it.
  EXPECT_EQ(replica_servers(s, 5, uid, /*signed_entries=*/true), hosts.at(uid));
}

}  // namespace
}  // namespace crowdtrain::moe
