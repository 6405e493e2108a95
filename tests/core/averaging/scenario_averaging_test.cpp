// The reader of workload.averaging: the methods it accepts and the errors of its cross-checked keys
// (gossip window, payload scaling), each naming its JSON path.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace crowdtrain
