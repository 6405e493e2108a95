// The all-reduce state machine. One State per round; every callback it schedules holds `alive`
// and returns at once when the round was destroyed. Heavy work (compression, accumulation)
// goes through Runtime::compute, so the simulated world charges its time; state that decides
// completion only changes on the loop, in the order messages arrive.
#include "core/averaging/allreduce.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string_view>

#include "core/averaging/accumulator.h"
#include "core/averaging/allreduce_wire.h"
#include "core/tensor_codec.h"

namespace crowdtrain {

struct AllReduceRound::State {
  // A chunk of this peer's part, as its reducer sees it.
  struct InChunk {
    std::unique_ptr<WeightedAccumulator> acc;
    std::vector<bool> from;  // by sender slot
    int pending_adds = 0;    // accepted but not yet accumulated
    bool done = false;
  };
  struct Sender {  // another group member whose chunks this peer averages
    size_t member = 0;
    int64_t received = 0;
    Time last_heard{0};
    bool left_out = false;
    bool told = false;  // a kAvgRefuse went out
  };
  struct Reducer {  // another member that averages a part of this peer's vector
    int64_t chunks = 0;
    int64_t received = 0;
    std::vector<bool> got;
    Time last_heard{0};
    bool failed = false;
  };

  Runtime& rt;
  AllReduceGroup group;
  AllReduceOptions opt;
  DoneFn done;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  Status setup_error;

  at::Tensor local, delta;  // flat
  DType dtype = DType::kFloat32;
  size_t me = 0;
  std::vector<int64_t> sizes;
  std::vector<Span> spans;
  int64_t chunk_elems = 1;
  std::vector<int> slot_of;  // member -> sender slot, -1 for aux members
  std::vector<Sender> senders;
  std::vector<InChunk> in;        // chunks of my part
  std::vector<Reducer> reducers;  // by member; chunks = 0 for members that average nothing
  int64_t averaged = 0;
  int inflight = 0;  // compute calls whose completion has not run

  Time started{0};
  TimerId deadline_timer = 0, watchdog_timer = 0;
  bool running = false, is_finished = false;
  AllReduceStats stats;

  State(Runtime& r, AllReduceGroup g, AllReduceOptions o, DoneFn d)
      : rt(r), group(std::move(g)), opt(o), done(std::move(d)) {}

  bool is_sender(size_t m) const { return group.members[m].mode != AveragingMode::kAux; }

  Status setup(const at::Tensor& t);
  void start();
  void send_my_chunks();
  void add_own_chunks();
  bool handle(PeerId from, const Message& msg);
  void on_part(size_t member, const ChunkHeader& h, const Message& msg);
  void on_result(size_t member, const ChunkHeader& h, const Message& msg);
  void on_refuse(size_t member);
  void refuse(std::string_view reason, size_t member, bool tell, bool leave_out);
  void leave_out(size_t slot);
  void maybe_complete(int64_t k);
  void fail_reducer(size_t member);
  void watchdog();
  void arm_watchdog(Time at);
  void maybe_finish();
  void finish(bool deadline);
  // Runs `work` through Runtime::compute (charged for `elements`), then `then` on completion;
  // neither runs once the round is destroyed, and `work` does not run once it has finished.
  void run(int64_t elements, std::function<void()> work, std::function<void()> then);
  Message padded(Message m) const;
  template <typename Fn>
  std::function<void()> guard(Fn fn) {
    std::weak_ptr<bool> w = alive;
    return [w, fn = std::move(fn)]() mutable {
      if (w.lock()) fn();
    };
  }
};

Status AllReduceRound::State::setup(const at::Tensor& t) {
  const size_t n = group.members.size();
  if (n == 0 || n > kMaxGroupSize) {
    return Status::error("allreduce: group of " + std::to_string(n) + " members");
  }
  if (!t.is_floating_point()) return Status::error("allreduce: the local tensor is not floating");
  me = n;
  for (size_t i = 0; i < n; ++i) {
    const GroupMember& m = group.members[i];
    if (m.peer == rt.self()) me = i;
    for (size_t j = 0; j < i; ++j) {
      if (group.members[j].peer == m.peer) {
        return Status::error("allreduce: peer " + std::to_string(m.peer) + " listed twice");
      }
    }
    if (!std::isfinite(m.weight) || m.weight < 0) {
      return Status::error("allreduce: member " + std::to_string(i) + " has weight " +
                           std::to_string(m.weight));
    }
  }
  if (me == n) return Status::error("allreduce: this peer is not in the group");
  local = t.detach().reshape(-1);
  dtype = to_dtype(local.scalar_type()).value_or(DType::kFloat32);
  std::vector<BalanceInput> inputs;
  for (const GroupMember& m : group.members) inputs.push_back({m.bandwidth, m.mode});
  auto balanced = load_balance(local.numel(), inputs);
  if (!balanced.ok()) return balanced.status();
  sizes = std::move(*balanced);
  spans = part_spans(sizes);
  // Chunks are sized by what they carry on the wire, filler of payload scaling included, so a
  // scaled run streams in the chunks the big model would.
  chunk_elems = chunk_elements(
      opt.chunk_bytes(), wire_bytes_per_element(opt.compression(), dtype) * opt.payload_scale(),
      wire_overhead_bytes(opt.compression()));
  slot_of.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    if (!is_sender(i)) continue;
    slot_of[i] = static_cast<int>(senders.size());
    senders.push_back(Sender{i});
  }
  in.resize(static_cast<size_t>(chunk_count(sizes[me], chunk_elems)));
  for (InChunk& c : in) c.from.assign(senders.size(), false);
  reducers.resize(n);
  if (is_sender(me)) {
    for (size_t j = 0; j < n; ++j) {
      if (j == me) continue;
      reducers[j].chunks = chunk_count(sizes[j], chunk_elems);
      reducers[j].got.assign(static_cast<size_t>(reducers[j].chunks), false);
    }
  }
  delta = torch::zeros_like(local);
  stats.elements = is_sender(me) ? local.numel() : 0;
  return Status();
}

