// The DHT wire protocol: round trips of every message, and one test per kind of malformed message
// (each refused with a reason that names the field).
#include "core/dht/protocol.h"

#include <gtest/gtest.h>

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;

const ProtocolLimits kLimits;

DhtId id(const char* s) { return DhtId::from_key(s); }

void expect_error(const Status& s, const std::string& fragment) {
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(Protocol, PingRoundTrip) {
  auto req = decode_ping_request(encode_ping_request(PingRequest{id("a"), true}), kLimits);
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req->sender, id("a"));
  EXPECT_TRUE(req->client);
  auto resp = decode_ping_response(encode_ping_response(PingResponse{id("b")}), kLimits);
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(resp->responder, id("b"));
}

TEST(Protocol, StoreRoundTrip) {
  StoreRequest r{id("s"), false, true, {}};
  r.records.push_back(StoreRecord{id("k1"), false, "", "v1", 10s});
  r.records.push_back(StoreRecord{id("k2"), true, "sub", "v2", 20s});
  auto back = decode_store_request(encode_store_request(r), kLimits);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_TRUE(back->in_cache);
  ASSERT_EQ(back->records.size(), 2u);
  EXPECT_EQ(back->records[1].key, id("k2"));
  EXPECT_TRUE(back->records[1].has_subkey);
  EXPECT_EQ(back->records[1].subkey, "sub");
  EXPECT_EQ(back->records[1].value, "v2");
  EXPECT_EQ(back->records[1].expiration, 20s);
  auto resp = decode_store_response(encode_store_response(StoreResponse{id("r"), {"", "too old"}}),
                                    2, kLimits);
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(resp->refusals, (std::vector<std::string>{"", "too old"}));
  expect_error(
      decode_store_response(encode_store_response(StoreResponse{id("r"), {""}}), 2, kLimits)
          .status(),
      "missing");
}

TEST(Protocol, FindRoundTrip) {
  std::vector<DhtId> keys{id("a"), id("b"), id("c")};
  auto req = decode_find_request(encode_find_request(FindRequest{id("s"), false, keys}), kLimits);
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req->keys, keys);
  FindResponse resp{id("r"), {}};
  FindKeyResult plain, dict, none;
  plain.value.emplace();
  plain.value->plain = {"p", 5s};
  plain.nearest = {Contact{id("x"), 3}, Contact{id("y"), 4}};
  dict.value.emplace();
  dict.value->is_dictionary = true;
  dict.value->dictionary = {{"s1", {"1", 6s}}, {"s2", {"2", 7s}}};
  none.nearest = {Contact{id("z"), 5}};
  resp.results = {plain, dict, none};
  auto back = decode_find_response(encode_find_response(resp, keys), keys, kLimits);
  ASSERT_TRUE(back.ok()) << back.error();
  ASSERT_EQ(back->results.size(), 3u);
  EXPECT_EQ(back->results[0].value->plain, (ValueEntry{"p", 5s}));
  EXPECT_EQ(back->results[0].nearest, plain.nearest);
  EXPECT_EQ(back->results[1].value->dictionary, dict.value->dictionary);
  EXPECT_FALSE(back->results[2].value.has_value());
  EXPECT_EQ(back->results[2].nearest, none.nearest);
  // Answering other keys than those asked is an error.
  std::vector<DhtId> other{id("a"), id("c"), id("b")};
  expect_error(decode_find_response(encode_find_response(resp, keys), other, kLimits).status(),
               "asked");
}

TEST(Protocol, RefusesMalformedRequests) {
  // Wrong type, flagged as a response.
  Message ping = encode_ping_request(PingRequest{id("a"), false});
  expect_error(decode_store_request(ping, kLimits).status(), "message type");
  Message flagged = ping;
  flagged.flags = kFlagResponse;
  expect_error(decode_ping_request(flagged, kLimits).status(), "flagged as a response");
  // A sender id of the wrong length; a field of the wrong kind; a trailing field.
  Message bad_id(MsgType::kDhtPingRequest);
  bad_id.add_bytes(kTagNodeId, "short").add_u64(kTagClient, 0);
  expect_error(decode_ping_request(bad_id, kLimits).status(), "field 0 (sender id)");
  Message bad_kind(MsgType::kDhtPingRequest);
  bad_kind.add_bytes(kTagNodeId, id("a").to_bytes()).add_i64(kTagClient, 0);
  expect_error(decode_ping_request(bad_kind, kLimits).status(), "expected u64, got i64");
  Message trailing = ping;
  trailing.add_u64(99, 1);
  expect_error(decode_ping_request(trailing, kLimits).status(), "unexpected field with tag 99");
  Message bad_flag(MsgType::kDhtPingRequest);
  bad_flag.add_bytes(kTagNodeId, id("a").to_bytes()).add_u64(kTagClient, 7);
  expect_error(decode_ping_request(bad_flag, kLimits).status(), "0 or 1");
}

TEST(Protocol, RefusesOversizedAndTooManyRecords) {
  ProtocolLimits small;
  small.max_keys_per_request = 3;
  small.max_value_bytes = 16;
  small.max_subkey_bytes = 4;
  StoreRequest r{id("s"), false, false, {}};
  r.records.push_back(StoreRecord{id("k"), false, "", std::string(17, 'x'), 10s});
  expect_error(decode_store_request(encode_store_request(r), small).status(),
               "(value): 17 bytes, limit 16");
  r.records[0] = StoreRecord{id("k"), true, "longsub", "v", 10s};
  expect_error(decode_store_request(encode_store_request(r), small).status(), "(subkey)");
  r.records.assign(4, StoreRecord{id("k"), false, "", "v", 10s});
  expect_error(decode_store_request(encode_store_request(r), small).status(), "more than 3");
  r.records.clear();
  expect_error(decode_store_request(encode_store_request(r), small).status(), "at least one");
  std::vector<DhtId> keys(4, id("k"));
  expect_error(
      decode_find_request(encode_find_request(FindRequest{id("s"), false, keys}), small).status(),
      "more than 3 keys");
  // A value entry of an unknown kind; a key holding both a plain value and subkeys.
  Message m(MsgType::kDhtStoreRequest);
  m.add_bytes(kTagNodeId, id("s").to_bytes()).add_u64(kTagClient, 0).add_u64(kTagInCache, 0);
  m.add_bytes(kTagKey, id("k").to_bytes()).add_u64(kTagKind, 2);
  expect_error(decode_store_request(m, kLimits).status(), "(kind)");
  Message f(MsgType::kDhtFindResponse);
  f.flags = kFlagResponse;
  f.add_bytes(kTagNodeId, id("r").to_bytes()).add_bytes(kTagKey, id("k").to_bytes());
  f.add_u64(kTagKind, 0).add_bytes(kTagValue, "v").add_i64(kTagExpiration, 1);
  f.add_u64(kTagKind, 1).add_bytes(kTagSubkey, "s").add_bytes(kTagValue, "v");
  f.add_i64(kTagExpiration, 1);
  expect_error(decode_find_response(f, {id("k")}, kLimits).status(), "not both");
  Message c(MsgType::kDhtFindResponse);
  c.flags = kFlagResponse;
  c.add_bytes(kTagNodeId, id("r").to_bytes()).add_bytes(kTagKey, id("k").to_bytes());
  c.add_bytes(kTagContactId, id("x").to_bytes()).add_u64(kTagContactPeer, 1ull << 40);
  expect_error(decode_find_response(c, {id("k")}, kLimits).status(), "not a peer id");
}

}  // namespace
}  // namespace crowdtrain::dht
