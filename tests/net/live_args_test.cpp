// `crowdtrain live --client` (a peer behind NAT): the flags it needs and refuses (exit 2), and the
// workloads that refuse a peer that cannot be called.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/scenario.h"
#include "core/workload.h"
#include "net/live.h"
#include "net/zmq_runtime.h"

namespace crowdtrain::net {
namespace {

const std::string kScenario = std::string(CROWDTRAIN_SOURCE_DIR) + "/scenarios/dht_live_8.json";

std::string stderr_text;  // what the last live() printed

int live(std::vector<std::string> args) {
  args.insert(args.begin(), kScenario);
  testing::internal::CaptureStderr();
  const int rc = live_main(args);
  stderr_text = testing::internal::GetCapturedStderr();
  return rc;
}

TEST(LiveClientArgs, AClientNeedsOpenMembershipAndNoAddress) {
  EXPECT_EQ(live({"--id", "1", "--client", "--peers", "0=tcp://127.0.0.1:1"}), 2);
  EXPECT_NE(stderr_text.find("--client needs open membership"), std::string::npos);
  EXPECT_EQ(live({"--id", "1", "--client", "--listen", "tcp://127.0.0.1:1", "--initial-peers",
                  "tcp://127.0.0.1:2"}),
            2);
  EXPECT_NE(stderr_text.find("--client and --listen"), std::string::npos);
  EXPECT_EQ(live({"--id", "1", "--client"}), 2);
  EXPECT_NE(stderr_text.find("--client needs --initial-peers"), std::string::npos);
  EXPECT_EQ(live({"--id", "1"}), 2);
  EXPECT_NE(stderr_text.find("--listen (or --client) is required"), std::string::npos);
}

// The workload decides, not the world: the DHT and the mixture-of-experts' trainers run as
// clients; averaging, Moshpit SGD, the probe and an expert server refuse.
TEST(LiveClientArgs, WorkloadsThatNeedCallablePeersRefuseAClient) {
  MetricsSink sink;
  auto rt =
      ZmqRuntime::create(ZmqRuntimeOptions().id(0).open_membership(true).client_mode(true), sink);
  ASSERT_TRUE(rt.ok()) << rt.error();
  WorkloadContext context;
  context.client = true;
  context.peers = std::make_shared<const std::vector<PeerId>>(std::vector<PeerId>{0});
  for (const char* name : {"probe_world", "moshpit_averaging", "moshpit_sgd_mnist", "moe_live_5"}) {
    auto s = load_scenario(std::string(CROWDTRAIN_SOURCE_DIR) + "/scenarios/" + name + ".json", {});
    ASSERT_TRUE(s.ok()) << name << ": " << s.error();
    auto app = make_workload_app(s.value(), *rt.value(), context);
    ASSERT_FALSE(app.ok()) << name;
    EXPECT_NE(app.error().find("client"), std::string::npos) << app.error();
  }
  auto dht = load_scenario(kScenario, {});
  ASSERT_TRUE(dht.ok()) << dht.error();
  EXPECT_TRUE(make_workload_app(dht.value(), *rt.value(), context).ok());
}

}  // namespace
}  // namespace crowdtrain::net
