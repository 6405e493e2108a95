// DhtNode on the fake world: which failed calls count against a peer. A peer that refuses a store
// (record by record through its validator, or the whole request with an error response) answered,
// so it is alive: it is not blacklisted and stays in the routing table. A silent peer (time-outs)
// is blacklisted, and stays in the table unless a replacement waits for its place; a node cut off
// by a loss burst keeps its contacts and finds values again afterwards.
#include <gtest/gtest.h>

#include "core/dht/dht_app.h"
#include "core/dht/node.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeWorld;

// A DHT peer that answers pings and finds but refuses every store request as a whole, with an
// error response (as a peer does whose limits are lower than the sender's, or whose node stopped).
class StoreRefusingApp final : public PeerApp {
 public:
  StoreRefusingApp(Runtime& rt, DhtId id, DhtOptions options)
      : rpc_(rt), node_(rt, rpc_, id, options) {
    rpc_.serve(MsgType::kDhtStoreRequest, [this](PeerId, Message m, RpcEndpoint::Responder r) {
      ++refused;
      r(make_error_response(m, "dht store: not accepting stores"));
    });
  }
  void start() override {
    node_.bootstrap({0}, [](Status) {});
  }
  void on_message(PeerId from, Message msg) override { rpc_.handle(from, std::move(msg)); }
  DhtNode& node() { return node_; }
  int refused = 0;

 private:
  RpcEndpoint rpc_;
  DhtNode node_;
};

TEST(DhtNodeFailures, RefusingPeersStayAndSilentPeersAreBlacklisted) {
  FakeWorld world(11);
  Rng rng(derive_seed(11, "dht-failures-test"));
  // Retries so that a time-out is really one (several attempts), and a store reaches everyone.
  const DhtOptions options = DhtOptions()
                                 .replicas(8)
                                 .rpc_timeout(500ms)
                                 .rpc_retries(1)
                                 .blacklist_time(60s)
                                 .blacklist_max_time(120s);
  // Peer 0 asks; 1 refuses whole store requests; 2 refuses every record through its validator;
  // 3 falls silent after bootstrapping; 4 and 5 behave.
  std::vector<std::unique_ptr<DhtApp>> apps(6);
  apps[0] = std::make_unique<DhtApp>(world.add_peer(0), DhtId::random(rng), options,
                                     std::vector<PeerId>{});
  StoreRefusingApp refuser(world.add_peer(1), DhtId::random(rng), options);
  for (PeerId p : {2, 3, 4, 5}) {
    apps[p] = std::make_unique<DhtApp>(world.add_peer(p), DhtId::random(rng), options,
                                       std::vector<PeerId>{0});
  }
  apps[2]->node().set_validator(
      [](const StoreRecord&) { return Status::error("this peer accepts nothing"); });
  world.attach(0, apps[0].get());
  world.attach(1, &refuser);
  for (PeerId p : {2, 3, 4, 5}) world.attach(p, apps[p].get());
  apps[0]->start();
  world.run_for(100ms);
  refuser.start();
  for (PeerId p : {2, 3, 4, 5}) apps[p]->start();
  world.run_for(5s);

  DhtNode& asker = apps[0]->node();
  const DhtId refuser_id = refuser.node().id();
  const DhtId validator_id = apps[2]->node().id();
  const DhtId silent_id = apps[3]->node().id();
  ASSERT_TRUE(asker.routing_table().contains(refuser_id));
  ASSERT_TRUE(asker.routing_table().contains(validator_id));
  ASSERT_TRUE(asker.routing_table().contains(silent_id));

  world.detach(3);  // peer 3 still exists but nothing reaches it any more
  size_t stored = 999;
  asker.store("some-key", "some-value", world.now() + 3600s, [&](size_t n) { stored = n; });
  world.run_for(10s);

  // The store reached peers 1 and 2, which refused it, and timed out at peer 3; it took at 0, 4, 5.
  EXPECT_EQ(stored, 3u);
  EXPECT_GE(refuser.refused, 1);
  EXPECT_GE(world.sink.counter("dht_store_refused"), 1);  // peer 2's validator, record by record
  EXPECT_GE(world.sink.counter("dht_rpc_refused"), 1);    // peer 1's error response
  EXPECT_FALSE(asker.blacklisted(1));
  EXPECT_TRUE(asker.routing_table().contains(refuser_id));
  EXPECT_FALSE(asker.blacklisted(2));
  EXPECT_TRUE(asker.routing_table().contains(validator_id));
  EXPECT_TRUE(asker.blacklisted(3));
  // Kept, as Kademlia keeps a silent contact whose bucket has no replacement waiting: a node whose
  // own link failed must not flush its table (RoutingTable::remove_if_replaceable).
  EXPECT_TRUE(asker.routing_table().contains(silent_id));
  EXPECT_GE(world.sink.counter("dht_failed_contact_kept"), 1);
  EXPECT_GE(world.sink.counter("dht_rpc_failed"), 1);

  // The refusing peers still serve lookups: a get of a key stored by a well-behaved peer works
  // from the refuser, which asks the others.
  bool got = false;
  refuser.node().get("some-key", [&](Result<DhtValue> r) {
    got = r.ok() && !r->is_dictionary && r->plain.value == "some-value";
  });
  world.run_for(10s);
  EXPECT_TRUE(got);
  EXPECT_FALSE(asker.blacklisted(1));
  EXPECT_TRUE(asker.routing_table().contains(refuser_id));
}

}  // namespace
}  // namespace crowdtrain::dht

