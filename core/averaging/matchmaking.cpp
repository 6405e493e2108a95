// Matchmaking through the DHT: see matchmaking.h.
#include "core/averaging/matchmaking.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace crowdtrain {
namespace {

constexpr uint16_t kTagMmRound = 32;
constexpr uint16_t kTagMmKey = 33;
constexpr uint16_t kTagMmGroup = 34;
constexpr uint16_t kTagMmMembers = 35;
constexpr uint16_t kTagMmExpiration = 36;
constexpr uint16_t kTagMmCode = 37;
constexpr uint16_t kTagMmPeer = 38;
constexpr uint16_t kTagMmWeight = 39;      // f64: the joiner's weight in the average (default 1)
constexpr uint16_t kTagMmWeights = 40;     // bytes: f64 little-endian per member, in member order
constexpr uint16_t kTagMmBandwidth = 41;   // f64: the joiner's bandwidth (default 1)
constexpr uint16_t kTagMmMode = 42;        // u64: the joiner's AveragingMode (default node)
constexpr uint16_t kTagMmBandwidths = 43;  // bytes: f64 little-endian per member
constexpr uint16_t kTagMmModes = 44;       // bytes: one AveragingMode byte per member

// A member weight or bandwidth from the wire: finite and >= 0, else 1 (the default).
double sane_nonneg(double w) { return std::isfinite(w) && w >= 0 ? w : 1.0; }

AveragingMode sane_mode(uint64_t m) {
  return m <= static_cast<uint64_t>(AveragingMode::kAux) ? static_cast<AveragingMode>(m)
                                                         : AveragingMode::kNode;
}

std::string encode_f64s(const std::vector<double>& values) {
  std::string out(values.size() * 8, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint64_t bits;
    std::memcpy(&bits, &values[i], 8);
    for (int b = 0; b < 8; ++b) out[i * 8 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return out;
}

// `n` values (each sane_nonneg), or all 1 when the field is absent or malformed.
std::vector<double> decode_f64s(Result<std::string> field, size_t n) {
  std::vector<double> out(n, 1.0);
  if (!field.ok() || field.value().size() != n * 8) return out;
  const std::string& raw = field.value();
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits = 0;
    for (int b = 0; b < 8; ++b) {
      bits |= uint64_t{static_cast<uint8_t>(raw[i * 8 + b])} << (8 * b);
    }
    double w;
    std::memcpy(&w, &bits, 8);
    out[i] = sane_nonneg(w);
  }
  return out;
}

// `n` modes, or all node when the field is absent or malformed.
std::vector<AveragingMode> decode_modes(Result<std::string> field, size_t n) {
  std::vector<AveragingMode> out(n, AveragingMode::kNode);
  if (!field.ok() || field.value().size() != n) return out;
  for (size_t i = 0; i < n; ++i) out[i] = sane_mode(static_cast<uint8_t>(field.value()[i]));
  return out;
}

// Somebody in the group averages a part (load_balance would fail otherwise).
bool can_average(const std::vector<GroupMember>& members) {
  return std::any_of(members.begin(), members.end(), [](const GroupMember& m) {
    return m.mode != AveragingMode::kClient && m.bandwidth > 0;
  });
}

enum JoinCode : uint64_t { kAccepted = 0, kRedirect = 1, kRefused = 2, kBusy = 3 };

std::string encode_peers(const std::vector<PeerId>& peers) {
  std::string out;
  for (PeerId p : peers) {
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((p >> (8 * b)) & 0xFF));
  }
  return out;
}

Result<std::vector<PeerId>> decode_peers(const std::string& raw) {
  if (raw.size() % 4 != 0 || raw.size() / 4 > kMaxGroupSize || raw.empty()) {
    return Status::error("matchmaking: bad member list of " + std::to_string(raw.size()) +
                         " bytes");
  }
  std::vector<PeerId> peers;
  for (size_t i = 0; i < raw.size(); i += 4) {
    PeerId p = 0;
    for (int b = 0; b < 4; ++b) p |= PeerId(static_cast<uint8_t>(raw[i + b])) << (8 * b);
    peers.push_back(p);
  }
  return peers;
}

// Parses a decimal peer id (a declaration's subkey).
std::optional<PeerId> parse_peer(const std::string& s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= kNoPeer) return std::nullopt;
  return static_cast<PeerId>(v);
}

}  // namespace

