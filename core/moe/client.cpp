#include "core/moe/client.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace crowdtrain::moe {
namespace {

// The batch an answer carries: forward outputs or backward grad inputs; and a forward answer's
// expert version.
Result<TensorData> decode_answer(bool backward, const Message& answer, Numerics numerics,
                                 const ProtocolLimits& limits, std::optional<uint64_t>& version) {
  Numerics mode;
  TensorData t;
  if (backward) {
    auto b = decode_backward_response(answer, limits);
    if (!b.ok()) return b.status();
    mode = b->numerics;
    t = std::move(b->grad_inputs);
  } else {
    auto f = decode_forward_response(answer, limits);
    if (!f.ok()) return f.status();
    mode = f->numerics;
    t = std::move(f->outputs);
    version = f->version;
  }
  if (mode != numerics) {
    return Status::error(std::string("answered in ") + numerics_name(mode) + " numerics, not " +
                         numerics_name(numerics));
  }
  return t;
}

}  // namespace

// One forward or backward in flight. Held by its RPC callbacks and timers; `finished` is the token
// that makes every late answer and timer a no-op once Done has run.
struct RemoteMixture::Call {
  struct Tally {
    uint32_t timed_out = 0, refused = 0, bad = 0, failed = 0;
  };
  bool backward = false;
  std::vector<ExpertCall> calls;
  std::vector<bool> sent, settled;    // per call: a request went out; its outcome is known
  std::vector<uint32_t> answered;     // per sample: good answers so far
  std::vector<uint32_t> needed;       // per sample: min(k_min, experts asked)
  std::vector<Tally> tally;           // per sample: the failures
  std::vector<int64_t> input_sample;  // the inputs' per-sample shape
  std::optional<std::vector<int64_t>> output_sample;  // forward: the first good output's
  uint32_t k_min = 1;
  size_t outstanding = 0;    // requests sent without an outcome
  size_t short_samples = 0;  // samples with answered < needed
  Time started{0};
  TimerId total_timer = 0, straggler_timer = 0;
  bool straggler_armed = false, finished = false;
  Done done;
};

RemoteMixture::RemoteMixture(Runtime& rt, RpcEndpoint& rpc, MixtureCallOptions options,
                             Numerics numerics, ProtocolLimits limits)
    : rt_(rt),
      rpc_(rpc),
      options_(options),
      numerics_(numerics),
      limits_(limits),
      alive_(std::make_shared<bool>(true)) {}

RemoteMixture::~RemoteMixture() { *alive_ = false; }

void RemoteMixture::fail_soon(Done done, Status status) {
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(Time(0), [alive, done = std::move(done), status = std::move(status)] {
    auto a = alive.lock();
    if (a && *a) done(status);
  });
}

Status RemoteMixture::check_inputs(const TensorData& inputs, size_t rows) const {
  if (inputs.shape.empty() || inputs.shape[0] != static_cast<int64_t>(rows)) {
    return Status::error("inputs have shape " + shape_string(inputs.shape) + ", expected " +
                         std::to_string(rows) + " rows");
  }
  for (int64_t d : inputs.shape) {
    if (d < 0) return Status::error("inputs have a negative dimension");
  }
  if (numerics_ == Numerics::kTiming) return Status::ok_status();
  if (inputs.dtype != DType::kFloat32 || inputs.bytes.size != float_bytes(inputs.shape)) {
    return Status::error("inputs must be float32 with " +
                         std::to_string(float_bytes(inputs.shape)) + " bytes, got dtype " +
                         std::to_string(static_cast<int>(inputs.dtype)) + " and " +
                         std::to_string(inputs.bytes.size) + " bytes");
  }
  if (!all_finite(inputs)) return Status::error("inputs hold non-finite values");
  return Status::ok_status();
}

