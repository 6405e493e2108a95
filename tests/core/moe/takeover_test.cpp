// core/moe/takeover: an ExpertGuardian on the FakeWorld backs up an expert from a real
// ExpertServer (kMoeStateRequest), adopts it with the newest copy only once its DHT record has
// stayed empty for takeover_after, never without a copy, and once only; the state messages are
// decoded strictly and a server refuses state requests for experts it does not host.
#include "core/moe/takeover.h"

#include <gtest/gtest.h>

#include <map>

#include "core/moe/server.h"
#include "tests/core/moe/rpc_app.h"
#include "tests/core/moe/scale_expert.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::moe {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeRuntime;
using crowdtrain::testing::FakeWorld;
using testing::RpcApp;
using testing::ScaleExpert;

constexpr PeerId kHost = 10, kGuard = 11;

// The DHT as a map the test edits: uid -> replica record.
class MapDirectory final : public ExpertDirectory {
 public:
  explicit MapDirectory(Runtime& rt) : rt_(rt) {}
  void get_many(std::vector<std::string> keys,
                std::function<void(std::vector<std::optional<Dict>>)> done) override {
    std::vector<std::optional<Dict>> out;
    for (const auto& k : keys) {
      auto it = records.find(k);
      out.push_back(it == records.end() ? std::nullopt : std::optional<Dict>(it->second));
    }
    rt_.schedule(0ms, [out, done = std::move(done)] { done(out); });
  }
  std::map<std::string, Dict> records;

 private:
  Runtime& rt_;
};

class TakeoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeRuntime& host_rt = world_.add_peer(kHost);
    host_rpc_ = std::make_unique<RpcEndpoint>(host_rt);
    host_app_ = std::make_unique<RpcApp>(*host_rpc_);
    world_.attach(kHost, host_app_.get());
    server_ = std::make_unique<ExpertServer>(host_rt, *host_rpc_, ExpertServerOptions());
    auto e = std::make_unique<ScaleExpert>("x", 2, 2.5f, 0.5f, nullptr);
    expert_ = e.get();
    ASSERT_TRUE(server_->add_expert("x.0", std::move(e)).ok());

    guard_rt_ = &world_.add_peer(kGuard);
    guard_rpc_ = std::make_unique<RpcEndpoint>(*guard_rt_);
    guard_app_ = std::make_unique<RpcApp>(*guard_rpc_);
    world_.attach(kGuard, guard_app_.get());
    directory_ = std::make_unique<MapDirectory>(*guard_rt_);
    directory_->records["x.0"] = {{"10", ""}};
  }
  void start_guardian() {
    ExpertGuardianOptions o;
    o.backup_interval = 1s;
    o.takeover_after = 3s;
    o.rpc_timeout = 500ms;
    guardian_ = std::make_unique<ExpertGuardian>(
        *guard_rt_, *guard_rpc_, *directory_, std::vector<GuardedExpert>{{"x.0", {kHost}}}, o,
        [this](const std::string& uid, const std::string& state) {
          adopted_.emplace_back(uid, state);
          return Status::ok_status();
        });
    guardian_->start();
  }
  // Trains the host's expert a little (w changes, updates counted).
  void step_host_expert() {
    auto x = testing::rows_of(2, 2, 1.0f);
    ASSERT_TRUE(expert_->backward(x, x).ok());
  }
  int64_t counter(const char* name) const { return world_.sink.counter(name); }

  FakeWorld world_;
  std::unique_ptr<RpcEndpoint> host_rpc_, guard_rpc_;
  std::unique_ptr<RpcApp> host_app_, guard_app_;
  std::unique_ptr<ExpertServer> server_;
  ScaleExpert* expert_ = nullptr;
  FakeRuntime* guard_rt_ = nullptr;
  std::unique_ptr<MapDirectory> directory_;
  std::vector<std::pair<std::string, std::string>> adopted_;
  std::unique_ptr<ExpertGuardian> guardian_;
};

TEST_F(TakeoverTest, TheGuardianKeepsTheNewestStateOfItsExpert) {
  start_guardian();
  world_.run_for(500ms);
  ASSERT_TRUE(guardian_->backup_of("x.0").has_value());
  EXPECT_EQ(*guardian_->backup_of("x.0"), expert_->save_state().value());
  step_host_expert();
  world_.run_for(1s);
  EXPECT_EQ(*guardian_->backup_of("x.0"), expert_->save_state().value());  // the trained w
  EXPECT_GE(counter("moe_backup_pulls"), 2);
  world_.run_for(10s);
  EXPECT_TRUE(adopted_.empty());  // the record is there: nothing to adopt
}

