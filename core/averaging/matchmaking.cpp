// Matchmaking through the DHT: see matchmaking.h.
#include "core/averaging/matchmaking.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace crowdtrain {
namespace {

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
  others_seen_ = 0;
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
  if (options_.client()) return;  // nobody can call it: it only asks
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
  const auto others = std::count_if(ranks.begin(), ranks.end(),
                                    [&](const Rank& r) { return r.peer != rt_.self(); });
  others_seen_ = std::max(others_seen_, static_cast<uint32_t>(others));
  for (const Rank& r : ranks) {
    if (!(r < self) && !options_.client()) break;  // a client asks whoever declared
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
  Message req = encode_join_request(MmJoinRequest{round_, key_, expiration_, self_});
  const uint64_t epoch = epoch_;
  rpc_.call(
      leader, std::move(req), CallOptions().with_timeout(options_.rpc_timeout()),
      [this, leader, epoch, alive = std::weak_ptr<bool>(alive_)](Result<Message> r) {
        if (alive.expired() || epoch != epoch_ || state_ != State::kJoining || leader_ != leader) {
          return;
        }
        auto answer = r.ok() ? decode_join_response(*r) : Result<MmJoinResponse>(r.status());
        if (r.ok() && !answer.ok()) rt_.metrics().count("mm_bad_messages");
        const MmJoinCode code = answer.ok() ? answer->code : MmJoinCode::kRefused;
        state_ = State::kLooking;
        leader_ = kNoPeer;
        if (code == MmJoinCode::kAccepted) {
          state_ = State::kFollowing;
          leader_ = leader;
          rt_.metrics().count("mm_joined");
          handover_followers(leader);
          return;
        }
        if (code == MmJoinCode::kBusy) return;  // asked again at the next poll
        tried_.insert(leader);
        if (code == MmJoinCode::kRedirect) {
          const PeerId to = answer->peer;
          if (to != rt_.self() && !tried_.count(to)) try_join(to);
        }
      });
}

void Matchmaker::serve_join(PeerId from, Message req, RpcEndpoint::Responder respond) {
  auto answer = [&](MmJoinCode code, PeerId peer = kNoPeer) {
    respond(encode_join_response(MmJoinResponse{code, peer}));
  };
  auto ask = decode_join_request(req);
  if (!ask.ok()) {
    rt_.metrics().count("mm_bad_messages");
    return answer(MmJoinCode::kRefused);
  }
  if (!done_ || ask->round != round_ || ask->key != key_ || options_.client()) {
    return answer(MmJoinCode::kRefused);
  }
  if (state_ == State::kFollowing) return answer(MmJoinCode::kRedirect, leader_);
  if (state_ == State::kJoining) return answer(MmJoinCode::kBusy);
  const Rank them{ask->expiration, from};
  if (them < Rank{expiration_, rt_.self()}) return answer(MmJoinCode::kRefused);
  if (std::find(followers_.begin(), followers_.end(), from) == followers_.end()) {
    if (members() >= options_.target_group_size()) return answer(MmJoinCode::kRefused);
    followers_.push_back(from);
  }
  GroupMember& info = follower_info_[from];
  info = ask->member;
  info.peer = from;
  answer(MmJoinCode::kAccepted);
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
  for (PeerId p : peers) {
    auto it = follower_info_.find(p);
    GroupMember m = p == rt_.self()              ? self_
                    : it != follower_info_.end() ? it->second
                                                 : GroupMember{};
    m.peer = p;  // weights and bandwidths are sane: set_weight/set_bandwidth, decoded requests
    group.members.push_back(m);
  }
  if (Status s = check_group(group); !s.ok()) {
    handover_followers(kNoPeer);
    return finish(Status::error("matchmaking: the group of " + std::to_string(peers.size()) +
                                " cannot average: " + s.message()));
  }
  const Message begin = encode_begin(MmBegin{round_, key_, group});
  for (PeerId f : followers_) rt_.send(f, Message(begin));
  rt_.metrics().count("mm_groups_led");
  rt_.metrics().observe("mm_group_size", static_cast<double>(peers.size()));
  followers_.clear();
  finish(std::move(group));
}

void Matchmaker::handover_followers(PeerId to) {
  for (PeerId f : followers_) rt_.send(f, encode_handover(MmHandover{round_, key_, to}));
  if (!followers_.empty() && to != kNoPeer) rt_.metrics().count("mm_handovers");
  followers_.clear();
}

bool Matchmaker::on_message(PeerId from, const Message& msg) {
  if (!is_matchmaking_message(msg)) return false;
  if (msg.type == MsgType::kMmHandover) {
    auto h = decode_handover(msg);
    if (!h.ok()) {
      rt_.metrics().count("mm_bad_messages");
    } else if (!done_ || h->round != round_ || h->key != key_) {
      rt_.metrics().count("mm_stale_messages");
    } else if (state_ == State::kFollowing && from == leader_) {
      state_ = State::kLooking;
      leader_ = kNoPeer;
      tried_.insert(from);
      if (h->to != kNoPeer && h->to != rt_.self()) try_join(h->to);
    }
    return true;
  }
  auto b = decode_begin(msg);  // kMmBegin
  if (!b.ok()) {
    rt_.metrics().count("mm_bad_messages");
    return true;
  }
  if (!done_ || b->round != round_ || b->key != key_) {
    rt_.metrics().count("mm_stale_messages");
    return true;
  }
  // From our leader (its accept may still be on the way), or naming us while we look.
  const auto& members = b->group.members;
  const bool named = std::any_of(members.begin(), members.end(),
                                 [&](const GroupMember& m) { return m.peer == rt_.self(); });
  const bool ours = (state_ == State::kFollowing || state_ == State::kJoining) && from == leader_;
  if (!named || !(ours || state_ == State::kLooking)) {
    rt_.metrics().count("mm_unexpected_begin");
    return true;
  }
  handover_followers(from);
  finish(std::move(b->group));
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
