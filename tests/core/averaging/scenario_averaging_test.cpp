// The reader of workload.averaging: the methods it accepts and the errors of its cross-checked keys
// (gossip window, payload scaling), each naming its JSON path; the load-balancing keys and what a
// peer advertises from them.
#include <gtest/gtest.h>

#include "core/averaging/averaging_options.h"
#include "core/averaging/averaging_protocol.h"
#include "core/scenario.h"
#include "core/train/training_options.h"
#include "core/workload.h"

namespace crowdtrain {
namespace {

using nlohmann::json;

Result<Scenario> parse_averaging(const std::string& averaging) {
  return parse_scenario(
      json::parse(R"({"workload": {"kind": "averaging", "averaging": )" + averaging + "}}"));
}

std::string error_of(const std::string& averaging) {
  auto r = parse_averaging(averaging);
  EXPECT_FALSE(r.ok()) << averaging;
  return r.ok() ? "" : r.error();
}

const GroupAveragingOptions& group_of(const Scenario& s) { return averaging_options_of(s).group; }

TEST(ScenarioAveraging, AcceptsEveryMethod) {
  const std::vector<std::pair<std::string, AveragingMethod>> methods = {
      {"moshpit", AveragingMethod::kMoshpit},
      {"allreduce", AveragingMethod::kAllReduce},
      {"allreduce_open", AveragingMethod::kAllReduceOpen},
      {"random_groups", AveragingMethod::kRandomGroups},
      {"gossip", AveragingMethod::kGossip},
      {"pushsum", AveragingMethod::kPushSum}};
  for (const auto& [name, method] : methods) {
    auto r = parse_averaging(R"({"method": ")" + name + "\"}");
    ASSERT_TRUE(r.ok()) << name << ": " << r.error();
    EXPECT_EQ(group_of(*r).method, method);
    EXPECT_EQ(averaging_method_name(method), name);
  }
  EXPECT_EQ(error_of(R"({"method": "ring"})"),
            "workload.averaging.method: must be one of \"moshpit\", \"allreduce\", "
            "\"allreduce_open\", \"random_groups\", \"gossip\", \"pushsum\", got \"ring\"");
}

// Both averaging workloads read the group keys with one reader: the same names, the same checks,
// each with its own defaults.
TEST(ScenarioAveraging, TrainingReadsTheSameGroupKeys) {
  auto training = parse_scenario(json::parse(
      R"({"workload": {"kind": "training", "training": {"method": "allreduce_open",
          "min_group_size": 0, "load_balance": "equal"}}})"));
  ASSERT_TRUE(training.ok()) << training.error();
  const GroupAveragingOptions& t = train::training_options_of(*training).group;
  EXPECT_EQ(t.method, AveragingMethod::kAllReduceOpen);
  EXPECT_EQ(t.min_group_size, 0u);
  EXPECT_EQ(t.balance.load_balance, LoadBalance::kEqual);
  EXPECT_EQ(error_of(R"({"method": "moshpit", "min_group_size": 0})"),
            "workload.averaging.min_group_size: must be >= 2 (0 means all peers: allreduce_open "
            "only)");
  EXPECT_EQ(error_of(R"({"method": "moshpit", "min_group_size": 1})"),
            "workload.averaging.min_group_size: must be >= 2 (0 means all peers: allreduce_open "
            "only)");
  auto open = parse_averaging(R"({"method": "allreduce_open", "min_group_size": 0})");
  ASSERT_TRUE(open.ok()) << open.error();
  EXPECT_EQ(group_of(*open).min_group_size, 0u);
  // The defaults differ: the averaging experiment's grid is 32 x 32, training's 8 x 8.
  auto plain = parse_averaging("{}");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(group_of(*plain).grid_size, 32u);
  EXPECT_EQ(GroupAveragingOptions::training_defaults().grid_size, 8u);
}

TEST(ScenarioAveraging, GossipWindowAndPayloadScaling) {
  auto ok = parse_averaging(R"({"gossip_window_s": 1.5, "wire_params": 1e8, "vector_size": 1024})");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(group_of(*ok).gossip_window_s, 1.5);
  EXPECT_EQ(averaging_options_of(*ok).wire_params, 1e8);
  EXPECT_EQ(error_of(R"({"gossip_window_s": 0})"),
            "workload.averaging.gossip_window_s: must be > 0, got 0");
  EXPECT_EQ(error_of(R"({"gossip_window_s": 10, "round_interval_s": 10})"),
            "workload.averaging.gossip_window_s: must be below round_interval_s");
  EXPECT_EQ(error_of(R"({"wire_params": -1})"),
            "workload.averaging.wire_params: must be in [0, 1000000000000], got -1");
  EXPECT_EQ(error_of(R"({"wire_params": 100, "vector_size": 64})"),
            "workload.averaging.wire_params: must carry at least the real vector (vector_size "
            "float64 = 2 x vector_size float32 parameters), or be 0");
}

TEST(ScenarioAveraging, LoadBalanceKeys) {
  auto ok =
      parse_averaging(R"({"load_balance": "equal", "bandwidth_mbps": 40, "client_below_mbps": 8})");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(group_of(*ok).balance.load_balance, LoadBalance::kEqual);
  EXPECT_EQ(group_of(*ok).balance.bandwidth_mbps, 40);
  EXPECT_EQ(group_of(*ok).balance.client_below_mbps, 8);
  EXPECT_EQ(error_of(R"({"load_balance": "fair"})"),
            "workload.averaging.load_balance: must be one of \"bandwidth\", \"equal\", got "
            "\"fair\"");
  EXPECT_EQ(error_of(R"({"client_below_mbps": -1})"),
            "workload.averaging.client_below_mbps: must be in [0, 1000000000], got -1");
  auto training = parse_scenario(
      json::parse(R"({"workload": {"kind": "training", "training": {"bandwidth_mbps": "fast"}}})"));
  ASSERT_FALSE(training.ok());
  EXPECT_EQ(training.error().rfind("workload.training.bandwidth_mbps: ", 0), 0u)
      << training.error();
}

TEST(ScenarioAveraging, WhatAPeerAdvertises) {
  LoadBalanceOptions spec;
  WorkloadContext link;
  link.upload_mbps = 30;
  link.download_mbps = 120;
  // The slower direction of the link the world drew.
  EXPECT_EQ(advertised_link(spec, link).bandwidth_mbps, 30);
  EXPECT_EQ(advertised_link(spec, link).mode, AveragingMode::kNode);
  // Live: no link known, equal parts unless the host says.
  EXPECT_EQ(advertised_link(spec, WorkloadContext{}).bandwidth_mbps, 0);
  spec.bandwidth_mbps = 55;
  EXPECT_EQ(advertised_link(spec, WorkloadContext{}).bandwidth_mbps, 55);
  spec.bandwidth_mbps = 0;
  spec.client_below_mbps = 50;
  EXPECT_EQ(advertised_link(spec, link).mode, AveragingMode::kClient);
  spec.load_balance = LoadBalance::kEqual;
  EXPECT_EQ(advertised_link(spec, link).bandwidth_mbps, 0);
  EXPECT_EQ(advertised_link(spec, link).mode, AveragingMode::kNode);
}

}  // namespace
}  // namespace crowdtrain
