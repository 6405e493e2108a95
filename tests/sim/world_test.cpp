// The simulated world end to end on small scenarios with fixed seeds: the probe workload runs,
// churn and faults happen, and the same seed gives the same event log at both fidelity levels.
#include "sim/sim_world.h"

#include "core/probe.h"
#include "tests/sim/sim_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <tuple>

namespace crowdtrain::sim {
namespace {

Scenario small(Fidelity fidelity, uint64_t seed) {
  Scenario s;
  s.name = "world_test";
  s.seed = seed;
  s.duration_s = 20;
  s.peers.count = 40;
  s.network.fidelity = fidelity;
  s.network.access_latency_ms = DistSpec::constant(10);
  s.workload.edit<ProbeOptions>("probe").rate_hz = 2;
  s.workload.edit<ProbeOptions>("probe").timeout_s = 2;
  s.churn.model = ChurnModel::kSessions;
  s.churn.session_s.kind = DistSpec::Kind::kExponential;
  s.churn.session_s.mean = 30;
  s.churn.downtime_s.kind = DistSpec::Kind::kExponential;
  s.churn.downtime_s.mean = 5;
  s.churn.initial_online_fraction = 0.8;
  s.output.progress = false;
  return s;
}

nlohmann::json run(const Scenario& s) { return testing::run_quiet(s); }

void expect_deterministic(Fidelity fidelity) {
  const auto a = run(small(fidelity, 7));
  const auto b = run(small(fidelity, 7));
  const auto c = run(small(fidelity, 8));
  ASSERT_FALSE(a.is_null());
  EXPECT_GT(a["probe"]["probes_ok"].get<int64_t>(), 500);
  EXPECT_GT(a["counters"]["leaves"].get<int64_t>(), 0);
  EXPECT_GT(a["counters"]["joins"].get<int64_t>(), 40 * 0.8);
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
  EXPECT_EQ(a["events_processed"], b["events_processed"]);
  EXPECT_EQ(a["probe"]["probes_ok"], b["probe"]["probes_ok"]);
  EXPECT_NE(a["event_log_sha256"], c["event_log_sha256"]);
  EXPECT_EQ(a["event_log_sha256"].get<std::string>().size(), 64u);
}

TEST(World, SameSeedSameEventLogMessageLevel) { expect_deterministic(Fidelity::kMessage); }
TEST(World, SameSeedSameEventLogPacketLevel) { expect_deterministic(Fidelity::kPacket); }

TEST(World, ProbeRoundTripsMatchTheNetwork) {
  Scenario s = small(Fidelity::kMessage, 3);
  s.churn.model = ChurnModel::kNone;
  s.workload.edit<ProbeOptions>("probe").request_bytes = 100;
  s.workload.edit<ProbeOptions>("probe").response_bytes = 100;
  const auto r = run(s);
  // Round trip = 2 x (10 + 10 ms) of latency plus tiny serialisation at 100 Mbit/s.
  EXPECT_NEAR(r["probe"]["rtt_ms_p50"].get<double>(), 40.0, 0.5);
  EXPECT_EQ(r["probe"]["probes_failed"].get<int64_t>(), 0);
  EXPECT_EQ(r["alive_peers_at_end"].get<int64_t>(), 40);
}

TEST(World, KillFaultAndRestart) {
  Scenario s = small(Fidelity::kMessage, 5);
  s.churn.model = ChurnModel::kNone;
  FaultSpec kill;
  kill.kind = FaultKind::kKill;
  kill.at_s = 5;
  kill.fraction = 0.5;
  kill.restart_after_s = 100;  // after the run's end
  s.faults.push_back(kill);
  const auto r = run(s);
  EXPECT_EQ(r["alive_peers_at_end"].get<int64_t>(), 20);
  EXPECT_EQ(r["counters"]["leaves"].get<int64_t>(), 20);
  EXPECT_GT(r["probe"]["probes_failed"].get<int64_t>(), 0);  // probes to the dead time out

  s.faults[0].restart_after_s = 2;
  const auto r2 = run(s);
  EXPECT_EQ(r2["alive_peers_at_end"].get<int64_t>(), 40);
  EXPECT_EQ(r2["counters"]["joins"].get<int64_t>(), 60);
}

TEST(World, PartitionBlocksCrossRegionProbes) {
  const std::string csv =
      ::testing::TempDir() + "/two_regions_" + std::to_string(::getpid()) + ".csv";
  std::ofstream(csv) << ",a,b\na,0,50\nb,50,0\n";
  Scenario s = small(Fidelity::kMessage, 11);
  s.churn.model = ChurnModel::kNone;
  s.network.regions.rtt_csv = csv;
  const auto base = run(s);
  FaultSpec part;
  part.kind = FaultKind::kPartition;
  part.at_s = 0;
  part.duration_s = 100;
  part.regions = {"a"};
  s.faults.push_back(part);
  const auto cut = run(s);
  EXPECT_EQ(base["probe"]["probes_failed"].get<int64_t>(), 0);
  // About half the probes cross the cut and fail.
  const double fail =
      cut["probe"]["probes_failed"].get<double>() / cut["probe"]["probes_sent"].get<double>();
  EXPECT_GT(fail, 0.35);
  EXPECT_LT(fail, 0.65);
  EXPECT_GT(cut["messages_dropped_partition"].get<int64_t>(), 0);
}

TEST(World, ClogSlowsOnlyTheCloggedPeersMessagesWhileItLasts) {
  Scenario s = small(Fidelity::kMessage, 3);
  s.churn.model = ChurnModel::kNone;
  s.duration_s = 30;
  s.workload.edit<ProbeOptions>("probe").timeout_s = 5;
  FaultSpec clog;
  clog.kind = FaultKind::kClog;
  clog.at_s = 10;
  clog.duration_s = 10;
  clog.peers = {0, 1, 2, 3};
  clog.delay_ms = 500;
  s.faults.push_back(clog);
  const auto r = run(s);
  // 40 ms round trips, but probes that touch a clogged peer in 10..20 s take 1 s more (500 ms
  // each way): about a fifth of the probes in a third of the run.
  EXPECT_NEAR(r["probe"]["rtt_ms_p50"].get<double>(), 40.0, 0.5);
  EXPECT_GT(r["probe"]["rtt_ms_p99"].get<double>(), 1000.0);
  EXPECT_LT(r["probe"]["rtt_ms_p99"].get<double>(), 2100.0);
  EXPECT_EQ(r["probe"]["probes_failed"].get<int64_t>(), 0);
  s.faults.clear();
  EXPECT_LT(run(s)["probe"]["rtt_ms_p99"].get<double>(), 41.0);
}

TEST(World, LossBurstDropsMessagesOnlyWhileItLasts) {
  Scenario s = small(Fidelity::kMessage, 4);
  s.churn.model = ChurnModel::kNone;
  FaultSpec loss;
  loss.kind = FaultKind::kLoss;
  loss.at_s = 5;
  loss.duration_s = 5;
  loss.loss_rate = 0.5;  // every peer's messages (no peers, no fraction)
  s.faults.push_back(loss);
  const auto r = run(s);
  const double failed = r["probe"]["probes_failed"].get<double>();
  const double sent = r["probe"]["probes_sent"].get<double>();
  // A probe survives a 50% burst only if its request and its answer both do: 3/4 of the probes
  // sent in a quarter of the run fail, about 19% of all.
  EXPECT_GT(failed / sent, 0.12);
  EXPECT_LT(failed / sent, 0.26);
  EXPECT_GT(r["messages_dropped_loss"].get<int64_t>(), 0);
}

TEST(World, KillWithNoticeWarnsTheVictimsThenKillsThem) {
  Scenario s = small(Fidelity::kMessage, 6);
  s.churn.model = ChurnModel::kNone;
  FaultSpec kill;
  kill.kind = FaultKind::kKill;
  kill.at_s = 5;
  kill.peers = {1, 2, 3};
  kill.notice_s = 4;
  kill.restart_after_s = 100;
  s.faults.push_back(kill);
  const std::string dir = ::testing::TempDir() + "/notice_" + std::to_string(::getpid());
  SimOptions o;
  o.out_dir = dir;
  o.progress = false;
  auto r = run_simulation(s, o);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value()["alive_peers_at_end"].get<int64_t>(), 37);
  std::ifstream events(dir + "/events.jsonl");
  std::string line;
  std::vector<std::pair<double, std::string>> seen;  // (t, event) for peer 2
  while (std::getline(events, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["peer"] == 2 && (j["ev"] == "preemption_notice" || j["ev"] == "leave")) {
      seen.emplace_back(j["t_ns"].get<double>() / 1e9, j["ev"].get<std::string>());
    }
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(5.0, std::string("preemption_notice")));
  EXPECT_EQ(seen[1], std::make_pair(9.0, std::string("leave")));
}

TEST(World, PreemptionKillsAfterLifetime) {
  Scenario s = small(Fidelity::kMessage, 13);
  s.churn.model = ChurnModel::kNone;
  s.churn.lifetime_s_max = 10;
  s.churn.preemption_notice_s = 2;
  const auto r = run(s);
  EXPECT_EQ(r["alive_peers_at_end"].get<int64_t>(), 0);
  EXPECT_EQ(r["counters"]["leaves"].get<int64_t>(), 40);
}

// Joins and leaves of every peer, (peer, t, event), from a run folder's event log.
std::vector<std::tuple<int64_t, double, std::string>> lifecycle(const std::string& dir) {
  std::vector<std::tuple<int64_t, double, std::string>> seen;
  std::ifstream events(dir + "/events.jsonl");
  std::string line;
  while (std::getline(events, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["ev"] == "join" || j["ev"] == "leave") {
      seen.emplace_back(j["peer"].get<int64_t>(), j["t_ns"].get<double>() / 1e9,
                        j["ev"].get<std::string>());
    }
  }
  std::sort(seen.begin(), seen.end());
  return seen;
}

// A trace of three hosts replayed on four peers, twice as fast: every peer is up exactly when its
// host was, the fourth (no host) never; the same trace and seed give the same event log.
TEST(World, ReplaysATraceExactly) {
  const std::string dir = ::testing::TempDir() + "/trace_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/trace.csv") << "# hosts a, b, c\nhost,join_s,leave_s\n"
                                       "a,0,10\nb,4,-1\na,16,30\nc,2,6\n";
  Scenario s = small(Fidelity::kMessage, 3);
  s.peers.count = 4;
  s.churn.model = ChurnModel::kTrace;
  s.churn.trace.path = dir + "/trace.csv";
  s.churn.trace.key = "churn.trace.path";
  s.churn.trace.mapping = TraceMapping::kFirst;
  s.churn.trace.time_scale = 2;
  const auto a = testing::run_quiet(s, dir + "/a");
  using E = std::tuple<int64_t, double, std::string>;
  EXPECT_EQ(lifecycle(dir + "/a"), (std::vector<E>{{0, 0.0, "join"},
                                                   {0, 5.0, "leave"},
                                                   {0, 8.0, "join"},
                                                   {0, 15.0, "leave"},
                                                   {1, 2.0, "join"},
                                                   {2, 1.0, "join"},
                                                   {2, 3.0, "leave"}}));
  EXPECT_EQ(a["alive_peers_at_end"].get<int64_t>(), 1);
  EXPECT_EQ(a["churn_trace"]["peer_hosts"], nlohmann::json({"a", "b", "c", ""}));
  EXPECT_EQ(a["churn_trace"]["hosts_in_trace"], 3);
  EXPECT_EQ(a["churn_trace"]["mapping"], "first");
  const auto b = testing::run_quiet(s, dir + "/b");
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
}

}  // namespace
}  // namespace crowdtrain::sim
