// The DHT workload in the simulated world (core/dht/dht_workload.h): without churn every store and
// get succeeds; under churn, gets of keys that a live peer still holds succeed; the same seed gives
// the same event log, another seed another; it runs at packet level too, and with the key schedule
// of live runs (keys "schedule").
#include <gtest/gtest.h>

#include "core/dht/dht_workload_options.h"
#include "sim/sim_world.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

using testing::counter;

Scenario dht_scenario(uint32_t peers, double duration_s, uint64_t seed) {
  Scenario s;
  s.name = "dht_world_test";
  s.seed = seed;
  s.duration_s = duration_s;
  s.peers.count = peers;
  s.network.access_latency_ms = DistSpec::constant(10);
  s.workload.kind = "dht";
  auto& d = s.workload.edit<dht::DhtWorkloadOptions>("dht");
  d.store_rate_hz = 0.1;
  d.get_rate_hz = 0.1;
  d.warmup_s = 20;
  d.bootstrap_spread_s = 10;
  d.dictionary_fraction = 0.25;
  d.dictionary_keys = 16;
  s.output.progress = false;
  return s;
}

Scenario with_churn(Scenario s) {
  s.churn.model = ChurnModel::kSessions;
  s.churn.session_s.kind = DistSpec::Kind::kExponential;
  s.churn.session_s.mean = 300;
  s.churn.downtime_s.kind = DistSpec::Kind::kExponential;
  s.churn.downtime_s.mean = 60;
  s.churn.initial_online_fraction = 0.9;
  return s;
}

nlohmann::json run(const Scenario& s) { return testing::run_quiet(s); }

TEST(DhtWorld, NoChurnEveryStoreAndGetSucceeds) {
  const auto sum = run(dht_scenario(300, 90, 5));
  ASSERT_FALSE(sum.is_null());
  EXPECT_GT(counter(sum, "dht_store_ok"), 300);
  EXPECT_GT(counter(sum, "dht_get_ok"), 300);
  EXPECT_EQ(counter(sum, "dht_store_failed"), 0);
  EXPECT_EQ(counter(sum, "dht_get_failed"), 0);
  EXPECT_EQ(sum["dht"]["store_success"], 1.0);
  EXPECT_EQ(sum["dht"]["get_success"], 1.0);
  EXPECT_GT(sum["samples"]["dht_lookup_hops"]["count"].get<int64_t>(), 0);
}

TEST(DhtWorld, ChurnGetsOfLiveKeysSucceedAndSameSeedSameLog) {
  const Scenario s = with_churn(dht_scenario(200, 120, 7));
  const auto a = run(s);
  ASSERT_FALSE(a.is_null());
  EXPECT_GT(counter(a, "leaves"), 10);
  EXPECT_GT(counter(a, "joins"), 200 * 0.9);
  const int64_t live = counter(a, "dht_get_live_replica");
  EXPECT_GT(live, 200);
  EXPECT_LE(counter(a, "dht_get_failed_with_live_replica"), live / 100);  // >= 99 %
  EXPECT_GE(a["dht"]["store_success"].get<double>(), 0.99);

  const auto b = run(s);
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
  EXPECT_EQ(a["events_processed"], b["events_processed"]);
  EXPECT_EQ(a["counters"], b["counters"]);
  Scenario other = s;
  other.seed = 8;
  const auto c = run(other);
  EXPECT_NE(a["event_log_sha256"], c["event_log_sha256"]);
}

// The key schedule a live run uses runs in the simulator too, and every value it gets checks out.
TEST(DhtWorld, ScheduledKeysNoChurnEveryGetFindsTheValue) {
  Scenario s = dht_scenario(100, 90, 5);
  s.workload.edit<dht::DhtWorkloadOptions>("dht").keys = dht::DhtKeys::kSchedule;
  const auto sum = run(s);
  ASSERT_FALSE(sum.is_null());
  EXPECT_GT(counter(sum, "dht_live_get_ok"), 200);
  EXPECT_EQ(counter(sum, "dht_live_get_failed"), 0);
  EXPECT_EQ(counter(sum, "dht_get_wrong_value"), 0);
  EXPECT_EQ(counter(sum, "dht_store_failed"), 0);
  EXPECT_EQ(sum["dht"]["live_get_success"], 1.0);
}

// A third of the peers behind NAT (peers.clients): they store and get through the others, nobody
// bootstraps from them or calls them (the world drops a message to a client from a peer it has not
// reached, and counts it), and the same seed gives the same log.
TEST(DhtWorld, ClientsUnderChurnStoreAndGetAndNobodyCallsThem) {
  Scenario s = with_churn(dht_scenario(200, 120, 7));
  s.peers.client_fraction = 0.3;
  const auto a = run(s);
  ASSERT_FALSE(a.is_null());
  const int64_t live = counter(a, "dht_get_live_replica");
  EXPECT_GT(live, 200);
  EXPECT_LE(counter(a, "dht_get_failed_with_live_replica"), live / 100);  // >= 99 %
  EXPECT_GE(a["dht"]["store_success"].get<double>(), 0.99);
  EXPECT_EQ(counter(a, "messages_to_unreached_client"), 0);
  EXPECT_EQ(a["event_log_sha256"], run(s)["event_log_sha256"]);
}

TEST(DhtWorld, PacketLevelNoChurn) {
  Scenario s = dht_scenario(60, 60, 3);
  s.network.fidelity = Fidelity::kPacket;
  const auto sum = run(s);
  ASSERT_FALSE(sum.is_null());
  EXPECT_GT(counter(sum, "dht_store_ok"), 50);
  EXPECT_GT(counter(sum, "dht_get_ok"), 50);
  EXPECT_EQ(counter(sum, "dht_store_failed"), 0);
  EXPECT_EQ(counter(sum, "dht_get_failed"), 0);
}

}  // namespace
}  // namespace crowdtrain::sim
