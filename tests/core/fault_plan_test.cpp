// Random fault plans (core/fault_plan.h), the fault kinds' reader, and the invariant and liveness
// counters (core/invariants.h).
#include "core/fault_plan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "core/invariants.h"
#include "core/metrics.h"
#include "core/scenario.h"

namespace crowdtrain {
namespace {

Scenario base_scenario(bool regions, Fidelity fidelity) {
  nlohmann::json doc = {
      {"name", "plan_test"},
      {"peers", {{"count", 50}}},
      {"network", {{"fidelity", fidelity == Fidelity::kMessage ? "message" : "packet"}}},
      {"workload", {{"kind", "probe"}}}};
  if (regions) {
    const std::string csv =
        ::testing::TempDir() + "/plan_regions_" + std::to_string(::getpid()) + ".csv";
    std::ofstream(csv) << ",a,b,c\na,0,50,90\nb,50,0,70\nc,90,70,0\n";
    doc["network"]["regions"] = {{"rtt_csv", csv}};
  }
  auto s = parse_scenario(doc);
  EXPECT_TRUE(s.ok()) << s.error();
  return s.ok() ? s.value() : Scenario();
}

TEST(FaultPlan, TheSeedAloneGivesThePlan) {
  const Scenario s = base_scenario(true, Fidelity::kMessage);
  FaultPlanOptions o;
  const auto a = fault_plan_json(draw_fault_plan(s, 42, o));
  EXPECT_EQ(a, fault_plan_json(draw_fault_plan(s, 42, o)));
  EXPECT_NE(a, fault_plan_json(draw_fault_plan(s, 43, o)));
}

TEST(FaultPlan, EveryFaultIsOverBeforeTheLivenessPhase) {
  const Scenario s = base_scenario(true, Fidelity::kMessage);
  FaultPlanOptions o;
  o.warmup_s = 20;
  o.safety_s = 120;
  std::map<FaultKind, int> kinds;
  int notices = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    const auto plan = draw_fault_plan(s, seed, o);
    ASSERT_GE(plan.size(), o.min_faults);
    ASSERT_LE(plan.size(), o.max_faults);
    for (const FaultSpec& f : plan) {
      ++kinds[f.kind];
      EXPECT_GE(f.at_s, o.warmup_s) << "seed " << seed;
      const double end = f.kind == FaultKind::kKill ? f.at_s + f.notice_s + f.restart_after_s
                                                    : f.at_s + f.duration_s;
      EXPECT_LE(end, o.safety_s + 1e-9) << "seed " << seed;
      if (f.kind == FaultKind::kKill) {
        EXPECT_GT(f.restart_after_s, 0.0);
        EXPECT_GT(f.fraction, 0.0);
        EXPECT_LE(f.fraction, o.max_kill_fraction);
        notices += f.notice_s > 0;
      }
      if (f.kind == FaultKind::kPartition) {
        EXPECT_GE(f.regions.size(), 1u);
        EXPECT_LT(f.regions.size(), 3u);  // a proper subset
      }
    }
  }
  EXPECT_GT(kinds[FaultKind::kKill], 200);
  EXPECT_GT(kinds[FaultKind::kPartition], 200);
  EXPECT_GT(kinds[FaultKind::kClog], 200);
  EXPECT_GT(kinds[FaultKind::kLoss], 200);
  EXPECT_GT(notices, 50);
}

TEST(FaultPlan, OnlyTheKindsTheWorldCanRun) {
  FaultPlanOptions o;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    for (const FaultSpec& f : draw_fault_plan(base_scenario(false, Fidelity::kPacket), seed, o)) {
      EXPECT_EQ(f.kind, FaultKind::kKill);  // no regions, packet level: kills only
    }
  }
}

