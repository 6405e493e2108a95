// core/moe/moe_options: workload.moe read into MoeOptions through the scenario reader — the
// server's keys (stale-update policy included) become their enums, and bad values are refused with
// the JSON path and what is wrong.
#include "core/moe/moe_options.h"

#include <gtest/gtest.h>

#include <string>

namespace crowdtrain::moe {
namespace {

using nlohmann::json;

json with_server(const json& server) {
  json doc = json::parse(R"({"peers": {"count": 8}, "workload": {"kind": "moe", "moe": {}}})");
  doc["workload"]["moe"]["server"] = server;
  return doc;
}

std::string error_of(const json& doc) {
  auto r = parse_scenario(doc);
  EXPECT_FALSE(r.ok()) << doc.dump();
  return r.ok() ? "" : r.error();
}

TEST(MoeOptionsTest, ServerKeysAndTheirDefaults) {
  auto defaults = parse_scenario(with_server(json::object()));
  ASSERT_TRUE(defaults.ok()) << defaults.error();
  const MoeServerOptions& d = defaults->workload.options_of<MoeOptions>("moe").server;
  EXPECT_EQ(d.stale_updates, StaleUpdates::kApply);
  EXPECT_EQ(d.max_staleness, 4u);
  EXPECT_EQ(d.min_update_samples, 0u);
  EXPECT_FALSE(d.sign_declarations);

  auto s = parse_scenario(with_server(json::parse(R"({
    "max_batch_size": 64, "failure_prob": 0.1, "stale_updates": "skip", "max_staleness": 2,
    "min_update_samples": 16,
    "declare_period_s": 10, "declare_expiration_s": 25, "sign_declarations": true})")));
  ASSERT_TRUE(s.ok()) << s.error();
  const MoeServerOptions& o = s->workload.options_of<MoeOptions>("moe").server;
  EXPECT_EQ(o.max_batch_size, 64u);
  EXPECT_DOUBLE_EQ(o.failure_prob, 0.1);
  EXPECT_EQ(o.stale_updates, StaleUpdates::kSkip);
  EXPECT_EQ(o.max_staleness, 2u);
  EXPECT_EQ(o.min_update_samples, 16u);
  EXPECT_TRUE(o.sign_declarations);
  auto scale = parse_scenario(with_server(json::parse(R"({"stale_updates": "scale"})")));
  ASSERT_TRUE(scale.ok()) << scale.error();
  EXPECT_EQ(scale->workload.options_of<MoeOptions>("moe").server.stale_updates,
            StaleUpdates::kScale);
}

TEST(MoeOptionsTest, TrainerGateNorm) {
  json doc = with_server(json::object());
  auto off = parse_scenario(doc);
  ASSERT_TRUE(off.ok()) << off.error();
  EXPECT_FALSE(off->workload.options_of<MoeOptions>("moe").trainer.gate_norm);
  doc["workload"]["moe"]["trainer"] = json::parse(R"({"gate_norm": true})");
  auto on = parse_scenario(doc);
  ASSERT_TRUE(on.ok()) << on.error();
  EXPECT_TRUE(on->workload.options_of<MoeOptions>("moe").trainer.gate_norm);
  doc["workload"]["moe"]["trainer"] = json::parse(R"({"gate_norm": 1})");
  EXPECT_EQ(error_of(doc), "workload.moe.trainer.gate_norm: expected true or false, got 1");
}

TEST(MoeOptionsTest, BadServerValuesNameTheirPath) {
  EXPECT_EQ(error_of(with_server(json::parse(R"({"stale_updates": "drop"})"))),
            "workload.moe.server.stale_updates: must be one of \"apply\", \"scale\", \"skip\", "
            "got \"drop\"");
  EXPECT_EQ(error_of(with_server(json::parse(R"({"max_staleness": -1})"))),
            "workload.moe.server.max_staleness: expected an unsigned integer, got -1");
  EXPECT_NE(error_of(with_server(json::parse(R"({"failure_prob": 1})")))
                .find("workload.moe.server.failure_prob"),
            std::string::npos);
  EXPECT_NE(error_of(with_server(json::parse(R"({"declare_period_s": 30,
                                                 "declare_expiration_s": 30})")))
                .find("workload.moe.server.declare_expiration_s: must be > declare_period_s"),
            std::string::npos);
  EXPECT_NE(error_of(with_server(json::parse(R"({"stale": 1})"))).find("workload.moe.server.stale"),
            std::string::npos);
}

}  // namespace
}  // namespace crowdtrain::moe