bool is_matchmaking_message(const Message& msg) {
  return msg.type == MsgType::kMmBegin || msg.type == MsgType::kMmHandover;
}

Matchmaker::Matchmaker(Runtime& rt, RpcEndpoint& rpc, dht::DhtNode& dht, MatchmakingOptions options)
    : rt_(rt), rpc_(rpc), dht_(dht), options_(options), alive_(std::make_shared<bool>(true)) {
  rpc_.serve(MsgType::kMmJoinRequest, [this](PeerId from, Message req, RpcEndpoint::Responder r) {
    serve_join(from, std::move(req), std::move(r));
  });
}

Matchmaker::~Matchmaker() { *alive_ = false; }

void Matchmaker::later(Time delay, std::function<void()> fn) {
  rt_.schedule(delay, [alive = std::weak_ptr<bool>(alive_), this, epoch = epoch_, fn] {
    if (alive.expired() || epoch != epoch_ || !done_) return;
    fn();
  });
}

void Matchmaker::look_for_group(std::string key, uint64_t round, DoneFn done) {
  CT_CHECK(!done_);
  ++epoch_;
  key_ = std::move(key);
  round_ = round;
  done_ = std::move(done);
  state_ = State::kLooking;
  leader_ = kNoPeer;
  followers_.clear();
  follower_info_.clear();
  tried_.clear();
  started_ = rt_.now();
  expiration_ = started_ + options_.declare_time();
  deadline_ = started_ + options_.timeout();
  declare();
  later(Time(0), [this] { poll(); });
  later(expiration_ - started_, [this] { at_planned_start(); });
  later(deadline_ - started_, [this] { at_deadline(); });
}

void Matchmaker::cancel() {
  done_ = nullptr;
  state_ = State::kIdle;
  ++epoch_;
}

void Matchmaker::declare() {
  dht_.store_subkey(key_, std::to_string(rt_.self()), "1", expiration_, [this](size_t stored) {
    if (stored == 0) rt_.metrics().count("mm_declare_failed");
  });
}

void Matchmaker::poll() {
  if (state_ == State::kLooking) {
    const uint64_t epoch = epoch_;
    dht_.get_many(
        {key_},
        [this, epoch,
         alive = std::weak_ptr<bool>(alive_)](std::vector<Result<dht::DhtValue>> values) {
          if (alive.expired() || epoch != epoch_ || state_ != State::kLooking) return;
          std::vector<Rank> ranks;
          if (!values.empty() && values[0].ok() && values[0]->is_dictionary) {
            for (const auto& [subkey, entry] : values[0]->dictionary) {
              auto peer = parse_peer(subkey);
              if (peer && entry.expiration > rt_.now()) ranks.push_back({entry.expiration, *peer});
            }
          }
          on_candidates(std::move(ranks));
        },
        /*latest=*/true);
  }
  if (rt_.now() + options_.poll_interval() < deadline_) {
    later(options_.poll_interval(), [this] { poll(); });
  }
}

void Matchmaker::on_candidates(std::vector<Rank> ranks) {
  const Rank self{expiration_, rt_.self()};
  std::sort(ranks.begin(), ranks.end());
  for (const Rank& r : ranks) {
    if (!(r < self)) break;
    if (r.peer == rt_.self() || tried_.count(r.peer)) continue;
    try_join(r.peer);
    return;
  }
  // Nobody better: this peer leads; a group that is big enough begins at the planned start.
  if (rt_.now() >= expiration_ && members() >= options_.min_group_size()) begin_group();
}

void Matchmaker::try_join(PeerId leader) {
  state_ = State::kJoining;
  leader_ = leader;
  Message req(MsgType::kMmJoinRequest);
  req.add_u64(kTagMmRound, round_).add_bytes(kTagMmKey, key_);
  req.add_i64(kTagMmExpiration, expiration_.count());
  req.add_f64(kTagMmWeight, self_.weight).add_f64(kTagMmBandwidth, self_.bandwidth);
  req.add_u64(kTagMmMode, static_cast<uint64_t>(self_.mode));
  const uint64_t epoch = epoch_;
  rpc_.call(
      leader, std::move(req), CallOptions().with_timeout(options_.rpc_timeout()),
      [this, leader, epoch, alive = std::weak_ptr<bool>(alive_)](Result<Message> r) {
        if (alive.expired() || epoch != epoch_ || state_ != State::kJoining || leader_ != leader) {
          return;
        }
        const uint64_t code =
            r.ok() && r->u64(kTagMmCode).ok() ? *r->u64(kTagMmCode) : uint64_t{kRefused};
        state_ = State::kLooking;
        leader_ = kNoPeer;
        if (code == kAccepted) {
          state_ = State::kFollowing;
          leader_ = leader;
          rt_.metrics().count("mm_joined");
          handover_followers(leader);
          return;
        }
        if (code == kBusy) return;  // asked again at the next poll
        tried_.insert(leader);
        if (code == kRedirect && r->u64(kTagMmPeer).ok()) {
          const PeerId to = static_cast<PeerId>(*r->u64(kTagMmPeer));
          if (to != rt_.self() && !tried_.count(to)) try_join(to);
        }
      });
}

