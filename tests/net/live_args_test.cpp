// `crowdtrain live --client` (a peer behind NAT): the flags it needs and refuses (exit 2), and the
// workloads that refuse a peer that cannot be called.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/scenario.h"
#include "core/workload.h"
#include "net/live.h"
#include "net/zmq_runtime.h"
#include "tests/mnist_required.h"

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

// What `crowdtrain live --client` hands a workload: a client that knows `peers`.
WorkloadContext client_context(std::vector<PeerId> peers) {
  WorkloadContext context;
  context.client = true;
  context.peers = std::make_shared<const std::vector<PeerId>>(std::move(peers));
  return context;
}

// The workload decides, not the world: the DHT and the mixture-of-experts' trainers run as
// clients, and so does Moshpit averaging; the probe and an expert server refuse.
TEST(LiveClientArgs, WorkloadsThatNeedCallablePeersRefuseAClient) {
  MetricsSink sink;
  auto rt =
      ZmqRuntime::create(ZmqRuntimeOptions().id(0).open_membership(true).client_mode(true), sink);
  ASSERT_TRUE(rt.ok()) << rt.error();
  const WorkloadContext context = client_context({0});
  for (const char* name : {"probe_world", "moe_live_5"}) {
    auto s = load_scenario(std::string(CROWDTRAIN_SOURCE_DIR) + "/scenarios/" + name + ".json", {});
    ASSERT_TRUE(s.ok()) << name << ": " << s.error();
    auto app = make_workload_app(s.value(), *rt.value(), context);
    ASSERT_FALSE(app.ok()) << name;
    EXPECT_NE(app.error().find("client"), std::string::npos) << app.error();
  }
  for (const std::string& path :
       {kScenario, std::string(CROWDTRAIN_SOURCE_DIR) + "/scenarios/moshpit_averaging.json"}) {
    auto s = load_scenario(path, {});
    ASSERT_TRUE(s.ok()) << s.error();
    auto app = make_workload_app(s.value(), *rt.value(), context);
    EXPECT_TRUE(app.ok()) << path << ": " << app.error();
  }
}

}  // namespace
}  // namespace crowdtrain::net

namespace crowdtrain::net {
namespace {

// The words a POSIX shell makes of `line`.
std::vector<std::string> shell_words(const std::string& line) {
  const std::string script = "/tmp/ct_words_" + std::to_string(::getpid()) + ".sh";
  {
    std::ofstream f(script);
    f << "set -- " << line << "\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n";
  }
  std::vector<std::string> words;
  FILE* p = ::popen(("sh " + script).c_str(), "r");
  char buf[4096];
  while (p && std::fgets(buf, sizeof(buf), p)) {
    std::string w(buf);
    if (!w.empty() && w.back() == '\n') w.pop_back();
    words.push_back(w);
  }
  if (p) ::pclose(p);
  std::remove(script.c_str());
  return words;
}

// The reproduce line a live peer prints is one a shell reads back word for word, CurveZMQ keys
// (Z85: $, (, # ...) included, and it names no --duration that the parser would refuse.
TEST(LiveClientArgs, TheReproduceLineSurvivesTheShell) {
  std::string key;  // the first of a fixed series of keys with a $ and a ( in it
  for (int seed = 0; seed < 10000 && key.empty(); ++seed) {
    uint8_t raw[32];
    for (int i = 0; i < 32; ++i) raw[i] = static_cast<uint8_t>(i * 37 + seed * 101 + seed / 7);
    char z85[41];
    zmq_z85_encode(z85, raw, 32);
    const std::string k(z85);
    if (k.find('$') != std::string::npos && k.find('(') != std::string::npos) key = k;
  }
  ASSERT_EQ(key.size(), 40u);
  const std::string initial = "tcp://127.0.0.1:1#" + key;
  const std::string out = ::testing::TempDir() + "ct_reproduce_" + std::to_string(::getpid());
  EXPECT_EQ(live({"--id", "1", "--client", "--initial-peers", initial, "--duration", "0.4", "--out",
                  out}),
            0)
      << stderr_text;
  const size_t at = stderr_text.find("reproduce: ");
  ASSERT_NE(at, std::string::npos) << stderr_text;
  const std::string line = stderr_text.substr(at + 11, stderr_text.find('\n', at) - at - 11);
  const std::vector<std::string> words = shell_words(line);
  auto it = std::find(words.begin(), words.end(), "--initial-peers");
  ASSERT_NE(it, words.end()) << line;
  ASSERT_NE(it + 1, words.end());
  EXPECT_EQ(*(it + 1), initial) << line;
  EXPECT_NE(std::find(words.begin(), words.end(), "--client"), words.end()) << line;
  std::filesystem::remove_all(out);
}

// Moshpit SGD runs on a client by a method that meets through the DHT (moshpit), and refuses one
// whose peers call peers (gossip) with a reason.
TEST(LiveClientArgs, MoshpitSgdRunsAsAClientByAMethodThatMeetsThroughTheDht) {
  CT_REQUIRE_MNIST();
  MetricsSink sink;
  auto rt =
      ZmqRuntime::create(ZmqRuntimeOptions().id(1).open_membership(true).client_mode(true), sink);
  ASSERT_TRUE(rt.ok()) << rt.error();
  const WorkloadContext context = client_context({0, 1});
  const std::string path = std::string(CROWDTRAIN_SOURCE_DIR) + "/scenarios/moshpit_sgd_mnist.json";
  auto s = load_scenario(path, {"peers.count=4", "workload.training.grid_size=2"});
  ASSERT_TRUE(s.ok()) << s.error();
  auto app = make_workload_app(s.value(), *rt.value(), context);
  EXPECT_TRUE(app.ok()) << app.error();
  auto gossip = load_scenario(path, {"peers.count=4", "workload.training.method=gossip"});
  ASSERT_TRUE(gossip.ok()) << gossip.error();
  auto refused = make_workload_app(gossip.value(), *rt.value(), context);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("client"), std::string::npos) << refused.error();
}

}  // namespace
}  // namespace crowdtrain::net
