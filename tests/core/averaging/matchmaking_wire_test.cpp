// Matchmaking's messages (core/averaging/matchmaking_wire.h): each encodes and decodes back to
// itself; the decoders refuse, with a reason, what an honest peer could not have sent (duplicate
// members, a group nobody can average in, fields of the wrong size, unknown codes and modes); a
// looking peer that receives such a group counts it and keeps looking.
#include "core/averaging/matchmaking_wire.h"

#include <gtest/gtest.h>

#include <limits>

namespace crowdtrain {
namespace {

AllReduceGroup group_of(std::vector<GroupMember> members) {
  return AllReduceGroup{77, 3, std::move(members)};
}

TEST(MatchmakingWire, EveryMessageRoundTrips) {
  const GroupMember m{0, 2.0, 0.5, AveragingMode::kClient};
  auto req = decode_join_request(encode_join_request(MmJoinRequest{3, "k", Time(9), m}));
  ASSERT_TRUE(req.ok()) << req.status().message();
  EXPECT_EQ(req->round, 3u);
  EXPECT_EQ(req->key, "k");
  EXPECT_EQ(req->expiration, Time(9));
  EXPECT_EQ(req->member.weight, 2.0);
  EXPECT_EQ(req->member.bandwidth, 0.5);
  EXPECT_EQ(req->member.mode, AveragingMode::kClient);

  auto resp = decode_join_response(encode_join_response({MmJoinCode::kRedirect, 5}));
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->code, MmJoinCode::kRedirect);
  EXPECT_EQ(resp->peer, 5u);

  const AllReduceGroup g = group_of({{4, 1.0, 1.0, AveragingMode::kNode},
                                     {9, 0.25, 0.0, AveragingMode::kClient},
                                     {2, 0.0, 3.0, AveragingMode::kAux}});
  auto begin = decode_begin(encode_begin(MmBegin{3, "k", g}));
  ASSERT_TRUE(begin.ok()) << begin.status().message();
  EXPECT_EQ(begin->group.group_id, 77u);
  EXPECT_EQ(begin->group.round, 3u);
  ASSERT_EQ(begin->group.members.size(), 3u);
  EXPECT_EQ(begin->group.members[1].peer, 9u);
  EXPECT_EQ(begin->group.members[1].weight, 0.25);
  EXPECT_EQ(begin->group.members[2].mode, AveragingMode::kAux);

  auto h = decode_handover(encode_handover(MmHandover{3, "k", kNoPeer}));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->to, kNoPeer);
}

TEST(MatchmakingWire, OlderPeersMissingFieldsReadAsDefaults) {
  Message req(MsgType::kMmJoinRequest);
  req.add_u64(32, 1).add_bytes(33, "k").add_i64(36, 4);
  auto r = decode_join_request(req);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->member.weight, 1.0);
  EXPECT_EQ(r->member.bandwidth, 1.0);
  EXPECT_EQ(r->member.mode, AveragingMode::kNode);
  Message begin(MsgType::kMmBegin);
  begin.add_u64(32, 1).add_bytes(33, "k").add_u64(34, 8).add_bytes(35, std::string("\1\0\0\0", 4));
  auto b = decode_begin(begin);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->group.members.size(), 1u);
  EXPECT_EQ(b->group.members[0].peer, 1u);
}

std::string refusal(const Result<MmBegin>& r) { return r.ok() ? "" : r.status().message(); }

TEST(MatchmakingWire, ABeginThatNoHonestLeaderSendsIsRefused) {
  const GroupMember a{1, 1.0, 1.0, AveragingMode::kNode};
  const GroupMember b{2, 1.0, 1.0, AveragingMode::kNode};
  EXPECT_NE(refusal(decode_begin(encode_begin({3, "k", group_of({a, b, a})}))).find("twice"),
            std::string::npos);
  const GroupMember c1{1, 1.0, 1.0, AveragingMode::kClient},
      c2{2, 1.0, 1.0, AveragingMode::kClient};
  EXPECT_NE(refusal(decode_begin(encode_begin({3, "k", group_of({c1, c2})}))).find("can average"),
            std::string::npos);
  const GroupMember nan{2, std::numeric_limits<double>::quiet_NaN(), 1.0, AveragingMode::kNode};
  EXPECT_NE(refusal(decode_begin(encode_begin({3, "k", group_of({a, nan})}))).find("weight"),
            std::string::npos);
  // A weights field one member short.
  Message m = encode_begin({3, "k", group_of({a, b})});
  Message cut(MsgType::kMmBegin);
  cut.add_bytes(35, *m.bytes(35));
  cut.add_u64(32, 3).add_bytes(33, "k").add_u64(34, 1).add_bytes(40, std::string(8, '\0'));
  EXPECT_NE(refusal(decode_begin(cut)).find("weight field"), std::string::npos);
  // A mode byte we do not know.
  Message modes(MsgType::kMmBegin);
  modes.add_u64(32, 3).add_bytes(33, "k").add_u64(34, 1);
  modes.add_bytes(35, std::string("\1\0\0\0", 4)).add_bytes(44, std::string("\7", 1));
  EXPECT_NE(refusal(decode_begin(modes)).find("mode"), std::string::npos);
  // An empty member list, and one of a length that is not whole peer ids.
  Message empty(MsgType::kMmBegin);
  empty.add_u64(32, 3).add_bytes(33, "k").add_u64(34, 1).add_bytes(35, "");
  EXPECT_FALSE(decode_begin(empty).ok());
  Message odd(MsgType::kMmBegin);
  odd.add_u64(32, 3).add_bytes(33, "k").add_u64(34, 1).add_bytes(35, "abc");
  EXPECT_FALSE(decode_begin(odd).ok());
}

TEST(MatchmakingWire, OtherMalformedMessagesAreRefused) {
  Message redirect(MsgType::kMmJoinResponse);
  redirect.add_u64(37, 1);  // a redirect that names nobody
  EXPECT_FALSE(decode_join_response(redirect).ok());
  Message code(MsgType::kMmJoinResponse);
  code.add_u64(37, 9);
  EXPECT_FALSE(decode_join_response(code).ok());
  Message req = encode_join_request({1, "k", Time(0), GroupMember{}});
  Message negative(MsgType::kMmJoinRequest);
  negative.add_u64(32, 1).add_bytes(33, "k").add_i64(36, 0).add_f64(39, -1.0);
  EXPECT_FALSE(decode_join_request(negative).ok());
  Message no_key(MsgType::kMmHandover);
  no_key.add_u64(32, 1);
  EXPECT_FALSE(decode_handover(no_key).ok());
  EXPECT_FALSE(decode_begin(req).ok());  // the wrong type
}

}  // namespace
}  // namespace crowdtrain
