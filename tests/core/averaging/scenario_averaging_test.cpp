// The reader of workload.averaging: the methods it accepts and the errors of its cross-checked keys
// (gossip window, payload scaling), each naming its JSON path; the load-balancing keys and what a
// peer advertises from them.
#include <gtest/gtest.h>

#include "core/averaging/averaging_workload.h"
#include "core/scenario.h"

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

TEST(ScenarioAveraging, AcceptsEveryMethod) {
  for (const char* m : {"moshpit", "allreduce", "random_groups", "gossip", "pushsum"}) {
    auto r = parse_averaging(std::string(R"({"method": ")") + m + "\"}");
    ASSERT_TRUE(r.ok()) << m << ": " << r.error();
    EXPECT_EQ(r->workload.averaging.method, m);
  }
  EXPECT_EQ(error_of(R"({"method": "ring"})"),
            "workload.averaging.method: must be one of \"moshpit\", \"allreduce\", "
            "\"random_groups\", \"gossip\", \"pushsum\", got \"ring\"");
}

TEST(ScenarioAveraging, GossipWindowAndPayloadScaling) {
  auto ok = parse_averaging(R"({"gossip_window_s": 1.5, "wire_params": 1e8, "vector_size": 1024})");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->workload.averaging.gossip_window_s, 1.5);
  EXPECT_EQ(ok->workload.averaging.wire_params, 1e8);
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
  EXPECT_EQ(ok->workload.averaging.balance.load_balance, "equal");
  EXPECT_EQ(ok->workload.averaging.balance.bandwidth_mbps, 40);
  EXPECT_EQ(ok->workload.averaging.balance.client_below_mbps, 8);
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
  LoadBalanceSpec spec;
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
  spec.load_balance = "equal";
  EXPECT_EQ(advertised_link(spec, link).bandwidth_mbps, 0);
  EXPECT_EQ(advertised_link(spec, link).mode, AveragingMode::kNode);
}

}  // namespace
}  // namespace crowdtrain
