// Matchmaking's messages: see matchmaking_wire.h.
#include "core/averaging/matchmaking_wire.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace crowdtrain {
namespace {

constexpr uint16_t kTagRound = 32;
constexpr uint16_t kTagKey = 33;
constexpr uint16_t kTagGroup = 34;
constexpr uint16_t kTagMembers = 35;     // bytes: u32 little-endian peer id per member
constexpr uint16_t kTagExpiration = 36;  // i64: the asker's planned start, in ns
constexpr uint16_t kTagCode = 37;
constexpr uint16_t kTagPeer = 38;
constexpr uint16_t kTagWeight = 39;      // f64: the joiner's weight in the average (default 1)
constexpr uint16_t kTagWeights = 40;     // bytes: f64 little-endian per member, in member order
constexpr uint16_t kTagBandwidth = 41;   // f64: the joiner's bandwidth (default 1)
constexpr uint16_t kTagMode = 42;        // u64: the joiner's AveragingMode (default node)
constexpr uint16_t kTagBandwidths = 43;  // bytes: f64 little-endian per member
constexpr uint16_t kTagModes = 44;       // bytes: one AveragingMode byte per member

Status bad(const char* what, const std::string& why) {
  return Status::error(std::string("matchmaking ") + what + ": " + why);
}

bool valid_nonneg(double v) { return std::isfinite(v) && v >= 0; }

std::string encode_f64s(const std::vector<double>& values) {
  std::string out(values.size() * 8, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint64_t bits;
    std::memcpy(&bits, &values[i], 8);
    for (int b = 0; b < 8; ++b) out[i * 8 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return out;
}

// `n` values, each finite and >= 0; all 1 when the field is absent.
Result<std::vector<double>> decode_f64s(const Message& m, uint16_t tag, size_t n,
                                        const char* name) {
  std::vector<double> out(n, 1.0);
  if (m.all(tag).empty()) return out;
  auto field = m.bytes(tag);
  if (!field.ok() || field->size() != n * 8) {
    return bad("begin", std::string(name) + " field is not " + std::to_string(n) + " f64 values");
  }
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits = 0;
    for (int b = 0; b < 8; ++b)
      bits |= uint64_t{static_cast<uint8_t>((*field)[i * 8 + b])} << (8 * b);
    std::memcpy(&out[i], &bits, 8);
    if (!valid_nonneg(out[i])) {
      return bad("begin", std::string(name) + " of member " + std::to_string(i) + " is " +
                              std::to_string(out[i]));
    }
  }
  return out;
}

Result<AveragingMode> mode_of(uint64_t v, const char* what) {
  if (v > static_cast<uint64_t>(AveragingMode::kAux)) {
    return bad(what, "unknown averaging mode " + std::to_string(v));
  }
  return static_cast<AveragingMode>(v);
}

std::string encode_peers(const std::vector<GroupMember>& members) {
  std::string out;
  for (const GroupMember& m : members) {
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((m.peer >> (8 * b)) & 0xFF));
  }
  return out;
}

Result<std::vector<PeerId>> decode_peers(const std::string& raw) {
  if (raw.empty() || raw.size() % 4 != 0 || raw.size() / 4 > kMaxGroupSize) {
    return bad("begin", "member list of " + std::to_string(raw.size()) + " bytes");
  }
  std::vector<PeerId> peers;
  for (size_t i = 0; i < raw.size(); i += 4) {
    PeerId p = 0;
    for (int b = 0; b < 4; ++b) p |= PeerId(static_cast<uint8_t>(raw[i + b])) << (8 * b);
    peers.push_back(p);
  }
  return peers;
}

// The round and key every matchmaking message carries.
Status read_round_key(const Message& m, const char* what, uint64_t& round, std::string& key) {
  auto r = m.u64(kTagRound);
  auto k = m.bytes(kTagKey);
  if (!r.ok() || !k.ok()) return bad(what, "no round or key");
  round = *r;
  key = std::move(k).value();
  return Status();
}

// A join request's optional f64 field, finite and >= 0 when present; `out` keeps its default
// when absent.
Status read_optional_nonneg(const Message& m, uint16_t tag, const char* name, double& out) {
  if (m.all(tag).empty()) return Status();
  auto v = m.f64(tag);
  if (!v.ok() || !valid_nonneg(*v)) return bad("join request", std::string("malformed ") + name);
  out = *v;
  return Status();
}

// An optional peer id field: absent reads as kNoPeer.
Result<PeerId> optional_peer(const Message& m, const char* what) {
  if (m.all(kTagPeer).empty()) return kNoPeer;
  auto p = m.u64(kTagPeer);
  if (!p.ok() || *p > kNoPeer) return bad(what, "malformed peer id");
  return static_cast<PeerId>(*p);
}

}  // namespace

double sane_nonneg(double w) { return valid_nonneg(w) ? w : 1.0; }

Status check_group(const AllReduceGroup& g) {
  const size_t n = g.members.size();
  if (n == 0 || n > kMaxGroupSize) return Status::error("a group of " + std::to_string(n));
  std::unordered_set<PeerId> seen;
  bool averages = false;
  for (const GroupMember& m : g.members) {
    if (m.peer == kNoPeer) return Status::error("a member without a peer id");
    if (!seen.insert(m.peer).second) {
      return Status::error("peer " + std::to_string(m.peer) + " listed twice");
    }
    if (!valid_nonneg(m.weight) || !valid_nonneg(m.bandwidth)) {
      return Status::error("peer " + std::to_string(m.peer) + " has weight " +
                           std::to_string(m.weight) + " and bandwidth " +
                           std::to_string(m.bandwidth));
    }
    averages = averages || (m.mode != AveragingMode::kClient && m.bandwidth > 0);
  }
  if (!averages) return Status::error("nobody in the group can average (all clients)");
  return Status();
}

