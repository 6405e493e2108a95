// DmoeTrainer: the forward and backward of a DMoE step as a chain of Runtime callbacks.
// Segments: segment 0 is x -> input Linear -> z_0; segment l+1 starts at the leaf z_l and holds
// layer l's gate, its combine of the expert outputs (leaves, one per answering expert) and, for
// the last layer, the norm, head and loss. Backward goes segment by segment with
// torch::autograd::grad: each layer's gives the expert outputs' gradients (sent through the
// caller), the gating path's gradient of z_l and the gate's; the experts' grad_inputs are then
// scattered into z_l's gradient before the previous segment runs.
#include "core/train/dmoe_trainer.h"

#include "core/invariants.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "core/tensor_codec.h"

namespace crowdtrain::train {

namespace {

struct LayerState {
  torch::Tensor input;  // z_l (training: a leaf that requires grad)
  TensorData input_data;
  torch::Tensor logits;                   // gate scores [n, sum(grid)]
  std::vector<moe::ExpertCall> calls;     // the answers combined
  std::vector<torch::Tensor> outputs;     // their outputs (training: leaves)
  torch::Tensor out;                      // z_{l+1}, or the loss for the last layer
  std::vector<moe::ExpertCall> returned;  // backward's answers, not yet scattered
};

torch::Tensor or_zeros(const torch::Tensor& g, const torch::Tensor& like) {
  return g.defined() ? g : torch::zeros_like(like);
}

}  // namespace

struct DmoeTrainer::Pass {
  bool training = true;
  torch::Tensor x, y;
  std::vector<torch::Tensor> params;  // snapshot (training) or live (evaluation)
  torch::Tensor z0;                   // segment 0's output
  std::vector<LayerState> layers;
  torch::Tensor logits, loss;
  torch::Tensor grad;                // gradient of the current segment's output
  std::vector<torch::Tensor> grads;  // per parameter
  std::string failure;               // set inside compute work, acted on in its done
  Status status;
  Time started{0};
  int64_t start_updates = 0;  // the model's updates when the step took its snapshot
  DmoeStepStats stats;
  std::function<void(const DmoeStepStats&)> done;
  std::function<void(bool ok, const torch::Tensor& logits)> eval_done;
};

struct DmoeTrainer::EvalState {
  Dataset data;
  int64_t n = 0, next = 0, correct = 0, samples = 0, failed = 0;
  std::function<void(const DmoeEvalResult&)> done;
};

DmoeTrainer::DmoeTrainer(Runtime& rt, std::shared_ptr<DmoeLocalModel> model,
                         std::vector<DmoeLayerClients> layers, Dataset train, DmoeOptions options)
    : rt_(rt), model_(std::move(model)), layers_(std::move(layers)), options_(std::move(options)) {
  CT_CHECK(model_ != nullptr);
  const DmoeOptions& m = model_->options();
  CT_CHECK(m.input_dim() == options_.input_dim() && m.hidden() == options_.hidden() &&
           m.layers() == options_.layers() && m.classes() == options_.classes() &&
           m.grid_sizes() == options_.grid_sizes());
  CT_CHECK(static_cast<int64_t>(layers_.size()) == options_.layers());
  for (const DmoeLayerClients& c : layers_) CT_CHECK(c.finder != nullptr && c.caller != nullptr);
  CT_CHECK(options_.k() >= 1 && options_.batch_size() > 0 && options_.eval_batch_size() > 0);
  CT_CHECK(train.size() > 0 && train.num_features() == options_.input_dim());
  if (options_.intra_op_threads() > 0 && at::get_num_threads() != options_.intra_op_threads()) {
    at::set_num_threads(options_.intra_op_threads());
  }
  batches_ = std::make_unique<BatchIterator>(std::move(train), options_.batch_size(),
                                             derive_seed(options_.seed(), "dmoe_batches"));
}

DmoeTrainer::~DmoeTrainer() = default;

at::Tensor DmoeTrainer::last_gradients() const {
  return last_gradients_ ? *last_gradients_ : torch::empty({0}, torch::kFloat32);
}

void DmoeTrainer::step(std::function<void(const DmoeStepStats&)> done) {
  CT_CHECK(!busy_);
  busy_ = true;
  auto pass = std::make_shared<Pass>();
  pass->done = std::move(done);
  pass->started = rt_.now();
  pass->stats.attempt = ++attempts_;
  batches_->next(&pass->x, &pass->y);
  pass->params = model_->snapshot();
  pass->start_updates = model_->updates();
  if (options_.step_deadline() > Time(0)) watch(pass->stats.attempt);
  start_pass(std::move(pass));
}

void DmoeTrainer::watch(int64_t attempt) {
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(options_.step_deadline(), [this, alive, attempt] {
    if (alive.expired()) return;
    const bool ended = !busy_ || attempts_ != attempt;
    check_invariant(rt_.metrics(), ended, "dmoe_step_bounded", [&] {
      return "step " + std::to_string(attempt) + " still running " +
             std::to_string(to_seconds(options_.step_deadline())) +
             " s after it began, past every time-out of its searches and calls";
    });
  });
}

void DmoeTrainer::start_pass(std::shared_ptr<Pass> pass) {
  pass->layers.resize(static_cast<size_t>(options_.layers()));
  const int64_t n = pass->x.size(0);
  std::weak_ptr<bool> alive = alive_;
  rt_.compute(
      ComputeCost{model_->input_flops(n) + model_->gate_flops(n)},
      [this, pass] {
        std::optional<torch::NoGradGuard> no_grad;
        if (!pass->training) no_grad.emplace();
        pass->z0 = model_->input_forward(pass->params, pass->x);
        LayerState& first = pass->layers[0];
        first.input = pass->training ? pass->z0.detach().requires_grad_() : pass->z0;
        first.input_data = to_tensor_data(first.input.detach());
        first.logits = model_->gate_forward(pass->params, 0, first.input);
      },
      [this, alive, pass] {
        if (!alive.expired()) find_experts(pass, 0);
      });
}

void DmoeTrainer::find_experts(std::shared_ptr<Pass> pass, int64_t layer) {
  const LayerState& ls = pass->layers[static_cast<size_t>(layer)];
  const int64_t n = ls.input.size(0);
  std::weak_ptr<bool> alive = alive_;
  layers_[static_cast<size_t>(layer)].finder->find(
      model_->gate(layer).grid_scores(ls.logits), static_cast<size_t>(options_.k()),
      [this, alive, pass, layer, n](Result<std::vector<std::vector<moe::FoundExpert>>> found) {
        if (alive.expired()) return;
        if (!found.ok()) return end_pass(pass, "finder", found.status());
        if (static_cast<int64_t>(found->size()) != n) {
          return end_pass(pass, "finder",
                          Status::error("finder answered for " + std::to_string(found->size()) +
                                        " samples, not " + std::to_string(n)));
        }
        // Up to k experts per sample whose uids lie on this layer's grid, each uid once (the
        // first, best, server of a uid found twice).
        std::vector<std::vector<moe::ExpertRef>> chosen(static_cast<size_t>(n));
        for (int64_t s = 0; s < n; ++s) {
          std::set<std::string> seen;
          for (const moe::FoundExpert& f : (*found)[static_cast<size_t>(s)]) {
            if (static_cast<int64_t>(chosen[static_cast<size_t>(s)].size()) >= options_.k()) break;
            if (!moe::parse_expert_coords(f.expert.uid, options_.grid_sizes()).ok()) {
              rt_.metrics().count("dmoe_bad_expert_uids");
              continue;
            }
            if (seen.insert(f.expert.uid).second)
              chosen[static_cast<size_t>(s)].push_back(f.expert);
          }
        }
        call_experts(pass, layer, std::move(chosen));
      });
}

void DmoeTrainer::call_experts(std::shared_ptr<Pass> pass, int64_t layer,
                               std::vector<std::vector<moe::ExpertRef>> chosen) {
  std::weak_ptr<bool> alive = alive_;
  layers_[static_cast<size_t>(layer)].caller->forward(
      pass->layers[static_cast<size_t>(layer)].input_data, chosen,
      [this, alive, pass, layer](Result<std::vector<moe::ExpertCall>> calls) {
        if (alive.expired()) return;
        if (!calls.ok()) return end_pass(pass, "forward", calls.status());
        combine(pass, layer, std::move(calls).value());
      });
}

void DmoeTrainer::combine(std::shared_ptr<Pass> pass, int64_t layer,
                          std::vector<moe::ExpertCall> calls) {
  const bool last = layer + 1 == options_.layers();
  const int64_t n = pass->x.size(0), d = options_.hidden();
  const double flops =
      model_->combine_flops(n) + (last ? model_->head_flops(n) : model_->gate_flops(n));
  std::weak_ptr<bool> alive = alive_;
  rt_.compute(
      ComputeCost{flops},
      [this, pass, layer, last, n, d, calls = std::move(calls)] {
        std::optional<torch::NoGradGuard> no_grad;
        if (!pass->training) no_grad.emplace();
        LayerState& ls = pass->layers[static_cast<size_t>(layer)];
        std::vector<std::vector<moe::ExpertCoords>> coords(static_cast<size_t>(n));
        std::vector<std::vector<int64_t>> rows(static_cast<size_t>(n));
        int64_t offset = 0;
        for (const moe::ExpertCall& call : calls) {
          if (!call.output) continue;
          Result<moe::ExpertCoords> c =
              moe::parse_expert_coords(call.expert.uid, options_.grid_sizes());
          Result<torch::Tensor> out = c.ok() ? expert_output(call, n, d) : c.status();
          if (!out.ok()) {  // never combined: as if the expert had not answered
            rt_.metrics().count("dmoe_dropped_expert_outputs");
            continue;
          }
          for (size_t j = 0; j < call.samples.size(); ++j) {
            coords[static_cast<size_t>(call.samples[j])].push_back(*c);
            rows[static_cast<size_t>(call.samples[j])].push_back(offset + static_cast<int64_t>(j));
          }
          offset += static_cast<int64_t>(call.samples.size());
          ls.outputs.push_back(pass->training ? out->requires_grad_() : *out);
          ls.calls.push_back(call);
        }
        for (int64_t s = 0; s < n; ++s) {
          if (rows[static_cast<size_t>(s)].empty()) {
            pass->failure = "no_experts";
            pass->status = Status::error("DMoE layer " + std::to_string(layer) + ": sample " +
                                         std::to_string(s) + " has no usable expert answer");
            return;
          }
        }
        const torch::Tensor y = model_->combine(layer, ls.logits, coords, rows, ls.outputs);
        if (last) {
          pass->logits = model_->head_forward(pass->params, y);
          pass->loss = torch::nn::functional::cross_entropy(pass->logits, pass->y);
          ls.out = pass->loss;
          return;
        }
        ls.out = y;
        LayerState& next = pass->layers[static_cast<size_t>(layer + 1)];
        next.input = pass->training ? y.detach().requires_grad_() : y;
        next.input_data = to_tensor_data(y.detach());
        next.logits = model_->gate_forward(pass->params, layer + 1, next.input);
      },
      [this, alive, pass, layer, last] {
        if (alive.expired()) return;
        if (!pass->failure.empty()) return end_pass(pass, pass->failure, pass->status);
        if (!last) return find_experts(pass, layer + 1);
        if (!pass->training) return end_pass(pass, "", Status());
        pass->stats.loss = pass->loss.item<double>();
        pass->grads.resize(pass->params.size());
        backward_layer(pass, layer);
      });
}

void DmoeTrainer::backward_layer(std::shared_ptr<Pass> pass, int64_t layer) {
  const bool last = layer + 1 == options_.layers();
  const int64_t n = pass->x.size(0);
  const double flops = 2.0 * (model_->combine_flops(n) + model_->gate_flops(n) +
                              (last ? model_->head_flops(n) : 0.0));
  std::weak_ptr<bool> alive = alive_;
  rt_.compute(
      ComputeCost{flops},
      [this, pass, layer, last] {
        LayerState& ls = pass->layers[static_cast<size_t>(layer)];
        if (!last) {
          rt_.metrics().count(
              "dmoe_dropped_grad_inputs",
              add_grad_inputs(pass->layers[static_cast<size_t>(layer + 1)].returned, pass->grad));
        }
        std::vector<size_t> owned = DmoeLocalModel::gate_params(layer);
        if (last) {
          const std::vector<size_t> head = model_->head_params();
          owned.insert(owned.end(), head.begin(), head.end());
        }
        std::vector<torch::Tensor> inputs = ls.outputs;
        inputs.push_back(ls.input);
        for (size_t i : owned) inputs.push_back(pass->params[i]);
        std::vector<torch::Tensor> grad_out;
        if (!last) grad_out.push_back(pass->grad);
        const std::vector<torch::Tensor> g =
            torch::autograd::grad({ls.out}, inputs, grad_out, /*retain_graph=*/false,
                                  /*create_graph=*/false, /*allow_unused=*/true);
        const size_t c = ls.outputs.size();
        for (size_t i = 0; i < owned.size(); ++i) {
          pass->grads[owned[i]] = or_zeros(g[c + 1 + i], pass->params[owned[i]]);
        }
        pass->grad = or_zeros(g[c], ls.input);
        ls.outputs.assign(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(c));
        for (size_t i = 0; i < c; ++i) ls.outputs[i] = or_zeros(ls.outputs[i], inputs[i]);
        ls.out = torch::Tensor();
      },
      [this, alive, pass, layer] {
        if (!alive.expired()) expert_backward(pass, layer);
      });
}

void DmoeTrainer::expert_backward(std::shared_ptr<Pass> pass, int64_t layer) {
  LayerState& ls = pass->layers[static_cast<size_t>(layer)];
  // After backward_layer, `outputs` holds the gradients of the experts' outputs.
  std::vector<TensorData> grad_outputs;
  for (const torch::Tensor& g : ls.outputs) grad_outputs.push_back(to_tensor_data(g));
  ls.outputs.clear();
  std::weak_ptr<bool> alive = alive_;
  layers_[static_cast<size_t>(layer)].caller->backward(
      ls.input_data, ls.calls, std::move(grad_outputs),
      [this, alive, pass, layer](Result<std::vector<moe::ExpertCall>> calls) {
        if (alive.expired()) return;
        if (!calls.ok()) return end_pass(pass, "backward", calls.status());
        pass->layers[static_cast<size_t>(layer)].returned = std::move(calls).value();
        if (layer > 0) return backward_layer(pass, layer - 1);
        backward_input(pass);
      });
}

void DmoeTrainer::backward_input(std::shared_ptr<Pass> pass) {
  std::weak_ptr<bool> alive = alive_;
  rt_.compute(
      ComputeCost{2.0 * model_->input_flops(pass->x.size(0))},
      [this, pass] {
        rt_.metrics().count("dmoe_dropped_grad_inputs",
                            add_grad_inputs(pass->layers[0].returned, pass->grad));
        const std::vector<size_t> owned = DmoeLocalModel::input_params();
        std::vector<torch::Tensor> inputs;
        for (size_t i : owned) inputs.push_back(pass->params[i]);
        const std::vector<torch::Tensor> g =
            torch::autograd::grad({pass->z0}, inputs, {pass->grad}, false, false, true);
        for (size_t i = 0; i < owned.size(); ++i) {
          pass->grads[owned[i]] = or_zeros(g[i], pass->params[owned[i]]);
        }
        std::vector<torch::Tensor> flat;
        for (const torch::Tensor& t : pass->grads) flat.push_back(t.detach().reshape({-1}));
        last_gradients_ = std::make_unique<at::Tensor>(torch::cat(flat).to(torch::kFloat32));
        pass->stats.staleness = model_->updates() - pass->start_updates;
        const Status applied = model_->apply_gradients(pass->grads);
        if (!applied.ok()) {
          pass->failure = "non_finite";
          pass->status = applied;
        }
      },
      [this, alive, pass] {
        if (!alive.expired()) end_pass(pass, pass->failure, pass->status);
      });
}

void DmoeTrainer::end_pass(std::shared_ptr<Pass> pass, std::string failure, Status status) {
  if (!pass->training) {
    if (!failure.empty()) rt_.metrics().count("dmoe_eval_failed_batches");
    pass->eval_done(failure.empty(), pass->logits);
    return;
  }
  DmoeStepStats stats = pass->stats;
  stats.ok = failure.empty();
  Metrics& metrics = rt_.metrics();
  if (stats.ok) {
    ++steps_ok_;
    metrics.count("dmoe_steps");
    metrics.observe("dmoe_step_s", to_seconds(rt_.now() - pass->started));
    metrics.observe("dmoe_loss", stats.loss);
    metrics.observe("dmoe_staleness", static_cast<double>(stats.staleness));
  } else {
    ++steps_failed_;
    stats.failure = failure;
    stats.status = std::move(status);
    metrics.count("dmoe_failed_steps");
    metrics.count("dmoe_failed_steps_" + failure);
    metrics.event("dmoe_step_failed", {{"reason", std::string_view(failure)}},
                  EventDetail::kOperation);
  }
  busy_ = false;
  auto done = std::move(pass->done);
  pass.reset();
  if (done) done(stats);
}

void DmoeTrainer::run(int64_t steps, std::function<void(const DmoeStepStats&)> on_step,
                      std::function<void()> finished) {
  CT_CHECK(!busy_ && run_left_ < 0 && steps >= 0);
  run_left_ = steps;
  on_step_ = std::move(on_step);
  run_finished_ = std::move(finished);
  run_next();
}

void DmoeTrainer::stop() {
  if (run_left_ > 0) run_left_ = 0;
}

void DmoeTrainer::run_next() {
  if (run_left_ <= 0) {
    run_left_ = -1;
    auto finished = std::move(run_finished_);
    on_step_ = nullptr;
    if (finished) finished();
    return;
  }
  --run_left_;
  std::weak_ptr<bool> alive = alive_;
  step([this, alive](const DmoeStepStats& stats) {
    if (on_step_) on_step_(stats);
    if (stats.ok) return run_next();
    rt_.schedule(options_.retry_delay(), [this, alive] {
      if (!alive.expired()) run_next();
    });
  });
}

void DmoeTrainer::evaluate(const Dataset& data, int64_t n,
                           std::function<void(const DmoeEvalResult&)> done) {
  CT_CHECK(data.size() == 0 || data.num_features() == options_.input_dim());
  auto state = std::make_shared<EvalState>();
  state->data = data;
  state->n = (n < 0 || n > data.size()) ? data.size() : n;
  state->done = std::move(done);
  eval_next(std::move(state));
}

void DmoeTrainer::eval_next(std::shared_ptr<EvalState> state) {
  if (state->next >= state->n) {
    DmoeEvalResult r;
    r.samples = state->samples;
    r.failed_samples = state->failed;
    r.accuracy = r.samples > 0 ? static_cast<double>(state->correct) / r.samples : 0.0;
    auto done = std::move(state->done);
    if (done) done(r);
    return;
  }
  const int64_t b = std::min(options_.eval_batch_size(), state->n - state->next);
  auto pass = std::make_shared<Pass>();
  pass->training = false;
  pass->x = state->data.images().narrow(0, state->next, b);
  pass->y = state->data.labels().narrow(0, state->next, b);
  pass->params = model_->live();
  pass->eval_done = [this, state, b, y = pass->y](bool ok, const torch::Tensor& logits) {
    if (ok) {
      state->correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      state->samples += b;
    } else {
      state->failed += b;
    }
    state->next += b;
    eval_next(state);
  };
  start_pass(std::move(pass));
}

}  // namespace crowdtrain::train