void AllReduceRound::State::start() {
  running = true;
  started = rt.now();
  if (!setup_error.ok()) {
    is_finished = true;
    rt.schedule(Time(0), guard([this] { done(setup_error); }));
    return;
  }
  for (Sender& s : senders) s.last_heard = started;
  for (Reducer& r : reducers) r.last_heard = started;
  deadline_timer = rt.schedule(opt.timeout(), guard([this] { finish(true); }));
  arm_watchdog(started + std::min(opt.sender_timeout(), opt.reducer_timeout()));
  if (is_sender(me)) {
    add_own_chunks();
    send_my_chunks();
  }
  maybe_finish();
}

void AllReduceRound::State::add_own_chunks() {
  if (in.empty() || slot_of[me] < 0) return;
  const int slot = slot_of[me];
  const double w = group.members[me].weight;
  for (size_t k = 0; k < in.size(); ++k) {
    const Span c = chunk_span(spans[me], chunk_elems, static_cast<int64_t>(k));
    in[k].acc = std::make_unique<WeightedAccumulator>(local.narrow(0, c.offset, c.size));
    in[k].acc->add(local.narrow(0, c.offset, c.size), w);
    in[k].from[slot] = true;
  }
  senders[slot].received = static_cast<int64_t>(in.size());
  for (size_t k = 0; k < in.size(); ++k) maybe_complete(static_cast<int64_t>(k));
}

void AllReduceRound::State::send_my_chunks() {
  const size_t n = group.members.size();
  int64_t total = 0;
  for (size_t j = 0; j < n; ++j) total += j == me ? 0 : sizes[j];
  auto msgs = std::make_shared<std::vector<std::pair<PeerId, Message>>>();
  auto work = [this, msgs, n] {
    torch::NoGradGuard no_grad;
    // Chunk k of every part before chunk k+1 of any, as concurrent streams share an uplink: every
    // reducer gets a steady share and can average and return chunk k while the rest is on the
    // way. Parts in the order after self, so reducers see senders spread.
    int64_t most = 0;
    for (size_t j = 0; j < n; ++j) most = std::max(most, j == me ? 0 : reducers[j].chunks);
    for (int64_t k = 0; k < most; ++k) {
      for (size_t step = 1; step < n; ++step) {
        const size_t j = (me + step) % n;
        if (k >= reducers[j].chunks) continue;
        const Span c = chunk_span(spans[j], chunk_elems, k);
        ChunkHeader h{group.group_id, group.round, j, static_cast<uint64_t>(k)};
        msgs->push_back({group.members[j].peer,
                         padded(make_chunk_message(
                             MsgType::kAvgPart, h,
                             compress(local.narrow(0, c.offset, c.size), opt.compression())))});
      }
    }
  };
  run(total, work, [this, msgs] {
    for (auto& [to, m] : *msgs) {
      stats.bytes_sent += m.wire_size();
      ++stats.chunks_sent;
      rt.send(to, std::move(m));
    }
  });
}

