// The Moshpit All-Reduce peer: see averager.h.
#include "core/averaging/averager.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/averaging/allreduce_wire.h"
#include "core/averaging/round_slots.h"
#include "core/tensor_codec.h"

namespace crowdtrain {

struct Averager::RoundState {
  at::Tensor local;  // read by the round until it is done
  std::unique_ptr<AllReduceRound> allreduce;
};

Averager::Averager(Runtime& rt, AveragerOptions options, std::shared_ptr<AveragingSource> source,
                   std::shared_ptr<AveragingObserver> observer)
    : rt_(rt),
      options_(std::move(options)),
      source_(std::move(source)),
      observer_(std::move(observer)),
      rpc_(rt),
      bits_(options_.initial_bits),
      alive_(std::make_shared<bool>(true)) {
  dht_ = std::make_unique<dht::DhtNode>(rt_, rpc_, dht::DhtId::random(rt_.rng()), options_.dht);
  matchmaker_ = std::make_unique<Matchmaker>(rt_, rpc_, *dht_, options_.matchmaking);
}

Averager::~Averager() {
  *alive_ = false;
  round_.reset();
  matchmaker_.reset();
  dht_.reset();
}

void Averager::start() {
  rt_.schedule(options_.start_delay, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    dht_->start();
    dht_->bootstrap(options_.bootstrap, [this](Status s) {
      if (!s.ok()) rt_.metrics().event("averaging_bootstrap_failed", {{"why", s.message()}});
    });
    // A round whose peers are still declaring themselves is joined late (a live process up 45 ms
    // after round 0 began, on a loaded machine, missed it, its partner found no group, and the
    // missed round broke the grid's pairs); a fixed membership's all-reduce has begun at the
    // round's start, so it waits for the next.
    const Time grace = options_.key_mode == GroupKeyMode::kFixedMembership
                           ? Time(0)
                           : options_.matchmaking.declare_time();
    const uint64_t first =
        first_open_round(rt_.now(), options_.first_round, options_.round_interval, grace);
    // Rounds whose time had passed before this peer was up (a late joiner, or a slow process
    // start in live mode) are counted, so that nobody mistakes them for rounds it averaged in.
    const uint64_t missed = std::min<uint64_t>(first, options_.rounds);
    if (missed > 0) {
      rt_.metrics().count("averaging_rounds_before_start", static_cast<int64_t>(missed));
    }
    schedule_round(first);
  });
}

void Averager::schedule_round(uint64_t round) {
  if (round >= options_.rounds) return;
  const Time at = round_start(round, options_.first_round, options_.round_interval);
  const Time delay = at > rt_.now() ? at - rt_.now() : Time(0);
  rt_.schedule(delay, [this, round, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) begin_round(round);
  });
}

void Averager::begin_round(uint64_t round) {
  if (observer_ && observer_->stop_requested()) return;
  schedule_round(round + 1);
  if (busy_) {
    rt_.metrics().count("averaging_round_overrun");
    return;
  }
  if (options_.failure_prob > 0.0 && rt_.rng().bernoulli(options_.failure_prob)) {
    rt_.metrics().count("averaging_sat_out");
    rt_.metrics().event("averaging_sat_out", {{"round", round}}, EventDetail::kOperation);
    end_round(round);
    return;
  }
  busy_ = true;
  buffered_.clear();  // whatever is left belongs to groups that are over
  if (options_.key_mode == GroupKeyMode::kFixedMembership) {
    // A fixed membership needs no matchmaking: every peer of 0..N-1 in id order, one group per
    // round, whoever is missing.
    AllReduceGroup everyone;
    everyone.group_id = derive_seed(options_.random_groups_seed, "everyone", round);
    everyone.round = round;
    for (uint32_t p = 0; p < options_.peers; ++p) everyone.members.push_back(GroupMember{p});
    on_group(round, std::move(everyone));
    return;
  }
  const std::string key = group_key(round);
  matchmaker_->set_weight(source_->weight());
  matchmaker_->set_bandwidth(options_.bandwidth_mbps > 0 ? options_.bandwidth_mbps : 1.0);
  matchmaker_->set_mode(options_.mode);
  matchmaker_->look_for_group(
      key, round, [this, round](Result<AllReduceGroup> g) { on_group(round, std::move(g)); });
}