Message encode_join_request(const MmJoinRequest& r) {
  Message m(MsgType::kMmJoinRequest);
  m.add_u64(kTagRound, r.round).add_bytes(kTagKey, r.key);
  m.add_i64(kTagExpiration, r.expiration.count());
  m.add_f64(kTagWeight, r.member.weight).add_f64(kTagBandwidth, r.member.bandwidth);
  m.add_u64(kTagMode, static_cast<uint64_t>(r.member.mode));
  return m;
}

Result<MmJoinRequest> decode_join_request(const Message& m) {
  MmJoinRequest r;
  if (m.type != MsgType::kMmJoinRequest) return bad("join request", "wrong message type");
  if (Status s = read_round_key(m, "join request", r.round, r.key); !s.ok()) return s;
  auto exp = m.i64(kTagExpiration);
  if (!exp.ok()) return bad("join request", "no expiration");
  r.expiration = Time(*exp);
  if (Status s = read_optional_nonneg(m, kTagWeight, "weight", r.member.weight); !s.ok()) return s;
  if (Status s = read_optional_nonneg(m, kTagBandwidth, "bandwidth", r.member.bandwidth); !s.ok()) {
    return s;
  }
  if (!m.all(kTagMode).empty()) {
    auto v = m.u64(kTagMode);
    if (!v.ok()) return bad("join request", "malformed mode");
    auto mode = mode_of(*v, "join request");
    if (!mode.ok()) return mode.status();
    r.member.mode = *mode;
  }
  return r;
}

Message encode_join_response(const MmJoinResponse& r) {
  Message m(MsgType::kMmJoinResponse);
  m.add_u64(kTagCode, static_cast<uint64_t>(r.code)).add_u64(kTagPeer, r.peer);
  return m;
}

Result<MmJoinResponse> decode_join_response(const Message& m) {
  if (m.type != MsgType::kMmJoinResponse) return bad("join response", "wrong message type");
  auto code = m.u64(kTagCode);
  if (!code.ok() || *code > static_cast<uint64_t>(MmJoinCode::kBusy)) {
    return bad("join response", "no known answer code");
  }
  auto peer = optional_peer(m, "join response");
  if (!peer.ok()) return peer.status();
  MmJoinResponse r{static_cast<MmJoinCode>(*code), *peer};
  if (r.code == MmJoinCode::kRedirect && r.peer == kNoPeer) {
    return bad("join response", "a redirect names no peer");
  }
  return r;
}

Message encode_begin(const MmBegin& b) {
  std::vector<double> weights, bandwidths;
  std::string modes;
  for (const GroupMember& m : b.group.members) {
    weights.push_back(m.weight);
    bandwidths.push_back(m.bandwidth);
    modes.push_back(static_cast<char>(m.mode));
  }
  Message m(MsgType::kMmBegin);
  m.add_u64(kTagRound, b.round).add_bytes(kTagKey, b.key).add_u64(kTagGroup, b.group.group_id);
  m.add_bytes(kTagMembers, encode_peers(b.group.members));
  m.add_bytes(kTagWeights, encode_f64s(weights));
  m.add_bytes(kTagBandwidths, encode_f64s(bandwidths)).add_bytes(kTagModes, modes);
  return m;
}

Result<MmBegin> decode_begin(const Message& m) {
  MmBegin b;
  if (m.type != MsgType::kMmBegin) return bad("begin", "wrong message type");
  if (Status s = read_round_key(m, "begin", b.round, b.key); !s.ok()) return s;
  auto gid = m.u64(kTagGroup);
  auto raw = m.bytes(kTagMembers);
  if (!gid.ok() || !raw.ok()) return bad("begin", "no group id or member list");
  auto peers = decode_peers(*raw);
  if (!peers.ok()) return peers.status();
  const size_t n = peers->size();
  auto weights = decode_f64s(m, kTagWeights, n, "weight");
  if (!weights.ok()) return weights.status();
  auto bandwidths = decode_f64s(m, kTagBandwidths, n, "bandwidth");
  if (!bandwidths.ok()) return bandwidths.status();
  std::vector<AveragingMode> modes(n, AveragingMode::kNode);
  if (!m.all(kTagModes).empty()) {
    auto field = m.bytes(kTagModes);
    if (!field.ok() || field->size() != n) return bad("begin", "modes field is not one per member");
    for (size_t i = 0; i < n; ++i) {
      auto mode = mode_of(static_cast<uint8_t>((*field)[i]), "begin");
      if (!mode.ok()) return mode.status();
      modes[i] = *mode;
    }
  }
  b.group.group_id = *gid;
  b.group.round = b.round;
  for (size_t i = 0; i < n; ++i) {
    b.group.members.push_back(GroupMember{(*peers)[i], (*weights)[i], (*bandwidths)[i], modes[i]});
  }
  if (Status s = check_group(b.group); !s.ok()) return bad("begin", s.message());
  return b;
}

Message encode_handover(const MmHandover& h) {
  Message m(MsgType::kMmHandover);
  m.add_u64(kTagRound, h.round).add_bytes(kTagKey, h.key).add_u64(kTagPeer, h.to);
  return m;
}

Result<MmHandover> decode_handover(const Message& m) {
  MmHandover h;
  if (m.type != MsgType::kMmHandover) return bad("handover", "wrong message type");
  if (Status s = read_round_key(m, "handover", h.round, h.key); !s.ok()) return s;
  auto to = optional_peer(m, "handover");
  if (!to.ok()) return to.status();
  h.to = *to;
  return h;
}

}  // namespace crowdtrain
