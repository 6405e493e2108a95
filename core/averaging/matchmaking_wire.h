// Matchmaking's messages on the wire (core/averaging/matchmaking.h): one struct per message, an
// encoder and a decoder each. The decoders are the only code that reads a matchmaking message from
// a peer: each returns the message or an error saying what is wrong, never crashes, and what it
// returns is something an honest peer could have sent (a group of distinct members, at most
// kMaxGroupSize of them, weights and bandwidths finite and >= 0, somebody able to average).
// Fields that older peers did not send (weight, bandwidth, mode) read as their defaults when
// absent; present but malformed, they refuse the message. No state; no LibTorch.
#pragma once

#include <cstdint>
#include <string>

#include "core/averaging/allreduce.h"
#include "core/message.h"
#include "core/status.h"
#include "core/time.h"

namespace crowdtrain {

// A join request's answer.
enum class MmJoinCode : uint64_t { kAccepted = 0, kRedirect = 1, kRefused = 2, kBusy = 3 };

// kMmJoinRequest: "lead me in round `round` under `key`"; `member` is what the asker advertises
// (its peer id is the sender's, not on the wire).
struct MmJoinRequest {
  uint64_t round = 0;
  std::string key;
  Time expiration{0};  // the asker's declared planned start: its rank
  GroupMember member;
};

// kMmJoinResponse. `peer`: the leader to ask instead (kRedirect), else kNoPeer.
struct MmJoinResponse {
  MmJoinCode code = MmJoinCode::kRefused;
  PeerId peer = kNoPeer;
};

// kMmBegin: the leader hands the assembled group to a follower.
struct MmBegin {
  uint64_t round = 0;
  std::string key;
  AllReduceGroup group;  // group.round == round
};

// kMmHandover: the leader sends its followers to a better leader `to` (kNoPeer: it gave up).
struct MmHandover {
  uint64_t round = 0;
  std::string key;
  PeerId to = kNoPeer;
};

Message encode_join_request(const MmJoinRequest& r);
Message encode_join_response(const MmJoinResponse& r);
Message encode_begin(const MmBegin& b);
Message encode_handover(const MmHandover& h);

Result<MmJoinRequest> decode_join_request(const Message& m);
Result<MmJoinResponse> decode_join_response(const Message& m);
Result<MmBegin> decode_begin(const Message& m);
Result<MmHandover> decode_handover(const Message& m);

// A member weight or bandwidth as a peer advertises it: finite and >= 0, else 1 (the default).
double sane_nonneg(double w);
// The group checks decode_begin applies (distinct members, 1..kMaxGroupSize of them, finite
// weights and bandwidths >= 0, somebody averages): Ok, or what is wrong.
Status check_group(const AllReduceGroup& g);

}  // namespace crowdtrain