void RemoteMixture::forward(const TensorData& inputs,
                            const std::vector<std::vector<ExpertRef>>& chosen, Done done) {
  if (Status s = check_inputs(inputs, chosen.size()); !s.ok()) {
    return fail_soon(std::move(done), Status::error("moe forward: " + s.message()));
  }
  auto call = std::make_shared<Call>();
  call->k_min = options_.k_min;
  call->input_sample = sample_shape_of(inputs);
  std::map<ExpertRef, size_t> index;
  for (size_t s = 0; s < chosen.size(); ++s) {
    std::set<ExpertRef> seen;
    for (const ExpertRef& e : chosen[s]) {
      if (!seen.insert(e).second) {
        return fail_soon(std::move(done), Status::error("moe forward: sample " + std::to_string(s) +
                                                        ": expert '" + e.uid + "' chosen twice"));
      }
      index.emplace(e, 0);
    }
  }
  for (auto& [ref, i] : index) {
    i = call->calls.size();
    call->calls.push_back(ExpertCall{ref, {}, std::nullopt, std::nullopt, std::nullopt});
  }
  call->needed.resize(chosen.size());
  for (size_t s = 0; s < chosen.size(); ++s) {
    for (const ExpertRef& e : chosen[s]) call->calls[index[e]].samples.push_back(int64_t(s));
    call->needed[s] = std::min<uint32_t>(options_.k_min, uint32_t(chosen[s].size()));
  }
  std::vector<Message> requests;
  for (const ExpertCall& c : call->calls) {
    ForwardRequest r{c.expert.uid, numerics_, {}};
    if (numerics_ == Numerics::kReal) {
      r.inputs = c.samples.size() == chosen.size() ? inputs : gather_rows(inputs, c.samples);
    } else {
      r.inputs = inputs;
      r.inputs.shape[0] = int64_t(c.samples.size());
    }
    requests.push_back(encode_forward_request(r));
  }
  call->done = std::move(done);
  start(call, std::move(requests));
}

void RemoteMixture::backward(const TensorData& inputs, std::vector<ExpertCall> calls,
                             std::vector<TensorData> grad_outputs, Done done) {
  const size_t rows = inputs.shape.empty() ? 0 : size_t(std::max<int64_t>(inputs.shape[0], 0));
  Status bad = check_inputs(inputs, rows);
  if (bad.ok() && grad_outputs.size() != calls.size()) {
    bad = Status::error(std::to_string(grad_outputs.size()) + " grad_outputs for " +
                        std::to_string(calls.size()) + " calls");
  }
  for (size_t c = 0; bad.ok() && c < calls.size(); ++c) {
    for (int64_t s : calls[c].samples) {
      if (s < 0 || size_t(s) >= rows) {
        bad = Status::error("call " + std::to_string(c) + " names sample " + std::to_string(s) +
                            " of " + std::to_string(rows));
      }
    }
    const TensorData& g = grad_outputs[c];
    if (!bad.ok() || !calls[c].output) continue;
    if (g.shape.empty() || g.shape[0] != int64_t(calls[c].samples.size()) ||
        (numerics_ == Numerics::kReal &&
         (g.dtype != DType::kFloat32 || g.bytes.size != float_bytes(g.shape) || !all_finite(g)))) {
      bad = Status::error("grad_outputs[" + std::to_string(c) + "] (shape " +
                          shape_string(g.shape) + ") is not a finite float32 batch of " +
                          std::to_string(calls[c].samples.size()) + " rows");
    }
  }
  if (!bad.ok()) return fail_soon(std::move(done), Status::error("moe backward: " + bad.message()));

  auto call = std::make_shared<Call>();
  call->backward = true;
  call->k_min = options_.backward_k_min;
  call->input_sample = sample_shape_of(inputs);
  call->calls = std::move(calls);
  call->needed.assign(rows, 0);
  std::vector<Message> requests;
  for (size_t c = 0; c < call->calls.size(); ++c) {
    ExpertCall& ec = call->calls[c];
    ec.grad_input.reset();
    if (!ec.output || ec.samples.empty()) {
      requests.emplace_back();  // not sent: it did not answer forward
      continue;
    }
    for (int64_t s : ec.samples) ++call->needed[size_t(s)];  // experts that answered, for now
    BackwardRequest r{ec.expert.uid, numerics_, {}, std::move(grad_outputs[c]), ec.version};
    if (numerics_ == Numerics::kReal) {
      r.inputs = gather_rows(inputs, ec.samples);
    } else {
      r.inputs = inputs;
      r.inputs.shape[0] = int64_t(ec.samples.size());
    }
    requests.push_back(encode_backward_request(r));
  }
  for (uint32_t& n : call->needed) n = std::min(n, options_.backward_k_min);
  call->done = std::move(done);
  start(call, std::move(requests));
}