void Averager::on_group(uint64_t round, Result<AllReduceGroup> group) {
  if (!group.ok()) {
    rt_.metrics().count("averaging_no_group");
    rt_.metrics().event("averaging_no_group", {{"round", round}, {"why", group.status().message()}},
                        EventDetail::kOperation);
    redraw_key(round);
    end_round(round);
    return;
  }
  if (group->members.size() < 2) {
    redraw_key(round);
    end_round(round);
    return;
  }
  round_ = std::make_unique<RoundState>();
  round_->local = source_->snapshot();
  if (options_.bandwidth_mbps > 0) observe_bound(*group, round_->local);
  AllReduceGroup copy = group.value();
  round_->allreduce = std::make_unique<AllReduceRound>(
      rt_, std::move(group.value()), round_->local, options_.allreduce,
      [this, round, copy](Result<AllReduceOutcome> r) { on_allreduce(round, copy, std::move(r)); });
  round_->allreduce->start();
  // Replay what came early for this group; the rest is stale.
  std::deque<std::pair<PeerId, Message>> early;
  early.swap(buffered_);
  for (auto& [from, msg] : early) {
    if (peek_allreduce_group(msg) == copy.group_id && round_ && round_->allreduce) {
      round_->allreduce->handle(from, msg);
    }
  }
}

void Averager::on_allreduce(uint64_t round, const AllReduceGroup& group,
                            Result<AllReduceOutcome> r) {
  if (!r.ok()) {
    rt_.metrics().count("averaging_allreduce_failed");
    rt_.metrics().event("averaging_allreduce_failed",
                        {{"round", round}, {"why", r.status().message()}}, EventDetail::kOperation);
  } else if (options_.allreduce.all_or_nothing() && r->stats.elements_local > 0) {
    rt_.metrics().count("averaging_round_void");  // somebody was missing: the round does nothing
  } else {
    source_->apply_delta(*r->delta);
    if (observer_) observer_->on_allreduce_applied(rt_, group, r->stats);
    if (r->stats.elements_local > 0) rt_.metrics().count("averaging_partial");
    rt_.metrics().count("averaging_groups");
    rt_.metrics().observe("averaging_group_size", static_cast<double>(group.members.size()));
    ++rounds_averaged_;
    lonely_rounds_ = 0;
    uint32_t index = 0;
    while (group.members[index].peer != rt_.self()) ++index;
    if (options_.key_mode == GroupKeyMode::kGrid) {
      auto next = key_after_group(make_group_key(options_.key_prefix, bits_), options_.grid,
                                  std::to_string(group.group_id), index,
                                  static_cast<uint32_t>(group.members.size()));
      if (next.ok()) bits_ = parse_group_key(next.value())->second;
    }
  }
  // Destroyed from a timer of our own, not inside the round's callback chain.
  rt_.schedule(Time(0), [this, round, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    round_.reset();
    end_round(round);
  });
}

void Averager::observe_bound(const AllReduceGroup& group, const at::Tensor& local) {
  // Called when this peer knows its bandwidth in Mb/s; the peers of one run all do or none do.
  std::vector<BalanceInput> inputs;
  for (const GroupMember& m : group.members) inputs.push_back({m.bandwidth, m.mode});
  auto sol = optimize_fractions(inputs);
  if (!sol.ok()) return;
  // A client is outside the solver's objective (its traffic does not depend on the split), but it
  // still sends its vector and receives the average: V / b each way.
  double round_time = sol->round_time;
  for (const GroupMember& m : group.members) {
    if (m.mode == AveragingMode::kClient && m.bandwidth > 0) {
      round_time = std::max(round_time, 1.0 / m.bandwidth);
    }
  }
  // T* is in units of (vector bytes on the wire) / (bandwidth): bytes x 8 / (Mb/s x 1e6) seconds.
  const DType dtype = to_dtype(local.scalar_type()).value_or(DType::kFloat32);
  const double bytes = static_cast<double>(local.numel()) *
                       wire_bytes_per_element(options_.allreduce.compression(), dtype) *
                       options_.allreduce.payload_scale();
  rt_.metrics().observe("allreduce_bound_ms", round_time * bytes * 8.0 / 1e6 * 1e3);
}

