// Ring gossip and PushSum over the network: see gossip.h.
#include "core/averaging/gossip.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/averaging/accumulator.h"
#include "core/averaging/round_slots.h"
#include "core/averaging/strategies.h"
#include "core/tensor_codec.h"

namespace crowdtrain {

struct GossipAverager::Inbox {
  at::Tensor snapshot;    // this peer's vector when the round began (undefined before)
  at::Tensor sum;         // ring: sum of neighbours' vectors; PushSum: sum of x_j * w_j
  double weight_sum = 0;  // ring: vectors received; PushSum: sum of weight shares w_j
  std::vector<PeerId> from;
};

Message make_gossip_message(uint64_t round, double weight_share, CompressedTensor tensor) {
  Message m(MsgType::kGossipPush);
  m.add_u64(kTagGossipRound, round);
  m.add_f64(kTagGossipWeight, weight_share);
  add_compressed(m, std::move(tensor));
  return m;
}

GossipAverager::GossipAverager(Runtime& rt, GossipOptions options,
                               std::shared_ptr<AveragingSource> source,
                               std::shared_ptr<AveragingObserver> observer)
    : rt_(rt),
      options_(std::move(options)),
      source_(std::move(source)),
      observer_(std::move(observer)),
      alive_(std::make_shared<bool>(true)) {}

GossipAverager::~GossipAverager() { *alive_ = false; }

void GossipAverager::start() {
  const at::Tensor first = source_->snapshot();
  numel_ = first.numel();
  dtype_ = to_dtype(first.scalar_type()).value_or(DType::kFloat64);
  const uint64_t round = first_open_round(rt_.now() + options_.start_delay, options_.first_round,
                                          options_.round_interval);
  next_unmixed_ = round;
  schedule_round(round);
}

void GossipAverager::schedule_round(uint64_t round) {
  if (round >= options_.rounds) return;
  const Time at = round_start(round, options_.first_round, options_.round_interval);
  const Time delay = at > rt_.now() ? at - rt_.now() : Time(0);
  rt_.schedule(delay, [this, round, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) begin_round(round);
  });
}

void GossipAverager::begin_round(uint64_t round) {
  if (observer_ && observer_->stop_requested()) return;
  schedule_round(round + 1);
  rt_.schedule(options_.exchange_window, [this, round, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) mix_round(round);
  });
  if (options_.failure_prob > 0.0 && rt_.rng().bernoulli(options_.failure_prob)) {
    sat_out_round_ = round;
    inbox_.erase(round);
    rt_.metrics().count("gossip_sat_out");
    return;
  }
  auto& box = inbox_[round];
  if (!box) box = std::make_unique<Inbox>();
  box->snapshot = source_->snapshot().reshape({-1});
  const PeerId self = rt_.self();
  const uint32_t n = std::max<uint32_t>(options_.peers, 1);
  if (options_.method == GossipMethod::kRing) {
    for (const MixTarget& t : ring_gossip_neighbours(self, n)) {
      if (t.peer == self) continue;
      rt_.send(t.peer,
               make_gossip_message(round, 1.0, compress(box->snapshot, options_.compression)));
    }
    return;
  }
  kept_share_ = 0.0;
  for (const MixTarget& t : pushsum_targets(self, n, round)) {
    if (t.peer == self) {
      kept_share_ += t.weight;
      continue;
    }
    rt_.send(t.peer, make_gossip_message(round, weight_ * t.weight,
                                         compress(box->snapshot, options_.compression)));
  }
}

void GossipAverager::mix_round(uint64_t round) {
  next_unmixed_ = std::max(next_unmixed_, round + 1);
  auto node = inbox_.extract(round);
  inbox_.erase(inbox_.begin(), inbox_.lower_bound(round));  // nothing older can be used now
  if (sat_out_round_ != round && !node.empty() && node.mapped()->snapshot.defined()) {
    Inbox& box = *node.mapped();
    const at::Tensor x = box.snapshot;
    at::Tensor mixed;
    if (options_.method == GossipMethod::kRing) {
      mixed = box.sum.defined() ? (x + box.sum) / (1.0 + box.weight_sum) : x;
    } else {
      const double kept = weight_ * kept_share_;
      const double total = kept + box.weight_sum;
      at::Tensor value = x * kept;
      if (box.sum.defined()) value = value + box.sum;
      mixed = value / total;
      weight_ = total;
    }
    source_->apply_delta(mixed - x);
    ++rounds_mixed_;
    rt_.metrics().count("gossip_rounds");
    rt_.metrics().observe("gossip_received_per_round", static_cast<double>(box.from.size()));
  }
  if (observer_) observer_->on_round_end(rt_, round);
}

bool GossipAverager::expected_sender(PeerId from, uint64_t round) const {
  const PeerId self = rt_.self();
  const uint32_t n = std::max<uint32_t>(options_.peers, 1);
  if (from == self || from >= n) return false;
  if (options_.method == GossipMethod::kRing) {
    for (const MixTarget& t : ring_gossip_neighbours(self, n)) {
      if (t.peer == from) return true;
    }
    return false;
  }
  for (const MixTarget& t : pushsum_targets(from, n, round)) {
    if (t.peer == self) return true;
  }
  return false;
}

void GossipAverager::refuse(PeerId from, const std::string& reason) {
  rt_.metrics().count("gossip_refused_" + reason);
  rt_.metrics().event("gossip_refused", {{"from", from}, {"why", reason}}, EventDetail::kOperation);
}

void GossipAverager::on_message(PeerId from, Message msg) {
  if (msg.type != MsgType::kGossipPush) {
    rt_.metrics().count("gossip_unexpected_messages");
    return;
  }
  auto round = msg.u64(kTagGossipRound);
  auto share = msg.f64(kTagGossipWeight);
  if (!round.ok() || !share.ok()) return refuse(from, "malformed");
  if (numel_ < 0) return refuse(from, "not_started");
  if (*round < next_unmixed_) return refuse(from, "late");
  if (*round > next_unmixed_ + options_.max_rounds_ahead) return refuse(from, "too_far_ahead");
  if (*round == sat_out_round_) return refuse(from, "sat_out");
  if (!expected_sender(from, *round)) return refuse(from, "not_a_neighbour");
  const double w = *share;
  if (!std::isfinite(w) || w <= 0.0 || (options_.method == GossipMethod::kRing && w != 1.0)) {
    return refuse(from, "bad_weight");
  }
  auto c = read_compressed(msg);
  if (!c.ok()) return refuse(from, "malformed");
  auto t = decompress(*c, options_.compression, dtype_, numel_);
  if (!t.ok()) return refuse(from, "bad_tensor");
  if (!options_.allow_nan && !all_finite(*t)) {
    return refuse(from, "not_finite");
  }
  auto& box = inbox_[*round];
  if (!box) box = std::make_unique<Inbox>();
  if (std::find(box->from.begin(), box->from.end(), from) != box->from.end()) {
    return refuse(from, "duplicate");
  }
  box->from.push_back(from);
  const at::Tensor v = options_.method == GossipMethod::kRing ? *t : *t * w;
  box->sum = box->sum.defined() ? box->sum + v : v.clone();
  box->weight_sum += w;
}

}  // namespace crowdtrain