void AllReduceRound::State::arm_watchdog(Time at) {
  if (watchdog_timer) rt.cancel(watchdog_timer);
  watchdog_timer = 0;
  if (at >= started + opt.timeout()) return;  // the deadline covers it
  watchdog_timer = rt.schedule(std::max(Time(0), at - rt.now()), guard([this] {
                                 watchdog_timer = 0;
                                 watchdog();
                               }));
}

void AllReduceRound::State::watchdog() {
  if (is_finished) return;
  const Time now = rt.now();
  Time next = Time::max();
  for (size_t slot = 0; slot < senders.size(); ++slot) {
    Sender& s = senders[slot];
    if (s.left_out || s.member == me || s.received >= static_cast<int64_t>(in.size())) continue;
    if (now >= s.last_heard + opt.sender_timeout()) {
      refuse("sender_timeout", s.member, /*tell=*/true, /*leave_out=*/true);
    } else {
      next = std::min(next, s.last_heard + opt.sender_timeout());
    }
  }
  for (size_t j = 0; j < reducers.size(); ++j) {
    Reducer& r = reducers[j];
    if (r.failed || r.received >= r.chunks) continue;
    if (now >= r.last_heard + opt.reducer_timeout()) {
      fail_reducer(j);
    } else {
      next = std::min(next, r.last_heard + opt.reducer_timeout());
    }
  }
  if (!is_finished && next != Time::max()) arm_watchdog(next);
  maybe_finish();
}

bool AllReduceRound::State::handle(PeerId from, const Message& msg) {
  if (!is_allreduce_message(msg)) return false;
  const size_t wire = msg.wire_size();
  auto h = read_chunk_header(msg);
  if (!h.ok()) {
    refuse("malformed", group.members.size(), false, false);
    return true;
  }
  if (h->group_id != group.group_id) {
    refuse("wrong_group", group.members.size(), false, false);
    return false;
  }
  if (!running || !setup_error.ok()) return false;
  stats.bytes_received += wire;
  size_t member = group.members.size();
  for (size_t i = 0; i < group.members.size(); ++i) {
    if (group.members[i].peer == from) member = i;
  }
  if (member == group.members.size() || member == me) {
    refuse("not_member", group.members.size(), false, false);
  } else if (h->round != group.round) {
    refuse("wrong_round", member, false, false);
  } else if (is_finished) {
    refuse("finished", member, msg.type == MsgType::kAvgPart, false);
  } else if (msg.type == MsgType::kAvgPart) {
    on_part(member, *h, msg);
  } else if (msg.type == MsgType::kAvgResult) {
    on_result(member, *h, msg);
  } else {
    on_refuse(member);
  }
  return true;
}

void AllReduceRound::State::on_part(size_t member, const ChunkHeader& h, const Message& msg) {
  const int slot = slot_of[member];
  if (slot < 0) return refuse("not_sender", member, false, false);
  if (h.part != me || in.empty()) return refuse("wrong_part", member, true, true);
  if (h.chunk >= in.size()) return refuse("chunk_out_of_range", member, true, true);
  Sender& s = senders[slot];
  if (s.left_out) return refuse("sender_left_out", member, true, false);
  InChunk& c = in[h.chunk];
  if (c.from[slot]) return refuse("duplicate", member, false, false);
  const Span span = chunk_span(spans[me], chunk_elems, static_cast<int64_t>(h.chunk));
  auto ct = read_compressed(msg);
  if (!ct.ok()) return refuse("malformed", member, true, true);
  auto part = decompress(*ct, opt.compression(), dtype, span.size);
  if (!part.ok()) return refuse("bad_tensor", member, true, true);
  if (!opt.allow_nan() && !all_finite(*part)) {
    return refuse("non_finite", member, true, true);
  }
  ++stats.chunks_received;
  c.from[slot] = true;
  ++c.pending_adds;
  ++s.received;
  s.last_heard = rt.now();
  const double w = group.members[member].weight;
  at::Tensor t = part->to(local.device());
  const int64_t k = static_cast<int64_t>(h.chunk);
  run(
      span.size,
      [this, t, w, k] {
        InChunk& ch = in[k];
        if (!ch.acc) ch.acc = std::make_unique<WeightedAccumulator>(t);
        ch.acc->add(t, w);
        --ch.pending_adds;
      },
      [this, k] { maybe_complete(k); });
}

