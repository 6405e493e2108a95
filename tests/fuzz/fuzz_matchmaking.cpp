// libFuzzer target: matchmaking's messages (core/averaging/matchmaking_wire.h), what a peer reads
// from another peer while it looks for an averaging group: join requests and answers, the group a
// leader hands over, the hand-over to another leader. Every decoder returns a message or a reason;
// a decoded group is one an honest leader could have formed (check_group), and every decoded
// message encodes back to a message that decodes to the same thing.
#include <cstddef>
#include <cstdint>

#include "core/averaging/matchmaking_wire.h"
#include "core/message.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace crowdtrain;

bool same_member(const GroupMember& a, const GroupMember& b) {
  return a.peer == b.peer && a.weight == b.weight && a.bandwidth == b.bandwidth && a.mode == b.mode;
}

void check_request(const Message& m) {
  auto r = decode_join_request(m);
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    return;
  }
  auto again = decode_join_request(encode_join_request(r.value()));
  FUZZ_CHECK(again.ok() && again->round == r->round && again->key == r->key &&
             again->expiration == r->expiration);
  GroupMember a = r->member, b = again->member;
  a.peer = b.peer = 0;  // the sender's id is not on the wire
  FUZZ_CHECK(same_member(a, b));
  FUZZ_CHECK(sane_nonneg(r->member.weight) == r->member.weight);
  FUZZ_CHECK(sane_nonneg(r->member.bandwidth) == r->member.bandwidth);
}

void check_begin(const Message& m) {
  auto b = decode_begin(m);
  if (!b.ok()) {
    FUZZ_CHECK(!b.status().message().empty());
    return;
  }
  FUZZ_CHECK(check_group(b->group).ok());
  FUZZ_CHECK(b->group.round == b->round);
  auto again = decode_begin(encode_begin(b.value()));
  FUZZ_CHECK(again.ok() && again->group.group_id == b->group.group_id);
  FUZZ_CHECK(again->group.members.size() == b->group.members.size());
  for (size_t i = 0; i < b->group.members.size(); ++i) {
    FUZZ_CHECK(same_member(again->group.members[i], b->group.members[i]));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = decode_copy(data, size);
  if (!m.ok()) return 0;
  check_request(m.value());
  check_begin(m.value());
  if (auto r = decode_join_response(m.value()); r.ok()) {
    FUZZ_CHECK(r->code != MmJoinCode::kRedirect || r->peer != kNoPeer);
    auto again = decode_join_response(encode_join_response(r.value()));
    FUZZ_CHECK(again.ok() && again->code == r->code && again->peer == r->peer);
  }
  if (auto h = decode_handover(m.value()); h.ok()) {
    auto again = decode_handover(encode_handover(h.value()));
    FUZZ_CHECK(again.ok() && again->to == h->to && again->round == h->round &&
               again->key == h->key);
  }
  return 0;
}
