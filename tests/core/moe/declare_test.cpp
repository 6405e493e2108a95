// Expert declarations: the DHT records for a set of uids (hand-written expectation), the strict
// server-value parser, and ExpertDeclarer on ten DHT nodes of a fake world: records appear, are
// re-declared every period with fresh expirations, added and removed uids appear and expire.
#include "core/moe/declare.h"

#include <gtest/gtest.h>

#include "core/dht/dht_app.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeWorld;

TEST(DeclarationItems, OneRecordPerPrefixLevelAndReplicaDeduplicatedAndSorted) {
  const Time exp = 123s;
  auto items = declaration_items({"ffn.3.17", "ffn.3.2", "ffn.10.17", "ffn.3.17"}, 5, exp);
  struct Want {
    const char* key;
    const char* subkey;
    const char* value;
  };
  const std::vector<Want> want = {
      {"ffn.", "10", "5"},    {"ffn.", "3", "5"},      {"ffn.10.", "17.5", "5"},
      {"ffn.10.17", "5", ""}, {"ffn.3.", "17.5", "5"}, {"ffn.3.", "2.5", "5"},
      {"ffn.3.17", "5", ""},  {"ffn.3.2", "5", ""},
  };
  ASSERT_EQ(items.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(items[i].key, want[i].key) << i;
    ASSERT_TRUE(items[i].subkey.has_value()) << i;
    EXPECT_EQ(*items[i].subkey, want[i].subkey) << i;
    EXPECT_EQ(items[i].value, want[i].value) << i;
    EXPECT_EQ(items[i].expiration, exp) << i;
  }
  // A 1-D uid: the prefix level and the replica dictionary.
  auto one = declaration_items({"x.0"}, 0, exp);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0].key, "x.");
  EXPECT_EQ(*one[0].subkey, "0.0");  // the last level names the replica
  EXPECT_EQ(one[0].value, "0");
  EXPECT_EQ(one[1].key, "x.0");
  EXPECT_EQ(*one[1].subkey, "0");
}

TEST(ParseServerValue, StrictDecimal) {
  EXPECT_EQ(parse_server_value("0"), PeerId{0});
  EXPECT_EQ(parse_server_value("5"), PeerId{5});
  EXPECT_EQ(parse_server_value("4294967294"), PeerId{4294967294u});
  for (const char* bad :
       {"", "05", "-1", "+1", " 1", "1 ", "1x", "4294967295", "99999999999", "0x10", "1.0"}) {
    EXPECT_FALSE(parse_server_value(bad).has_value()) << "'" << bad << "'";
  }
}

// Ten DHT peers (ids 0..9) on a fake world, all bootstrapped.
struct Swarm {
  FakeWorld world{11};
  std::vector<crowdtrain::testing::FakeRuntime*> runtimes;
  std::vector<std::unique_ptr<dht::DhtApp>> apps;
  Swarm() {
    Rng rng(3);
    for (PeerId i = 0; i < 10; ++i) {
      runtimes.push_back(&world.add_peer(i));
      std::vector<PeerId> initial;
      if (i > 0) initial = {0};
      apps.push_back(std::make_unique<dht::DhtApp>(*runtimes.back(), dht::DhtId::random(rng),
                                                   dht::DhtOptions(), initial));
      world.attach(i, apps.back().get());
      world.schedule_at(Time(20ms) * i, [app = apps.back().get()] { app->start(); });
    }
    world.run_for(5s);
  }
  // Subkey -> value under `key`, read (latest) from peer `from`; empty when absent.
  std::map<std::string, std::string> read(PeerId from, const std::string& key) {
    std::map<std::string, std::string> out;
    bool answered = false;
    apps[from]->node().get_many(
        {key},
        [&](std::vector<Result<dht::DhtValue>> r) {
          answered = true;
          if (r[0].ok()) {
            for (const auto& [k, e] : r[0]->dictionary) out[k] = e.value;
          }
        },
        true);
    world.run_for(5s);
    EXPECT_TRUE(answered);
    return out;
  }
  int64_t counter(const char* name) { return world.sink.counter(name); }
};