void Matchmaker::serve_join(PeerId from, Message req, RpcEndpoint::Responder respond) {
  Message resp(MsgType::kMmJoinResponse);
  auto answer = [&](uint64_t code, PeerId peer = kNoPeer) {
    resp.add_u64(kTagMmCode, code).add_u64(kTagMmPeer, peer);
    respond(std::move(resp));
  };
  auto round = req.u64(kTagMmRound);
  auto key = req.bytes(kTagMmKey);
  auto exp = req.i64(kTagMmExpiration);
  if (!round.ok() || !key.ok() || !exp.ok()) return answer(kRefused);
  if (!done_ || *round != round_ || *key != key_) return answer(kRefused);
  if (state_ == State::kFollowing) return answer(kRedirect, leader_);
  if (state_ == State::kJoining) return answer(kBusy);
  const Rank them{Time(*exp), from};
  if (them < Rank{expiration_, rt_.self()}) return answer(kRefused);
  if (std::find(followers_.begin(), followers_.end(), from) == followers_.end()) {
    if (members() >= options_.target_group_size()) return answer(kRefused);
    followers_.push_back(from);
  }
  auto weight = req.f64(kTagMmWeight);
  auto bandwidth = req.f64(kTagMmBandwidth);
  auto mode = req.u64(kTagMmMode);
  GroupMember& info = follower_info_[from];
  info.peer = from;
  info.weight = weight.ok() ? sane_nonneg(*weight) : 1.0;
  info.bandwidth = bandwidth.ok() ? sane_nonneg(*bandwidth) : 1.0;
  info.mode = mode.ok() ? sane_mode(*mode) : AveragingMode::kNode;
  answer(kAccepted);
  if (members() >= options_.target_group_size()) begin_group();
}

void Matchmaker::at_planned_start() {
  if (state_ == State::kLooking && members() >= options_.min_group_size()) return begin_group();
  if (state_ == State::kLooking || state_ == State::kJoining) {
    // Too few: stay declared until the deadline and keep looking.
    expiration_ = deadline_;
    declare();
  }
}

void Matchmaker::at_deadline() {
  if (state_ == State::kLooking && members() >= options_.min_group_size()) return begin_group();
  if (state_ == State::kFollowing || state_ == State::kJoining) {
    later(options_.begin_grace(), [this] {
      handover_followers(kNoPeer);
      finish(Status::error("matchmaking: the leader never began"));
    });
    return;
  }
  handover_followers(kNoPeer);
  finish(Status::error("matchmaking: no group of at least " +
                       std::to_string(options_.min_group_size()) + " under " + key_));
}