TEST_F(TakeoverTest, AnOrphanIsAdoptedOnceWithItsNewestStateAfterTheGracePeriod) {
  start_guardian();
  step_host_expert();
  world_.run_for(1500ms);
  const std::string last = expert_->save_state().value();
  world_.detach(kHost);  // the host dies; its record expires a little later
  world_.run_for(2s);
  directory_->records.erase("x.0");
  world_.run_for(2s);
  EXPECT_TRUE(adopted_.empty());  // empty for less than takeover_after
  world_.run_for(2s);
  ASSERT_EQ(adopted_.size(), 1u);
  EXPECT_EQ(adopted_[0].first, "x.0");
  EXPECT_EQ(adopted_[0].second, last);
  EXPECT_EQ(guardian_->guarded(), 0u);
  EXPECT_EQ(counter("moe_takeovers"), 1);
  EXPECT_GT(counter("moe_backup_failures"), 0);  // pulls from the dead host timed out
  world_.run_for(10s);
  EXPECT_EQ(adopted_.size(), 1u);
}

TEST_F(TakeoverTest, NoCopyNoAdoption) {
  world_.detach(kHost);  // never reachable
  directory_->records.clear();
  start_guardian();
  world_.run_for(20s);
  EXPECT_TRUE(adopted_.empty());
  EXPECT_EQ(guardian_->guarded(), 1u);
  EXPECT_GT(counter("moe_backup_failures"), 10);
}

TEST_F(TakeoverTest, AFailedAdoptionIsTriedAgain) {
  ExpertGuardianOptions o;
  o.backup_interval = 1s;
  o.takeover_after = 1s;
  int tries = 0;
  guardian_ = std::make_unique<ExpertGuardian>(
      *guard_rt_, *guard_rpc_, *directory_, std::vector<GuardedExpert>{{"x.0", {kHost}}}, o,
      [&](const std::string&, const std::string&) {
        return ++tries < 3 ? Status::error("disk full") : Status::ok_status();
      });
  guardian_->start();
  world_.run_for(1500ms);
  directory_->records.clear();
  world_.run_for(10s);
  EXPECT_EQ(tries, 3);
  EXPECT_EQ(counter("moe_takeover_failures"), 2);
  EXPECT_EQ(counter("moe_takeovers"), 1);
}

TEST(StateProtocol, RoundTripAndStrictDecoding) {
  const ProtocolLimits limits;
  auto req = decode_state_request(encode_state_request({"ffn.1.2"}), limits);
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req->uid, "ffn.1.2");
  auto resp = decode_state_response(encode_state_response({"ffn.1.2", "abc", 7}), limits);
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(resp->state, "abc");
  EXPECT_EQ(resp->updates, 7u);

  // Through the wire codec too (what the live world does with every message).
  for (const Message& wire :
       {encode_state_request({"ffn.1.2"}), encode_state_response({"ffn.1.2", "abc", 7})}) {
    const std::vector<uint8_t> bytes = encode(wire);
    auto back = decode_copy(bytes.data(), bytes.size(), CodecLimits{});
    ASSERT_TRUE(back.ok()) << back.error();
    EXPECT_EQ(back->type, wire.type);
  }

  Message m = encode_state_request({""});
  EXPECT_NE(decode_state_request(m, limits).error().find("uid"), std::string::npos);
  m = encode_state_request({"a"});
  m.add_u64(99, 1);
  EXPECT_NE(decode_state_request(m, limits).error().find("unexpected field"), std::string::npos);
  m = encode_state_response({"a", "xyz", 1});
  m.fields[1].value = uint64_t{3};  // state as a number
  EXPECT_NE(decode_state_response(m, limits).error().find("state"), std::string::npos);
  ProtocolLimits small;
  small.max_bytes = 2;
  EXPECT_NE(
      decode_state_response(encode_state_response({"a", "xyz", 1}), small).error().find("limit"),
      std::string::npos);
  EXPECT_FALSE(decode_state_request(encode_state_response({"a", "", 0}), limits).ok());
}

TEST_F(TakeoverTest, TheServerRefusesStateOfAnExpertItDoesNotHost) {
  Result<Message> got = Status::error("no answer");
  guard_rpc_->call(kHost, encode_state_request({"y.0"}), CallOptions(),
                   [&](Result<Message> r) { got = std::move(r); });
  world_.run_for(1s);
  ASSERT_FALSE(got.ok());  // a refusal, with the server's reason
  EXPECT_NE(got.error().find("no expert 'y.0'"), std::string::npos) << got.error();
  EXPECT_EQ(counter("moe_state_refused"), 1);
}

}  // namespace
}  // namespace crowdtrain::moe