void RemoteMixture::start(const std::shared_ptr<Call>& call, std::vector<Message> requests) {
  const size_t n = call->needed.size();
  call->answered.assign(n, 0);
  call->tally.assign(n, {});
  call->sent.assign(call->calls.size(), false);
  call->settled.assign(call->calls.size(), false);
  for (uint32_t need : call->needed) call->short_samples += need > 0 ? 1 : 0;
  call->started = rt_.now();
  ++in_flight_;
  const Time limit = call->backward ? options_.backward_timeout : options_.forward_timeout;
  std::weak_ptr<bool> alive = alive_;
  for (size_t c = 0; c < call->calls.size(); ++c) {
    if (requests[c].fields.empty()) continue;  // backward: it did not answer forward
    call->sent[c] = true;
    ++call->outstanding;
    rpc_.call(call->calls[c].expert.server, std::move(requests[c]),
              CallOptions().with_timeout(limit), [this, alive, call, c](Result<Message> r) {
                auto a = alive.lock();
                if (a && *a) on_answer(call, c, std::move(r));
              });
  }
  call->total_timer = rt_.schedule(call->outstanding ? limit : Time(0), [this, alive, call] {
    auto a = alive.lock();
    if (a && *a) finish(call);
  });
  arm_straggler(call);  // k_min = 0: nothing to wait for but the stragglers
}

void RemoteMixture::on_answer(const std::shared_ptr<Call>& call, size_t c, Result<Message> r) {
  if (call->finished) {
    rt_.metrics().count("moe_client_late_answers");
    return;
  }
  call->settled[c] = true;
  --call->outstanding;
  if (!r.ok()) {
    const Status& st = r.status();
    const char* kind = st.is_timed_out() ? "timeouts" : st.is_refused() ? "refusals" : "failures";
    rt_.metrics().count(std::string(call->backward ? "moe_backward_" : "moe_forward_") + kind);
    for (int64_t s : call->calls[c].samples) {
      Call::Tally& t = call->tally[size_t(s)];
      ++(st.is_timed_out() ? t.timed_out : st.is_refused() ? t.refused : t.failed);
    }
  } else if (std::string why = accept(*call, c, r.value()); !why.empty()) {
    rt_.metrics().count("moe_bad_outputs");
    rt_.metrics().event(
        "moe_bad_output",
        {{"uid", std::string_view(call->calls[c].expert.uid)}, {"why", std::string_view(why)}},
        EventDetail::kOperation);
    for (int64_t s : call->calls[c].samples) ++call->tally[size_t(s)].bad;
  } else {
    count_answer(*call, c);
  }
  if (call->outstanding == 0) return finish(call);
  arm_straggler(call);
}

void RemoteMixture::arm_straggler(const std::shared_ptr<Call>& call) {
  if (call->short_samples > 0 || call->straggler_armed || call->outstanding == 0) return;
  call->straggler_armed = true;
  std::weak_ptr<bool> alive = alive_;
  call->straggler_timer = rt_.schedule(options_.timeout_after_k_min, [this, alive, call] {
    auto a = alive.lock();
    if (a && *a) finish(call);
  });
}