using Dict = std::map<std::string, std::string>;

TEST(ExpertDeclarer, DeclaresNowAndEveryPeriodUntilDestroyed) {
  Swarm s;
  auto declarer = std::make_unique<ExpertDeclarer>(
      *s.runtimes[4], s.apps[4]->node(), std::vector<std::string>{"ffn.1.2", "ffn.1.3"},
      ExpertDeclarerOptions().period(30s).expiration(60s));
  EXPECT_EQ(declarer->rounds(), 0u);  // nothing before start()
  declarer->start();
  s.world.run_for(5s);  // the stores land
  EXPECT_EQ(s.read(7, "ffn."), (Dict{{"1", "4"}}));
  EXPECT_EQ(s.read(7, "ffn.1."), (Dict{{"2.4", "4"}, {"3.4", "4"}}));
  EXPECT_EQ(s.read(2, "ffn.1.2"), (Dict{{"4", ""}}));
  EXPECT_EQ(s.read(2, "ffn.1.3"), (Dict{{"4", ""}}));
  EXPECT_EQ(declarer->rounds(), 1u);
  EXPECT_EQ(s.counter("moe_declare_ok"), 5);  // ffn./1, ffn.1./2, ffn.1./3, two replica dicts

  // Re-declared at 30, 60 and 90 s: still there at ~110 s although each record lives 60 s.
  s.world.run_for(90s);
  EXPECT_EQ(declarer->rounds(), 4u);
  EXPECT_EQ(s.read(9, "ffn.1."), (Dict{{"2.4", "4"}, {"3.4", "4"}}));
  EXPECT_EQ(s.counter("moe_declare_ok"), 20);
  EXPECT_EQ(s.counter("moe_declare_failed"), 0);

  // Taking over an orphaned expert: declared at once. A malformed uid is refused, nothing added.
  const uint64_t rounds = declarer->rounds();
  ASSERT_TRUE(declarer->add({"ffn.2.0"}).ok());
  EXPECT_EQ(declarer->rounds(), rounds + 1);
  s.world.run_for(5s);
  EXPECT_EQ(s.read(1, "ffn."), (Dict{{"1", "4"}, {"2", "4"}}));
  Status bad = declarer->add({"ffn.2.5", "ffn.02"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("coordinate 1 has a leading zero"), std::string::npos)
      << bad.message();
  EXPECT_EQ(declarer->uids().size(), 3u);

  // A removed uid expires within a period plus the expiration; the others stay.
  declarer->remove({"ffn.1.3"});
  s.world.run_for(70s);
  EXPECT_EQ(s.read(3, "ffn.1."), (Dict{{"2.4", "4"}}));
  EXPECT_TRUE(s.read(3, "ffn.1.3").empty());
  EXPECT_EQ(s.read(3, "ffn.1.2"), (Dict{{"4", ""}}));

  // Destroyed: no more rounds; everything expires.
  const int64_t ok_before = s.counter("moe_declare_ok");
  declarer.reset();
  s.world.run_for(70s);
  EXPECT_EQ(s.counter("moe_declare_ok"), ok_before);
  EXPECT_TRUE(s.read(5, "ffn.").empty());
  EXPECT_TRUE(s.read(5, "ffn.2.").empty());
}

TEST(ExpertDeclarer, AddRefusesPastTheLimit) {
  Swarm s;
  ExpertDeclarer declarer(*s.runtimes[1], s.apps[1]->node(), {"a.0", "a.1"},
                          ExpertDeclarerOptions().max_uids(3));
  EXPECT_TRUE(declarer.add({"a.1", "a.2"}).ok());  // a.1 is already there: one new uid
  Status s2 = declarer.add({"a.3"});
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find("passes the limit of 3"), std::string::npos) << s2.message();
  EXPECT_EQ(declarer.uids(), (std::set<std::string>{"a.0", "a.1", "a.2"}));
  EXPECT_EQ(declarer.rounds(), 0u);  // not started: add() does not declare
}

}  // namespace
}  // namespace crowdtrain::moe
