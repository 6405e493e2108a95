#include "core/moe/server.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

namespace crowdtrain::moe {

// A batch in flight: the requests it answers and, once the work ran, the expert's result. The
// work lambda holds it (and the expert) by shared_ptr: it may run after the server is gone.
struct ExpertServer::Batch {
  std::string uid;
  Direction dir = kForward;
  Numerics numerics = Numerics::kReal;
  std::shared_ptr<Expert> expert;
  std::vector<Task> tasks;
  int64_t rows = 0;
  Time started{0};
  uint64_t version = 0;                      // the expert's version when the batch started
  std::vector<double> scales;                // backward: each task's learning-rate scale
  bool step = true;                          // backward: the updating rows step (or accumulate)
  uint64_t steps = 0;                        // backward: optimizer steps the batch takes (0, 1)
  std::vector<int64_t> result_shape;         // per sample: forward outputs, backward grad inputs
  std::optional<Result<TensorData>> result;  // real numerics: set by the work
};

namespace {

const char* direction_name(int dir) { return dir == 0 ? "forward" : "backward"; }

}  // namespace

const char* stale_updates_name(StaleUpdates s) {
  switch (s) {
    case StaleUpdates::kApply:
      return "apply";
    case StaleUpdates::kScale:
      return "scale";
    case StaleUpdates::kSkip:
      return "skip";
  }
  return "?";
}

ExpertServer::ExpertServer(Runtime& rt, RpcEndpoint& rpc, ExpertServerOptions options)
    : rt_(rt), rpc_(rpc), options_(std::move(options)), alive_(std::make_shared<bool>(true)) {
  CT_CHECK(options_.max_batch_size() > 0);
  std::weak_ptr<bool> alive = alive_;
  for (Direction dir : {kForward, kBackward}) {
    const MsgType type =
        dir == kForward ? MsgType::kMoeForwardRequest : MsgType::kMoeBackwardRequest;
    rpc_.serve(type, [this, alive, dir](PeerId, Message msg, RpcEndpoint::Responder respond) {
      auto a = alive.lock();
      if (!a || !*a) {
        respond(make_error_response(msg, "moe server: no expert server on this peer any more"));
        return;
      }
      on_request(dir, std::move(msg), std::move(respond));
    });
  }
  rpc_.serve(MsgType::kMoeStateRequest,
             [this, alive](PeerId, Message msg, RpcEndpoint::Responder respond) {
               auto a = alive.lock();
               auto req = decode_state_request(msg, options_.limits());
               Result<StateResponse> state =
                   !a || !*a   ? Result<StateResponse>(Status::error("no expert server here"))
                   : !req.ok() ? Result<StateResponse>(req.status())
                               : export_state(req->uid);
               if (!state.ok()) {
                 rt_.metrics().count("moe_state_refused");
                 respond(make_error_response(msg, "moe server: " + state.error()));
                 return;
               }
               rt_.metrics().count("moe_state_served");
               Message out = encode_state_response(state.value());
               respond(std::move(out));
             });
  schedule_checkpoint();
}

Result<StateResponse> ExpertServer::export_state(const std::string& uid) const {
  auto it = experts_.find(uid);
  if (it == experts_.end()) return Status::error("no expert '" + uid + "' here");
  StateResponse out;
  out.uid = uid;
  if (it->second.expert) {
    auto bytes = it->second.expert->save_state();
    if (!bytes.ok()) return bytes.status();
    out.state = std::move(bytes.value());
    out.updates = it->second.expert->updates();
  }
  return out;
}

ExpertServer::~ExpertServer() {
  *alive_ = false;
  if (checkpoint_timer_set_) rt_.cancel(checkpoint_timer_);
}

Status ExpertServer::check_new_uid(const std::string& uid) const {
  if (uid.empty() || uid.size() > options_.limits().max_uid_bytes) {
    return Status::error("moe server: expert uid must have 1.." +
                         std::to_string(options_.limits().max_uid_bytes) + " bytes, got " +
                         std::to_string(uid.size()));
  }
  // The uid names a checkpoint file: no path separators, no "." or "..".
  if (uid.find('/') != std::string::npos || uid.find('\0') != std::string::npos || uid == "." ||
      uid == "..") {
    return Status::error("moe server: expert uid '" + uid + "' is not a valid file name");
  }
  if (experts_.count(uid)) return Status::error("moe server: expert '" + uid + "' already hosted");
  return Status::ok_status();
}

Status ExpertServer::add_expert(const std::string& uid, std::unique_ptr<Expert> expert) {
  if (options_.numerics() != Numerics::kReal) {
    return Status::error("moe server: add_expert('" + uid +
                         "') with a real expert on a timing-only server");
  }
  CT_CHECK(expert != nullptr);
  if (Status s = check_new_uid(uid); !s.ok()) return s;
  Hosted& h = experts_[uid];
  h.info = expert->info();
  h.expert = std::shared_ptr<Expert>(std::move(expert));
  load_checkpoint(uid, h);
  h.version = h.expert->updates();
  return Status::ok_status();
}

Status ExpertServer::add_expert(const std::string& uid, ExpertInfo info) {
  if (options_.numerics() != Numerics::kTiming) {
    return Status::error("moe server: add_expert('" + uid +
                         "') with only an ExpertInfo on a real-numerics server");
  }
  if (Status s = check_new_uid(uid); !s.ok()) return s;
  experts_[uid].info = std::move(info);
  return Status::ok_status();
}

Status ExpertServer::remove_expert(const std::string& uid) {
  auto it = experts_.find(uid);
  if (it == experts_.end()) return Status::error("moe server: expert '" + uid + "' not hosted");
  Status saved = Status::ok_status();
  if (!options_.checkpoint_dir().empty() && it->second.expert) {
    saved = write_checkpoint(uid, it->second);
  }
  Hosted removed = std::move(it->second);
  experts_.erase(it);
  for (Pool& pool : removed.pools) {
    for (Task& t : pool.tasks) {
      refuse("removed", "expert '" + uid + "' was removed from this server", t.respond);
    }
  }
  return saved;
}

std::vector<std::string> ExpertServer::hosted() const {
  std::vector<std::string> uids;
  for (const auto& [uid, h] : experts_) uids.push_back(uid);
  return uids;
}

uint64_t ExpertServer::queued_samples() const {
  uint64_t n = 0;
  for (const auto& [uid, h] : experts_) n += h.pools[0].samples + h.pools[1].samples;
  return n;
}

void ExpertServer::refuse(const std::string& reason, const std::string& why,
                          const RpcEndpoint::Responder& respond) {
  rt_.metrics().count("moe_server_refused");
  rt_.metrics().count("moe_server_refused_" + reason);
  Message error(MsgType::kRpcError);
  error.flags = kFlagResponse;
  error.add_bytes(kTagError, "moe server: " + why);
  respond(std::move(error));
}

void ExpertServer::on_request(Direction dir, Message msg, RpcEndpoint::Responder respond) {
  rt_.metrics().count(dir == kForward ? "moe_server_forward_requests"
                                      : "moe_server_backward_requests");
  Task task;
  std::string uid;
  Numerics numerics;
  if (dir == kForward) {
    auto req = decode_forward_request(msg, options_.limits());
    if (!req.ok()) return refuse("malformed", req.error(), respond);
    uid = std::move(req->uid);
    numerics = req->numerics;
    task.inputs = std::move(req->inputs);
  } else {
    auto req = decode_backward_request(msg, options_.limits());
    if (!req.ok()) return refuse("malformed", req.error(), respond);
    uid = std::move(req->uid);
    numerics = req->numerics;
    task.inputs = std::move(req->inputs);
    task.grad_outputs = std::move(req->grad_outputs);
    task.version = req->version;
  }
  std::string why;
  const std::string reason =
      admit(dir, uid, numerics, task.inputs, dir == kBackward ? &task.grad_outputs : nullptr, why);
  if (!reason.empty()) return refuse(reason, why, respond);
  if (options_.failure_prob() > 0 && rt_.rng().bernoulli(options_.failure_prob())) {
    return refuse("injected", "injected failure (server.failure_prob)", respond);
  }
  task.seq = next_seq_++;
  task.arrived = rt_.now();
  task.rows = task.inputs.shape[0];
  task.respond = std::move(respond);
  Pool& pool = experts_.at(uid).pools[dir];
  pool.samples += static_cast<uint64_t>(task.rows);
  pool.tasks.push_back(std::move(task));
  pump_soon();
}

void ExpertServer::pump_soon() {
  if (computing_ || pump_scheduled_) return;
  // After every message delivered at this instant, so that requests arriving together batch.
  pump_scheduled_ = true;
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(Time(0), [this, alive] {
    auto a = alive.lock();
    if (!a || !*a) return;
    pump_scheduled_ = false;
    pump();
  });
}

std::string ExpertServer::admit(Direction dir, const std::string& uid, Numerics numerics,
                                const TensorData& inputs, const TensorData* grad_outputs,
                                std::string& why) {
  auto it = experts_.find(uid);
  if (it == experts_.end()) {
    why = "no expert '" + uid + "' on this server";
    return "unknown_expert";
  }
  const Hosted& h = it->second;
  const std::string what = std::string(direction_name(dir)) + " of '" + uid + "': ";
  if (numerics != options_.numerics()) {
    why = what + numerics_name(numerics) + " request to a " + numerics_name(options_.numerics()) +
          "-numerics server";
    return "mode";
  }
  struct Part {
    const TensorData* t;
    const std::vector<int64_t>* expected;
    const char* name;
  };
  std::vector<Part> parts{{&inputs, &h.info.input_shape, "inputs"}};
  if (grad_outputs) parts.push_back({grad_outputs, &h.info.output_shape, "grad_outputs"});
  for (const Part& p : parts) {
    if (p.t->dtype != DType::kFloat32) {
      why = what + p.name + " have dtype " + std::to_string(static_cast<int>(p.t->dtype)) +
            ", expected float32";
      return "dtype";
    }
    if (sample_shape_of(*p.t) != *p.expected) {
      why = what + p.name + " have per-sample shape " + shape_string(sample_shape_of(*p.t)) +
            ", expected " + shape_string(*p.expected);
      return "shape";
    }
  }
  const uint64_t rows = static_cast<uint64_t>(inputs.shape[0]);
  if (rows > options_.max_batch_size()) {
    why = what + std::to_string(rows) + " samples, over max_batch_size " +
          std::to_string(options_.max_batch_size());
    return "too_large";
  }
  if (numerics == Numerics::kReal) {
    for (const Part& p : parts) {
      if (!all_finite(*p.t)) {
        why = what + p.name + " hold non-finite values";
        return "non_finite";
      }
    }
  }
  const Pool& pool = h.pools[dir];
  if (pool.samples + rows > options_.queue_limit()) {
    why = what + "queue full (" + std::to_string(pool.samples) + " samples waiting, limit " +
          std::to_string(options_.queue_limit()) + ")";
    return "queue_full";
  }
  return "";
}

void ExpertServer::pump() {
  if (computing_) return;
  // The pool whose oldest task arrived first; seq is unique, so there are no ties.
  Hosted* best = nullptr;
  const std::string* best_uid = nullptr;
  int best_dir = 0;
  for (auto& [uid, h] : experts_) {
    for (int dir : {kForward, kBackward}) {
      const Pool& pool = h.pools[dir];
      if (pool.tasks.empty()) continue;
      if (!best || pool.tasks.front().seq < best->pools[best_dir].tasks.front().seq) {
        best = &h;
        best_uid = &uid;
        best_dir = dir;
      }
    }
  }
  if (!best) return;
  auto batch = std::make_shared<Batch>();
  batch->uid = *best_uid;
  batch->dir = static_cast<Direction>(best_dir);
  batch->numerics = options_.numerics();
  batch->expert = best->expert;
  batch->result_shape = batch->dir == kForward ? best->info.output_shape : best->info.input_shape;
  Pool& pool = best->pools[best_dir];
  while (!pool.tasks.empty() && static_cast<uint64_t>(batch->rows + pool.tasks.front().rows) <=
                                    options_.max_batch_size()) {
    batch->rows += pool.tasks.front().rows;
    rt_.metrics().observe("moe_queue_s", to_seconds(rt_.now() - pool.tasks.front().arrived));
    batch->tasks.push_back(std::move(pool.tasks.front()));
    pool.tasks.pop_front();
  }
  CT_CHECK(!batch->tasks.empty());  // admit() refuses requests over max_batch_size
  pool.samples -= static_cast<uint64_t>(batch->rows);
  rt_.metrics().observe("moe_batch_size", static_cast<double>(batch->rows));
  rt_.metrics().count("moe_server_load_" + batch->uid, batch->rows);
  batch->started = rt_.now();
  batch->version = best->version;
  if (batch->dir == kBackward) plan_update(*best, *batch);
  computing_ = true;

  const double per_sample = batch->dir == kForward ? best->info.forward_flops_per_sample
                                                   : best->info.backward_flops_per_sample;
  std::function<void()> work;
  if (batch->numerics == Numerics::kReal) {
    work = [batch] {
      if (batch->dir == kBackward) {
        batch->result = run_backward(*batch);
        return;
      }
      std::vector<const TensorData*> inputs;
      for (const Task& t : batch->tasks) inputs.push_back(&t.inputs);
      batch->result = batch->expert->forward(concat_rows(inputs));
    };
  }
  std::weak_ptr<bool> alive = alive_;
  rt_.compute(ComputeCost{per_sample * static_cast<double>(batch->rows)}, std::move(work),
              [this, alive, batch] {
                auto a = alive.lock();
                if (!a || !*a) return;
                finish_batch(*batch);
              });
}

std::vector<double> ExpertServer::update_scales(const Hosted& h, const std::vector<Task>& tasks) {
  std::vector<double> scales(tasks.size(), 1.0);
  double weighted = 0, rows = 0;  // kScale: the batch's mean of 1 / (1 + staleness) per row
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    uint64_t stale = 0;  // a request without a version (or from a newer past) counts as fresh
    if (t.version && *t.version <= h.version) {
      stale = h.version - *t.version;
      rt_.metrics().observe("moe_update_staleness", static_cast<double>(stale));
    }
    if (options_.stale_updates() == StaleUpdates::kSkip && stale > options_.max_staleness()) {
      scales[i] = 0;
      rt_.metrics().count("moe_server_stale_skipped");
    }
    weighted += static_cast<double>(t.rows) / (1.0 + static_cast<double>(stale));
    rows += static_cast<double>(t.rows);
  }
  if (options_.stale_updates() == StaleUpdates::kScale && rows > 0) {
    scales.assign(tasks.size(), weighted / rows);
  }
  return scales;
}