TEST(FaultPlan, ThePlanReadsBackAsTheScenarioFaults) {
  const Scenario s = base_scenario(true, Fidelity::kMessage);
  const auto plan = draw_fault_plan(s, 7, FaultPlanOptions());
  nlohmann::json doc = s.resolved;
  doc["faults"] = fault_plan_json(plan);
  auto back = parse_scenario(doc);
  ASSERT_TRUE(back.ok()) << back.error();
  ASSERT_EQ(back->faults.size(), plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(back->faults[i].kind, plan[i].kind);
    EXPECT_EQ(back->faults[i].at_s, plan[i].at_s);
    EXPECT_EQ(back->faults[i].fraction, plan[i].fraction);
    EXPECT_EQ(back->faults[i].duration_s, plan[i].duration_s);
    EXPECT_EQ(back->faults[i].delay_ms, plan[i].delay_ms);
    EXPECT_EQ(back->faults[i].loss_rate, plan[i].loss_rate);
    EXPECT_EQ(back->faults[i].notice_s, plan[i].notice_s);
    EXPECT_EQ(back->faults[i].restart_after_s, plan[i].restart_after_s);
    EXPECT_EQ(back->faults[i].regions, plan[i].regions);
  }
}

// The error of `faults` in an otherwise good scenario ("" when it reads).
std::string fault_error(const nlohmann::json& faults, const char* fidelity = "message") {
  nlohmann::json doc = {{"name", "t"},
                        {"peers", {{"count", 10}}},
                        {"network", {{"fidelity", fidelity}}},
                        {"faults", faults}};
  auto s = parse_scenario(doc);
  return s.ok() ? "" : s.error();
}

TEST(FaultPlan, TheReaderNamesWhatIsWrongWithAFault) {
  EXPECT_EQ(
      fault_error({{{"kind", "clog"}, {"fraction", 0.5}, {"duration_s", 5}, {"delay_ms", 100}}}),
      "");
  EXPECT_EQ(fault_error({{{"kind", "loss"}, {"duration_s", 5}, {"loss_rate", 0.3}}}), "");
  EXPECT_NE(fault_error({{{"kind", "clog"}, {"fraction", 0.5}, {"duration_s", 5}}})
                .find("faults[0].delay_ms"),
            std::string::npos);
  EXPECT_NE(fault_error({{{"kind", "clog"}, {"duration_s", 5}, {"delay_ms", 100}}})
                .find("faults[0].fraction"),
            std::string::npos);
  EXPECT_NE(fault_error({{{"kind", "loss"}, {"duration_s", 5}, {"loss_rate", 0}}})
                .find("faults[0].loss_rate"),
            std::string::npos);
  EXPECT_NE(fault_error({{{"kind", "kill"}, {"fraction", 0.1}, {"notice_s", -1}}})
                .find("faults[0].notice_s"),
            std::string::npos);
  EXPECT_NE(fault_error({{{"kind", "kill"}, {"fraction", 0.1}, {"delay_ms", 3}}})
                .find("faults[0].delay_ms"),
            std::string::npos);
  const std::string packet =
      fault_error({{{"kind", "loss"}, {"duration_s", 5}, {"loss_rate", 0.3}}}, "packet");
  EXPECT_NE(packet.find("faults[0].kind"), std::string::npos) << packet;
  EXPECT_NE(packet.find("message"), std::string::npos) << packet;
}

TEST(Invariants, AViolationIsCountedNamedAndLogged) {
  MetricsSink sink;
  Time now{0};
  Metrics m(&sink, 3, [&] { return now; });
  EXPECT_TRUE(check_invariant(m, true, "x_holds", [] { return std::string("never built"); }));
  EXPECT_FALSE(check_invariant(m, false, "x_holds", [] { return std::string("saw 7"); }));
  const auto j = invariants_summary(sink);
  EXPECT_EQ(j["checks"], 2);
  EXPECT_EQ(j["violations"], 1);
  EXPECT_EQ(j["violated"]["x_holds"], 1);
  EXPECT_EQ(sink.events_logged(), 1u);
}

TEST(Invariants, CountsFromTheLivenessPhaseOnAreCountedTwice) {
  MetricsSink sink;
  Time now{0};
  Metrics m(&sink, 0, [&] { return now; });
  m.count("gets");
  sink.set_liveness_from(from_seconds(10));
  now = from_seconds(9.999);
  m.count("gets");
  now = from_seconds(10);
  m.count("gets", 2);
  EXPECT_EQ(sink.counter("gets"), 4);
  EXPECT_EQ(sink.counter(liveness_counter("gets")), 2);
}

}  // namespace
}  // namespace crowdtrain