namespace crowdtrain::dht {
namespace {

// Found by `crowdtrain swarm scenarios/swarm_dht.json` (seed 19, with workload.dht.republish_s=20):
// a loss burst made every call of a node time out, the node dropped every contact, and once the
// network was whole again it could not look anything up: 112 of the 279 gets of keys that a live
// peer held failed in the liveness phase, many at once ("0 ms": nobody left to ask). Contacts that
// fail now stay unless a replacement waits (Kademlia, section 4.1).
TEST(DhtNodeFailures, Seed19ANodeCutOffByALossBurstFindsValuesAfterwards) {
  FakeWorld world(19);
  Rng rng(derive_seed(19, "dht-cut-off-test"));
  const DhtOptions options = DhtOptions()
                                 .rpc_timeout(500ms)
                                 .rpc_retries(1)
                                 .blacklist_time(5s)
                                 .blacklist_max_time(10s)
                                 .republish_period(Time(0));
  std::vector<std::unique_ptr<DhtApp>> apps(8);
  for (PeerId p = 0; p < 8; ++p) {
    apps[p] = std::make_unique<DhtApp>(world.add_peer(p), DhtId::random(rng), options,
                                       p == 0 ? std::vector<PeerId>{} : std::vector<PeerId>{0});
    world.attach(p, apps[p].get());
  }
  apps[0]->start();
  world.run_for(100ms);
  for (PeerId p = 1; p < 8; ++p) apps[p]->start();
  world.run_for(5s);
  size_t stored = 0;
  apps[1]->node().store("key", "value", world.now() + 3600s, [&](size_t n) { stored = n; });
  world.run_for(5s);
  ASSERT_GE(stored, 1u);
  DhtNode& cut = apps[7]->node();
  ASSERT_GT(cut.routing_table().size(), 0u);
  // The burst: nothing to or from peer 7 arrives, while it keeps asking.
  world.filter = [](PeerId from, PeerId to, Message&) { return from != 7 && to != 7; };
  for (int i = 0; i < 5; ++i) {
    cut.get("other-" + std::to_string(i), [](Result<DhtValue>) {});
    world.run_for(3s);
  }
  EXPECT_GT(cut.routing_table().size(), 0u);  // before the fix: 0
  // The network is whole again; once the blacklist lapses the node finds the value.
  world.filter = nullptr;
  world.run_for(15s);
  bool found = false;
  cut.get("key", [&](Result<DhtValue> r) { found = r.ok(); });
  world.run_for(5s);
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace crowdtrain::dht