// Every policy gives the rows that update one scale, so a batch takes at most one step; with
// min_update_samples it only accumulates until enough samples have come.
void ExpertServer::plan_update(Hosted& h, Batch& batch) {
  batch.scales = update_scales(h, batch.tasks);
  uint64_t updating = 0;
  for (size_t i = 0; i < batch.tasks.size(); ++i) {
    if (batch.scales[i] > 0) updating += static_cast<uint64_t>(batch.tasks[i].rows);
  }
  if (updating == 0) return;
  h.pending_samples += updating;
  batch.step = h.pending_samples >= options_.min_update_samples();
  if (batch.step) h.pending_samples = 0;
  batch.steps = batch.step ? 1 : 0;
  if (!batch.step) rt_.metrics().count("moe_server_accumulated");
}

Result<TensorData> ExpertServer::run_backward(Batch& batch) {
  std::map<double, std::vector<size_t>> groups;  // scale -> tasks, in task order
  for (size_t i = 0; i < batch.tasks.size(); ++i) groups[batch.scales[i]].push_back(i);
  std::vector<TensorData> parts(batch.tasks.size());
  for (const auto& [scale, members] : groups) {
    std::vector<const TensorData*> inputs, grads;
    for (size_t i : members) {
      inputs.push_back(&batch.tasks[i].inputs);
      grads.push_back(&batch.tasks[i].grad_outputs);
    }
    const UpdateRule rule{scale, scale > 0 && batch.step};
    Result<TensorData> r = batch.expert->backward(concat_rows(inputs), concat_rows(grads), rule);
    if (!r.ok() || groups.size() == 1) return r;
    int64_t at = 0, rows = 0;
    for (size_t i : members) rows += batch.tasks[i].rows;
    if (r->shape.empty() || r->shape[0] != rows || r->dtype != DType::kFloat32 ||
        r->bytes.size != float_bytes(r->shape)) {
      return r;  // finish_batch refuses a result of the wrong shape
    }
    for (size_t i : members) {
      parts[i] = slice_rows(r.value(), at, batch.tasks[i].rows);
      at += batch.tasks[i].rows;
    }
  }
  std::vector<const TensorData*> ordered;
  for (const TensorData& p : parts) ordered.push_back(&p);
  return concat_rows(ordered);
}

