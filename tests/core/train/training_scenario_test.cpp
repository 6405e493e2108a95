// The scenario reader of workload.training: defaults, and errors that name the JSON path of the
// offending key (wrong choice, out of range, not a power of two, time-outs that do not fit a round,
// bad target accuracies, unknown keys).
#include <gtest/gtest.h>

#include "core/scenario.h"
#include "core/train/training_options.h"

namespace crowdtrain {
namespace {

std::string error_of(const std::string& training) {
  auto doc = nlohmann::json::parse(R"({"peers": {"count": 16}, "workload": {"kind": "training",
      "training": )" + training + "}}");
  auto r = parse_scenario(doc);
  return r.ok() ? "" : r.error();
}

TEST(TrainingScenario, DefaultsParse) {
  auto r = parse_scenario(nlohmann::json::parse(R"({"workload": {"kind": "training"}})"));
  ASSERT_TRUE(r.ok()) << r.error();
  const train::TrainingWorkloadOptions& t = train::training_options_of(*r);
  EXPECT_EQ(t.group.method, AveragingMethod::kMoshpit);
  EXPECT_EQ(t.mode, train::TrainingMode::kLocalSgd);
  EXPECT_EQ(t.model, train::ModelKind::kMlp);
  EXPECT_EQ(t.compression, Compression::kNone);
  EXPECT_EQ(t.target_accuracies, (std::vector<double>{0.9, 0.93}));
  EXPECT_EQ(error_of(R"({"method": "gossip", "lr": 0.1, "target_accuracies": [0.5]})"), "");
}

TEST(TrainingScenario, ErrorsNameTheJsonPath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"method": "sgp"})", "workload.training.method"},
      {R"({"lr": -1})", "workload.training.lr"},
      {R"({"batch_size": 0})", "workload.training.batch_size"},
      {R"({"grid_size": 6})", "workload.training.grid_size: must be a power of two"},
      {R"({"compression": "zip"})", "workload.training.compression: unknown codec"},
      {R"({"target_accuracies": [0.9, 1.5]})", "workload.training.target_accuracies[1]"},
      {R"({"round_interval_s": 5})", "workload.training.round_interval_s"},
      {R"({"declare_s": 4})", "workload.training.declare_s"},
      {R"({"min_group_size": 0})", "workload.training.min_group_size"},
      {R"({"optimiser": "adam"})", "workload.training.optimiser: unknown key"},
      {R"({"mode": "collaborative_sgd"})", "workload.training.mode"},
      {R"({"mode": "collaborative", "method": "gossip"})",
       "workload.training.method: collaborative mode averages gradients by all-reduce"},
      {R"({"target_batch_size": 0})", "workload.training.target_batch_size"},
      {R"({"report_interval_s": 0})", "workload.training.report_interval_s"},
  };
  for (const auto& [training, want] : cases) {
    const std::string e = error_of(training);
    EXPECT_NE(e.find(want), std::string::npos) << training << " -> " << e;
  }
  // allreduce_open may ask for every peer (min_group_size 0); allreduce's group is everybody.
  EXPECT_EQ(error_of(R"({"method": "allreduce_open", "min_group_size": 0})"), "");
  EXPECT_EQ(error_of(R"({"method": "allreduce", "min_group_size": 0})"), "");
  EXPECT_EQ(error_of(R"({"mode": "collaborative", "method": "allreduce_open",
      "target_batch_size": 512})"),
            "");
  EXPECT_NE(
      error_of(R"({"mode": "collaborative", "method": "allreduce"})").find("got \"allreduce\""),
      std::string::npos);
  // Choices are enums from the reader on.
  auto r = parse_scenario(nlohmann::json::parse(R"({"workload": {"kind": "training", "training":
      {"model": "cnn", "optimizer": "adam", "compression": "fp16", "mode": "collaborative"}}})"));
  ASSERT_TRUE(r.ok()) << r.error();
  const train::TrainingWorkloadOptions& t = train::training_options_of(*r);
  EXPECT_EQ(t.model, train::ModelKind::kCnn);
  EXPECT_EQ(t.optimizer, train::OptimizerKind::kAdam);
  EXPECT_EQ(t.compression, Compression::kFloat16);
  EXPECT_EQ(t.mode, train::TrainingMode::kCollaborative);
}

}  // namespace
}  // namespace crowdtrain