void AllReduceRound::State::maybe_complete(int64_t k) {
  InChunk& c = in[k];
  if (c.done || c.pending_adds > 0 || is_finished) return;
  for (size_t slot = 0; slot < senders.size(); ++slot) {
    if (!c.from[slot] && !senders[slot].left_out) return;
  }
  c.done = true;
  if (opt.all_or_nothing()) {
    bool incomplete = false;
    for (size_t slot = 0; slot < senders.size(); ++slot) incomplete |= !c.from[slot];
    if (incomplete) {
      c.acc.reset();
      for (size_t slot = 0; slot < senders.size(); ++slot) {
        if (c.from[slot] && senders[slot].member != me) {
          refuse("incomplete", senders[slot].member, /*tell=*/true, /*leave_out=*/false);
        }
      }
      return maybe_finish();
    }
  }
  if (!c.acc || !(c.acc->total_weight() > 0)) return maybe_finish();  // nobody to average
  const Span span = chunk_span(spans[me], chunk_elems, k);
  const at::Tensor mean = c.acc->mean();
  c.acc.reset();
  if (slot_of[me] >= 0) {
    at::Tensor d = delta.narrow(0, span.offset, span.size);
    at::sub_out(d, mean, local.narrow(0, span.offset, span.size));
    averaged += span.size;
  }
  std::vector<size_t> to;
  for (size_t slot = 0; slot < senders.size(); ++slot) {
    if (c.from[slot] && senders[slot].member != me) to.push_back(senders[slot].member);
  }
  auto msg = std::make_shared<Message>();
  run(
      span.size,
      [this, msg, mean, k] {
        ChunkHeader h{group.group_id, group.round, me, static_cast<uint64_t>(k)};
        *msg =
            padded(make_chunk_message(MsgType::kAvgResult, h, compress(mean, opt.compression())));
      },
      [this, msg, to] {
        for (size_t m : to) {
          stats.bytes_sent += msg->wire_size();
          ++stats.results_sent;
          rt.send(group.members[m].peer, *msg);
        }
      });
}

void AllReduceRound::State::on_result(size_t member, const ChunkHeader& h, const Message& msg) {
  Reducer& r = reducers[member];
  if (r.chunks == 0) return refuse("not_reducer", member, false, false);
  if (h.part != member) return refuse("wrong_part", member, false, false);
  if (h.chunk >= static_cast<uint64_t>(r.chunks))
    return refuse("chunk_out_of_range", member, false, false);
  if (r.failed) return refuse("reducer_failed", member, false, false);
  if (r.got[h.chunk]) return refuse("duplicate", member, false, false);
  const Span span = chunk_span(spans[member], chunk_elems, static_cast<int64_t>(h.chunk));
  auto ct = read_compressed(msg);
  const char* bad = nullptr;
  auto avg = ct.ok() ? decompress(*ct, opt.compression(), dtype, span.size)
                     : Result<at::Tensor>(ct.status());
  if (!ct.ok()) {
    bad = "malformed";
  } else if (!avg.ok()) {
    bad = "bad_tensor";
  } else if (!opt.allow_nan() && !all_finite(*avg)) {
    bad = "non_finite";
  }
  if (bad) {  // a reducer that sends garbage is not trusted with the rest of its part
    refuse(bad, member, false, false);
    return fail_reducer(member);
  }
  r.got[h.chunk] = true;
  ++r.received;
  ++stats.results_received;
  r.last_heard = rt.now();
  averaged += span.size;
  at::Tensor a = avg->to(local.device());
  run(
      span.size,
      [this, a, span] {
        at::Tensor d = delta.narrow(0, span.offset, span.size);
        at::sub_out(d, a, local.narrow(0, span.offset, span.size));
      },
      [] {});
}

void AllReduceRound::State::on_refuse(size_t member) {
  if (reducers[member].chunks > 0 && !reducers[member].failed &&
      reducers[member].received < reducers[member].chunks) {
    fail_reducer(member);
  }
  maybe_finish();
}

void AllReduceRound::State::refuse(std::string_view reason, size_t member, bool tell, bool leave) {
  ++stats.refused;
  ++stats.refused_by_reason[std::string(reason)];
  rt.metrics().count(std::string("allreduce_refused_") + std::string(reason));
  if (member >= group.members.size() || slot_of[member] < 0) return;
  Sender& s = senders[slot_of[member]];
  if (tell && !s.told && running) {
    s.told = true;
    rt.send(group.members[member].peer,
            make_refuse_message(group.group_id, group.round, std::string(reason)));
  }
  if (leave && !s.left_out && !is_finished && !in.empty()) leave_out(slot_of[member]);
}