// Left out of a full cell (a full group's worth of others declared under its key, and no group for
// it): the others' indices after their groups can keep its cell full round after round (swarm seed
// 389: one peer of 64 left out of a cell of 9 for nine rounds while the rest agreed), so it draws a
// new cell. A peer that found no group for lack of partners (they were late, or gone) keeps its
// cell: redrawing then would break the grid for the peers that come back to it (eight live peers on
// a 2x2x2 grid, a slow start: redrawn cells of 3 and of 1 left 12 peer-rounds without a group).
// A client cannot lead, so it draws a new cell whenever the peers declared in its cell did not take
// it (64 simulated peers, a quarter clients: kept cells left 33 client-rounds without a group and
// the error 180x above the goal), and when it saw nobody declared in two rounds running (after
// one, its partner may only have been late: eight live peers, one a client that redrew at once,
// found a full pair in every cell it drew).
void Averager::redraw_key(uint64_t round) {
  if (options_.key_mode != GroupKeyMode::kGrid || bits_.empty()) return;
  const MatchmakingOptions& mm = matchmaker_->options();
  const uint32_t seen = matchmaker_->others_seen();
  lonely_rounds_ = seen == 0 ? lonely_rounds_ + 1 : 0;
  const bool full = seen >= mm.target_group_size();
  if (!full && !(mm.client() && (seen > 0 || lonely_rounds_ >= 2))) return;
  lonely_rounds_ = 0;
  for (char& b : bits_) b = rt_.rng().uniform_int(2) ? '1' : '0';
  rt_.metrics().count("averaging_key_redrawn");
  rt_.metrics().event("averaging_key_redrawn", {{"round", round}, {"others_seen", seen}},
                      EventDetail::kOperation);
}

std::string Averager::group_key(uint64_t round) const {
  switch (options_.key_mode) {
    case GroupKeyMode::kGrid:
      break;
    case GroupKeyMode::kEveryone:
    case GroupKeyMode::kFixedMembership:  // (begin_round skips matchmaking for this one)
      return options_.key_prefix + ".all";
    case GroupKeyMode::kRandomGroups: {
      // Position of this peer in round r's permutation of 0..N-1 (Fisher-Yates from one seed);
      // consecutive runs of target size are the groups.
      const uint32_t n = std::max<uint32_t>(options_.peers, 1);
      std::vector<uint32_t> order(n);
      for (uint32_t i = 0; i < n; ++i) order[i] = i;
      Rng rng(derive_seed(options_.random_groups_seed, "random_groups", round));
      for (uint32_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.uniform_int(i + 1)]);
      const uint32_t size = std::max<uint32_t>(options_.matchmaking.target_group_size(), 1);
      uint32_t position = 0;
      while (position < n && order[position] != rt_.self()) ++position;
      return options_.key_prefix + ".r" + std::to_string(round) + ".g" +
             std::to_string(position / size);
    }
  }
  return make_group_key(options_.key_prefix, bits_);
}

void Averager::end_round(uint64_t round) {
  busy_ = false;
  if (observer_) observer_->on_round_end(rt_, round);
}

void Averager::on_message(PeerId from, Message msg) {
  if (is_allreduce_message(msg)) {
    if (round_ && round_->allreduce && peek_allreduce_group(msg) == round_->allreduce->group_id()) {
      round_->allreduce->handle(from, msg);
      return;
    }
    if (buffered_.size() >= options_.max_buffered) {
      rt_.metrics().count("averaging_buffer_full");
      buffered_.pop_front();
    }
    buffered_.emplace_back(from, std::move(msg));
    return;
  }
  if (matchmaker_->on_message(from, msg)) return;
  if (!rpc_.handle(from, std::move(msg))) rt_.metrics().count("averaging_unexpected_messages");
}

}  // namespace crowdtrain