void ExpertServer::finish_batch(Batch& batch) {
  rt_.metrics().observe("moe_compute_s", to_seconds(rt_.now() - batch.started));
  computing_ = false;
  if (batch.dir == kBackward) count_steps(batch);
  std::vector<int64_t> shape{batch.rows};
  shape.insert(shape.end(), batch.result_shape.begin(), batch.result_shape.end());
  if (batch.numerics == Numerics::kTiming) {
    answer_batch(batch, shape_only(std::move(shape)));
  } else if (!batch.result || !batch.result->ok()) {
    // Expert::backward refuses non-finite gradients: no step was applied.
    const std::string why = batch.result ? batch.result->error() : "the compute did not run";
    rt_.metrics().count(batch.dir == kForward ? "moe_server_forward_failures"
                                              : "moe_server_backward_failures");
    for (Task& t : batch.tasks) {
      refuse("compute",
             std::string(direction_name(batch.dir)) + " of '" + batch.uid + "' failed: " + why,
             t.respond);
    }
  } else {
    const TensorData& out = batch.result->value();
    if (out.dtype != DType::kFloat32 || out.shape != shape ||
        out.bytes.size != float_bytes(shape)) {
      rt_.metrics().count("moe_server_bad_expert_results");
      for (Task& t : batch.tasks) {
        refuse("compute",
               "'" + batch.uid + "' returned shape " + shape_string(out.shape) + " (dtype " +
                   std::to_string(static_cast<int>(out.dtype)) + "), expected float32 " +
                   shape_string(shape),
               t.respond);
      }
    } else {
      answer_batch(batch, out);
    }
  }
  pump();
}