void AllReduceRound::State::leave_out(size_t slot) {
  senders[slot].left_out = true;
  stats.senders_left_out.push_back(group.members[senders[slot].member].peer);
  rt.metrics().count("allreduce_senders_left_out");
  for (size_t k = 0; k < in.size(); ++k) maybe_complete(static_cast<int64_t>(k));
  maybe_finish();
}

void AllReduceRound::State::fail_reducer(size_t member) {
  Reducer& r = reducers[member];
  if (r.failed) return;
  r.failed = true;
  stats.reducers_failed.push_back(group.members[member].peer);
  rt.metrics().count("allreduce_reducers_failed");
  maybe_finish();
}

void AllReduceRound::State::maybe_finish() {
  if (is_finished || !running) return;
  for (const InChunk& c : in) {
    if (!c.done) return;
  }
  for (const Reducer& r : reducers) {
    if (!r.failed && r.received < r.chunks) return;
  }
  if (inflight > 0) return;  // queued compute calls back here when it completes
  finish(false);
}

void AllReduceRound::State::finish(bool deadline) {
  if (is_finished) return;
  is_finished = true;
  if (watchdog_timer) rt.cancel(watchdog_timer);
  if (deadline_timer && !deadline) rt.cancel(deadline_timer);
  watchdog_timer = deadline_timer = 0;
  stats.duration = rt.now() - started;
  stats.elements_averaged = slot_of[me] >= 0 ? averaged : 0;
  stats.elements_local = stats.elements - stats.elements_averaged;
  stats.timed_out = deadline && stats.elements_local > 0;
  Metrics& m = rt.metrics();
  m.count("allreduce_rounds");
  if (stats.timed_out) m.count("allreduce_timeouts");
  m.observe("allreduce_ms", to_millis(stats.duration));
  m.event("allreduce_done",
          {{"group", group.group_id},
           {"round", group.round},
           {"averaged", stats.elements_averaged},
           {"local", stats.elements_local},
           {"left_out", stats.senders_left_out.size()},
           {"reducers_failed", stats.reducers_failed.size()},
           {"refused", stats.refused},
           {"ms", to_millis(stats.duration)}},
          EventDetail::kOperation);
  AllReduceOutcome out;
  out.delta = std::make_shared<const at::Tensor>(delta);
  out.stats = stats;
  rt.schedule(Time(0), guard([this, out] { done(out); }));
}

Message AllReduceRound::State::padded(Message m) const {
  if (opt.payload_scale() > 1.0) {
    uint64_t bytes = 0;  // the tensors' bytes (headers and codebooks are not scaled)
    for (const Field* f : m.all(kTagCodecData)) {
      if (const auto* t = std::get_if<TensorData>(&f->value)) bytes += t->bytes.size;
    }
    m.add_filler(kTagAvgPad,
                 static_cast<uint64_t>(static_cast<double>(bytes) * (opt.payload_scale() - 1.0)));
  }
  return m;
}

void AllReduceRound::State::run(int64_t elements, std::function<void()> work,
                                std::function<void()> then) {
  ++inflight;
  const double flops =
      opt.flops_per_element() * opt.payload_scale() * static_cast<double>(elements);
  rt.compute({flops}, guard([this, work] {
               if (!is_finished) work();
             }),
             guard([this, then] {
               --inflight;
               if (is_finished) return;
               then();
               maybe_finish();
             }));
}

AllReduceRound::AllReduceRound(Runtime& rt, AllReduceGroup group, const at::Tensor& local,
                               AllReduceOptions options, DoneFn done)
    : s_(std::make_unique<State>(rt, std::move(group), options, std::move(done))) {
  s_->setup_error = s_->setup(local);
}

AllReduceRound::~AllReduceRound() {
  *s_->alive = false;
  if (s_->deadline_timer) s_->rt.cancel(s_->deadline_timer);
  if (s_->watchdog_timer) s_->rt.cancel(s_->watchdog_timer);
}

void AllReduceRound::start() {
  CT_CHECK(!s_->running);
  s_->start();
}
bool AllReduceRound::handle(PeerId from, const Message& msg) { return s_->handle(from, msg); }
uint64_t AllReduceRound::group_id() const { return s_->group.group_id; }
bool AllReduceRound::finished() const { return s_->is_finished; }
const std::vector<int64_t>& AllReduceRound::part_sizes() const { return s_->sizes; }

}  // namespace crowdtrain