void Matchmaker::begin_group() {
  std::vector<PeerId> peers{rt_.self()};
  peers.insert(peers.end(), followers_.begin(), followers_.end());
  for (size_t i = peers.size(); i > 1; --i)
    std::swap(peers[i - 1], peers[rt_.rng().uniform_int(i)]);
  AllReduceGroup group;
  group.group_id = rt_.rng().next_u64();
  group.round = round_;
  std::vector<double> weights, bandwidths;
  std::string modes;
  for (PeerId p : peers) {
    auto it = follower_info_.find(p);
    GroupMember m = p == rt_.self()              ? self_
                    : it != follower_info_.end() ? it->second
                                                 : GroupMember{};
    m.peer = p;
    m.weight = sane_nonneg(m.weight);
    m.bandwidth = sane_nonneg(m.bandwidth);
    weights.push_back(m.weight);
    bandwidths.push_back(m.bandwidth);
    modes.push_back(static_cast<char>(m.mode));
    group.members.push_back(m);
  }
  if (!can_average(group.members)) {
    handover_followers(kNoPeer);
    return finish(Status::error("matchmaking: nobody in the group of " +
                                std::to_string(peers.size()) + " can average (all clients)"));
  }
  const std::string encoded = encode_peers(peers);
  const std::string encoded_weights = encode_f64s(weights);
  const std::string encoded_bandwidths = encode_f64s(bandwidths);
  for (PeerId f : followers_) {
    Message m(MsgType::kMmBegin);
    m.add_u64(kTagMmRound, round_).add_bytes(kTagMmKey, key_).add_u64(kTagMmGroup, group.group_id);
    m.add_bytes(kTagMmMembers, encoded);
    m.add_bytes(kTagMmWeights, encoded_weights);
    m.add_bytes(kTagMmBandwidths, encoded_bandwidths).add_bytes(kTagMmModes, modes);
    rt_.send(f, std::move(m));
  }
  rt_.metrics().count("mm_groups_led");
  rt_.metrics().observe("mm_group_size", static_cast<double>(peers.size()));
  followers_.clear();
  finish(std::move(group));
}

void Matchmaker::handover_followers(PeerId to) {
  for (PeerId f : followers_) {
    Message m(MsgType::kMmHandover);
    m.add_u64(kTagMmRound, round_).add_bytes(kTagMmKey, key_).add_u64(kTagMmPeer, to);
    rt_.send(f, std::move(m));
  }
  if (!followers_.empty() && to != kNoPeer) rt_.metrics().count("mm_handovers");
  followers_.clear();
}

bool Matchmaker::on_message(PeerId from, const Message& msg) {
  if (!is_matchmaking_message(msg)) return false;
  auto round = msg.u64(kTagMmRound);
  auto key = msg.bytes(kTagMmKey);
  if (!done_ || !round.ok() || !key.ok() || *round != round_ || *key != key_) {
    rt_.metrics().count("mm_stale_messages");
    return true;
  }
  if (msg.type == MsgType::kMmHandover) {
    if (state_ != State::kFollowing || from != leader_) return true;
    auto to = msg.u64(kTagMmPeer);
    state_ = State::kLooking;
    leader_ = kNoPeer;
    tried_.insert(from);
    if (to.ok() && *to != kNoPeer && *to != rt_.self()) try_join(static_cast<PeerId>(*to));
    return true;
  }
  // kMmBegin: from our leader (its accept may still be on the way), or naming us.
  auto gid = msg.u64(kTagMmGroup);
  auto raw = msg.bytes(kTagMmMembers);
  if (!gid.ok() || !raw.ok()) return true;
  auto peers = decode_peers(*raw);
  if (!peers.ok()) return true;
  const bool named = std::find(peers->begin(), peers->end(), rt_.self()) != peers->end();
  const bool ours = (state_ == State::kFollowing || state_ == State::kJoining) && from == leader_;
  if (!named || !(ours || state_ == State::kLooking)) {
    rt_.metrics().count("mm_unexpected_begin");
    return true;
  }
  AllReduceGroup group;
  group.group_id = *gid;
  group.round = round_;
  const size_t n = peers->size();
  const std::vector<double> weights = decode_f64s(msg.bytes(kTagMmWeights), n);
  const std::vector<double> bandwidths = decode_f64s(msg.bytes(kTagMmBandwidths), n);
  const std::vector<AveragingMode> modes = decode_modes(msg.bytes(kTagMmModes), n);
  for (size_t i = 0; i < n; ++i) {
    group.members.push_back(GroupMember{(*peers)[i], weights[i], bandwidths[i], modes[i]});
  }
  handover_followers(from);
  finish(std::move(group));
  return true;
}

void Matchmaker::finish(Result<AllReduceGroup> result) {
  if (!done_) return;
  DoneFn done = std::move(done_);
  done_ = nullptr;
  state_ = State::kIdle;
  ++epoch_;
  rt_.metrics().observe("mm_time_ms", to_seconds(rt_.now() - started_) * 1000.0);
  if (!result.ok()) rt_.metrics().count("mm_no_group");
  rt_.schedule(Time(0), [alive = std::weak_ptr<bool>(alive_), done = std::move(done),
                         r = std::make_shared<Result<AllReduceGroup>>(std::move(result))] {
    if (!alive.expired()) done(std::move(*r));
  });
}

}  // namespace crowdtrain