// The expert's version after a backward batch: the steps it took (a real expert says; a timing
// one took batch.steps, 0 or 1), unless it was removed while the batch ran.
void ExpertServer::count_steps(const Batch& batch) {
  auto it = experts_.find(batch.uid);
  const bool same = it != experts_.end() && it->second.expert == batch.expert;
  const uint64_t before = batch.version;
  const uint64_t after = batch.expert ? batch.expert->updates() : before + batch.steps;
  if (after > before) rt_.metrics().count("moe_server_updates", after - before);
  if (!same) return;
  it->second.version = after;
  // A failed backward drops the expert's accumulated gradients: start counting afresh.
  if (batch.result && !batch.result->ok()) it->second.pending_samples = 0;
}

void ExpertServer::answer_batch(Batch& batch, const TensorData& result) {
  int64_t at = 0;
  for (Task& t : batch.tasks) {
    TensorData part = batch.numerics == Numerics::kReal ? slice_rows(result, at, t.rows)
                                                        : shape_only(result.shape);
    part.shape[0] = t.rows;
    at += t.rows;
    if (batch.dir == kForward) {
      t.respond(
          encode_forward_response(ForwardResponse{batch.numerics, std::move(part), batch.version}));
    } else {
      t.respond(encode_backward_response(BackwardResponse{batch.numerics, std::move(part)}));
    }
  }
}

}  // namespace crowdtrain::moe
