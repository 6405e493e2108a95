// A DhtNode refuses malformed requests (bad fields, oversized values, too many keys) with an error
// response that names the fault, and they change nothing: not the storage, not the routing table.
// Valid requests whose records are refused (older expiration, validator) get a reason per record.
#include <gtest/gtest.h>

#include "core/dht/dht_app.h"
#include "tests/core/dht/raw_peer.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeWorld;

struct Fixture {
  FakeWorld world{3};
  DhtApp app{world.add_peer(0),
             DhtId::from_key("node"),
             DhtOptions().max_value_bytes(100).max_keys_per_request(8),
             {}};
  RawPeer raw{world.add_peer(1)};
  DhtId sender = DhtId::from_key("raw");

  Fixture() {
    world.attach(0, &app);
    world.attach(1, &raw);
    app.start();
    world.run_for(1s);
  }
  Result<Message> call(Message m) {
    std::optional<Result<Message>> out;
    raw.rpc.call(0, std::move(m), CallOptions(), [&](Result<Message> r) { out = std::move(r); });
    world.run_for(1s);
    CT_CHECK(out.has_value());
    return std::move(*out);
  }
  StoreRequest store_request(std::vector<StoreRecord> records) {
    return StoreRequest{sender, false, false, std::move(records)};
  }
  StoreRecord record(const char* key, std::string value, Time expiration = 600s) {
    return StoreRecord{DhtId::from_key(key), false, "", std::move(value), expiration};
  }
};

void expect_refused(const Result<Message>& r, const std::string& fragment) {
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("refused"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(fragment), std::string::npos) << r.error();
}

TEST(DhtMalformed, RefusedWithAReasonAndNothingChanges) {
  Fixture f;
  DhtNode& node = f.app.node();
  Message bad_sender(MsgType::kDhtStoreRequest);
  bad_sender.add_bytes(kTagNodeId, "abc").add_u64(kTagClient, 0).add_u64(kTagInCache, 0);
  expect_refused(f.call(bad_sender), "(sender id)");
  // One good record and one oversized: the whole store is refused.
  expect_refused(f.call(encode_store_request(f.store_request(
                     {f.record("a", "fine"), f.record("b", std::string(101, 'x'))}))),
                 "101 bytes, limit 100");
  std::vector<StoreRecord> many(9, f.record("c", "v"));
  expect_refused(f.call(encode_store_request(f.store_request(many))), "more than 8 records");
  std::vector<DhtId> keys(9, DhtId::from_key("k"));
  expect_refused(f.call(encode_find_request(FindRequest{f.sender, false, keys})),
                 "more than 8 keys");
  expect_refused(f.call(encode_find_request(FindRequest{f.sender, false, {}})), "at least one");
  Message trailing = encode_ping_request(PingRequest{f.sender, false});
  trailing.add_bytes(77, "junk");
  expect_refused(f.call(trailing), "tag 77");
  Message bad_kind = encode_store_request(f.store_request({f.record("d", "v")}));
  for (Field& field : bad_kind.fields) {
    if (field.tag == kTagKind) field.value = uint64_t{5};
  }
  expect_refused(f.call(bad_kind), "(kind)");
  Message bad_expiration = encode_store_request(f.store_request({f.record("e", "v")}));
  for (Field& field : bad_expiration.fields) {
    if (field.tag == kTagExpiration) field.value = std::string("soon");
  }
  expect_refused(f.call(bad_expiration), "expected i64, got bytes");
  EXPECT_EQ(f.world.sink.counter("dht_malformed_requests"), 8);
  EXPECT_EQ(node.storage().size(), 0u);
  EXPECT_EQ(node.cache().size(), 0u);
  EXPECT_EQ(node.routing_table().size(), 0u) << "a malformed request must not add its sender";

  // A valid store is taken, and the sender becomes a contact.
  auto ok = f.call(encode_store_request(f.store_request({f.record("a", "fine")})));
  ASSERT_TRUE(ok.ok()) << ok.error();
  auto resp = decode_store_response(ok.value(), 1, ProtocolLimits());
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(resp->refusals, std::vector<std::string>{""});
  EXPECT_EQ(resp->responder, node.id());
  EXPECT_EQ(node.storage().size(), 1u);
  EXPECT_TRUE(node.routing_table().contains(f.sender));
}

TEST(DhtMalformed, RecordsRefusedOneByOneWithReasons) {
  Fixture f;
  DhtNode& node = f.app.node();
  node.set_validator([](const StoreRecord& r) {
    if (r.value.rfind("bad", 0) == 0) return Status::error("values may not start with 'bad'");
    return Status::ok_status();
  });
  auto r = f.call(encode_store_request(f.store_request(
      {f.record("a", "new", 900s), f.record("b", "bad value"), f.record("c", "expired", 0s)})));
  ASSERT_TRUE(r.ok()) << r.error();
  auto resp = decode_store_response(r.value(), 3, ProtocolLimits());
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(resp->refusals[0], "");
  EXPECT_NE(resp->refusals[1].find("refused by validator: values may not start with 'bad'"),
            std::string::npos)
      << resp->refusals[1];
  EXPECT_NE(resp->refusals[2].find("expired"), std::string::npos) << resp->refusals[2];
  // An older value for "a" is refused; the stored one stays.
  r = f.call(encode_store_request(f.store_request({f.record("a", "older", 800s)})));
  resp = decode_store_response(r.value(), 1, ProtocolLimits());
  ASSERT_TRUE(resp.ok());
  EXPECT_NE(resp->refusals[0].find("expiring later"), std::string::npos) << resp->refusals[0];
  EXPECT_EQ(node.storage().get(DhtId::from_key("a"))->plain.value, "new");
  EXPECT_EQ(node.storage().size(), 1u);
  EXPECT_EQ(f.world.sink.counter("dht_store_refused"), 3);
  // A find returns the value and the node's contacts.
  auto found = f.call(encode_find_request(FindRequest{f.sender, false, {DhtId::from_key("a")}}));
  ASSERT_TRUE(found.ok());
  auto fr = decode_find_response(found.value(), {DhtId::from_key("a")}, ProtocolLimits());
  ASSERT_TRUE(fr.ok()) << fr.error();
  EXPECT_EQ(fr->results[0].value->plain.value, "new");
}

}  // namespace
}  // namespace crowdtrain::dht