std::string RemoteMixture::accept(Call& call, size_t c, const Message& answer) {
  ExpertCall& ec = call.calls[c];
  std::optional<uint64_t> version;
  auto decoded = decode_answer(call.backward, answer, numerics_, limits_, version);
  if (!decoded.ok()) return decoded.error();
  TensorData& t = decoded.value();
  if (t.shape[0] != int64_t(ec.samples.size())) {
    return std::to_string(t.shape[0]) + " rows for " + std::to_string(ec.samples.size()) +
           " samples";
  }
  if (numerics_ == Numerics::kReal) {
    if (t.dtype != DType::kFloat32)
      return "dtype " + std::to_string(int(t.dtype)) + ", not float32";
    if (!all_finite(t)) return "non-finite values";
  }
  const std::vector<int64_t> per_sample = sample_shape_of(t);
  const std::vector<int64_t>& expected =
      call.backward ? call.input_sample : call.output_sample.value_or(per_sample);
  if (per_sample != expected) {
    return "per-sample shape " + shape_string(per_sample) + ", expected " + shape_string(expected);
  }
  if (!call.backward) {
    call.output_sample = per_sample;
    ec.version = version;
  }
  (call.backward ? ec.grad_input : ec.output) = std::move(t);
  return "";
}

void RemoteMixture::count_answer(Call& call, size_t c) {
  for (int64_t s : call.calls[c].samples) {
    const size_t i = size_t(s);
    if (++call.answered[i] == call.needed[i]) --call.short_samples;
  }
}

Status RemoteMixture::shortfall(const Call& call) const {
  for (size_t s = 0; s < call.needed.size(); ++s) {
    if (call.answered[s] >= call.needed[s]) continue;
    const Call::Tally& t = call.tally[s];
    std::string why;
    auto add = [&why](uint32_t n, const char* what) {
      if (n == 0) return;
      why += (why.empty() ? "" : ", ") + std::to_string(n) + " " + what;
    };
    add(t.timed_out, "timed out");
    add(t.refused, "refused");
    add(t.bad, "malformed");
    add(t.failed, "failed");
    const char* name = call.backward ? "backward_k_min" : "k_min";
    std::string need = std::string(name) + " = " + std::to_string(call.k_min);
    if (call.needed[s] < call.k_min) {
      need = "min(" + need + ", experts) = " + std::to_string(call.needed[s]);
    }
    const std::string msg = std::string(call.backward ? "moe backward" : "moe forward") +
                            ": sample " + std::to_string(s) + ": " +
                            std::to_string(call.answered[s]) + " of " + need + " answered: " + why;
    if (t.timed_out > 0) return Status::timed_out(msg);
    if (t.refused > 0) return Status::refused(msg);
    return Status::error(msg);
  }
  return Status::ok_status();
}

void RemoteMixture::finish(const std::shared_ptr<Call>& call) {
  if (call->finished) return;
  call->finished = true;
  --in_flight_;
  rt_.cancel(call->total_timer);
  if (call->straggler_armed) rt_.cancel(call->straggler_timer);
  // Requests still out when the call ends timed out, as far as this call is concerned.
  for (size_t c = 0; c < call->calls.size(); ++c) {
    if (!call->sent[c] || call->settled[c]) continue;
    rt_.metrics().count(call->backward ? "moe_backward_timeouts" : "moe_forward_timeouts");
    for (int64_t s : call->calls[c].samples) ++call->tally[size_t(s)].timed_out;
  }
  rt_.metrics().observe(call->backward ? "moe_client_backward_s" : "moe_client_forward_s",
                        to_seconds(rt_.now() - call->started));
  Status s = shortfall(*call);
  Done done = std::move(call->done);
  call->done = nullptr;
  if (!s.ok()) {
    rt_.metrics().count(call->backward ? "moe_kmin_shortfall_backward"
                                       : "moe_kmin_shortfall_forward");
    done(std::move(s));
  } else {
    done(std::move(call->calls));
  }
}

}  // namespace crowdtrain::moe
