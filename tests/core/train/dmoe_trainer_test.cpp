// DmoeTrainer and Gating against independent computations: a monolithic LibTorch model that runs
// the same function (brute-force top-k, softmax over the experts that answered, the experts'
// own forward) in one graph gives the gradients every local parameter and every expert output
// must get; failures (dropped experts, backward failures, caller errors) against that reference
// with the failure written in; two trainers sharing one model against a sequential replay; and
// learning on separable blobs.
#include "core/train/dmoe_trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "core/tensor_codec.h"
#include "tests/core/train/dmoe_fakes.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::train {
namespace {

using testing::FakeCaller;
using testing::FakeExperts;
using testing::FakeFinder;

Dataset blobs(int64_t n, int64_t dims, int64_t classes, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> centres(static_cast<size_t>(classes * dims));
  for (float& c : centres) c = static_cast<float>(rng.normal(0.0, 2.0));
  torch::Tensor x = torch::empty({n, dims});
  torch::Tensor y = torch::empty({n}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % classes;
    y[i] = c;
    for (int64_t k = 0; k < dims; ++k) {
      x[i][k] = centres[static_cast<size_t>(c * dims + k)] + static_cast<float>(rng.normal(0, 0.5));
    }
  }
  return Dataset(x, y, classes);
}

DmoeOptions small_options() {
  return DmoeOptions()
      .input_dim(6)
      .hidden(8)
      .layers(2)
      .classes(3)
      .grid_sizes({3, 4})
      .k(3)
      .batch_size(10)
      .lr(1e-2)
      .seed(5);
}

// One trainer on one fake peer: per layer a finder ("L<l>") and a caller; experts its own or
// shared, the model its own or shared.
struct Rig {
  Rig(crowdtrain::testing::FakeWorld& w, DmoeOptions o, Dataset data,
      Time latency = std::chrono::milliseconds(2), std::shared_ptr<DmoeLocalModel> shared = nullptr,
      PeerId peer = 1, const FakeExperts* shared_experts = nullptr)
      : world(w), options(o) {
    rt = &world.add_peer(peer);
    model = shared ? shared : std::make_shared<DmoeLocalModel>(o);
    if (!shared_experts) {
      own_experts = std::make_unique<FakeExperts>(prefixes(o), o.grid_sizes(), o.hidden(),
                                                  2 * o.hidden(), 11);
    }
    experts = shared_experts ? shared_experts : own_experts.get();
    std::vector<DmoeLayerClients> clients;
    for (int64_t l = 0; l < o.layers(); ++l) {
      finders.push_back(
          std::make_unique<FakeFinder>(*rt, "L" + std::to_string(l), o.grid_sizes(), 100, latency));
      callers.push_back(std::make_unique<FakeCaller>(*rt, *experts, latency));
      clients.push_back({finders.back().get(), callers.back().get()});
    }
    trainer = std::make_unique<DmoeTrainer>(*rt, model, clients, data, o);
  }
  static std::vector<std::string> prefixes(const DmoeOptions& o) {
    std::vector<std::string> p;
    for (int64_t l = 0; l < o.layers(); ++l) p.push_back("L" + std::to_string(l));
    return p;
  }
  DmoeStepStats run_step() {
    std::optional<DmoeStepStats> got;
    trainer->step([&](const DmoeStepStats& s) { got = s; });
    world.run_for(std::chrono::seconds(10));
    CT_CHECK(got.has_value());
    return *got;
  }
  int64_t counter(const char* name) const { return world.sink.counter(name); }

  crowdtrain::testing::FakeWorld& world;
  DmoeOptions options;
  crowdtrain::testing::FakeRuntime* rt = nullptr;
  std::shared_ptr<DmoeLocalModel> model;
  std::unique_ptr<FakeExperts> own_experts;
  const FakeExperts* experts = nullptr;
  std::vector<std::unique_ptr<FakeFinder>> finders;
  std::vector<std::unique_ptr<FakeCaller>> callers;
  std::unique_ptr<DmoeTrainer> trainer;
};

// ---- the monolithic reference --------------------------------------------------------------

struct Reference {
  torch::Tensor loss;
  torch::Tensor grads;                                      // flat, the model's parameter order
  std::map<std::string, torch::Tensor> expert_grads;        // d loss / d expert output rows
  std::map<std::string, std::vector<int64_t>> expert_rows;  // samples routed to each expert
};

struct Failures {
  std::set<std::string> dropped;   // did not answer forward (or answered non-finite)
  std::set<std::string> constant;  // failed backward: treated as a constant
};

// The same function in one graph: params are the model's (copied), experts evaluated directly.
Reference reference_step(const std::vector<torch::Tensor>& model_params, const FakeExperts& ex,
                         const DmoeOptions& o, const torch::Tensor& x, const torch::Tensor& y,
                         const Failures& f = {}) {
  namespace F = torch::nn::functional;
  std::vector<torch::Tensor> p;
  for (const torch::Tensor& t : model_params) p.push_back(t.detach().clone().requires_grad_());
  const int64_t n = x.size(0), L = o.layers();
  const std::vector<int64_t>& grid = o.grid_sizes();
  Reference r;
  std::vector<torch::Tensor> expert_outs;
  std::vector<std::string> expert_uids;
  torch::Tensor h = F::linear(x, p[0], p[1]);
  for (int64_t l = 0; l < L; ++l) {
    const torch::Tensor logits = F::linear(h, p[2 + 2 * l], p[3 + 2 * l]);
    moe::GridScores scores(static_cast<size_t>(n));
    for (int64_t s = 0; s < n; ++s) {
      int64_t off = 0;
      for (int64_t g : grid) {
        scores[s].emplace_back();
        for (int64_t i = 0; i < g; ++i)
          scores[s].back().push_back(logits[s][off + i].item<double>());
        off += g;
      }
    }
    const auto top = moe::brute_force_top_k(scores, grid, static_cast<size_t>(o.k()));
    // Route: samples per surviving expert, ascending.
    std::map<std::string, std::vector<int64_t>> routed;
    for (int64_t s = 0; s < n; ++s) {
      for (const moe::GridPoint& gp : top[s]) {
        const std::string uid = moe::make_expert_uid("L" + std::to_string(l), gp.coords);
        if (!f.dropped.count(uid)) routed[uid].push_back(s);
      }
    }
    std::map<std::string, torch::Tensor> outs;
    for (const auto& [uid, rows] : routed) {
      const torch::Tensor in = h.index_select(0, torch::tensor(rows));
      // A constant: its output still gets a gradient, its input none through it.
      outs[uid] =
          f.constant.count(uid) ? ex.apply(uid, in.detach()).requires_grad_() : ex.apply(uid, in);
      expert_outs.push_back(outs[uid]);
      expert_uids.push_back(uid);
      r.expert_rows[uid] = rows;
    }
    std::vector<torch::Tensor> mixed;
    for (int64_t s = 0; s < n; ++s) {
      std::vector<torch::Tensor> lg, eo;
      for (const moe::GridPoint& gp : top[s]) {
        const std::string uid = moe::make_expert_uid("L" + std::to_string(l), gp.coords);
        if (f.dropped.count(uid)) continue;
        lg.push_back(logits[s][gp.coords[0]] + logits[s][grid[0] + gp.coords[1]]);
        const auto& rows = routed[uid];
        const int64_t row = std::find(rows.begin(), rows.end(), s) - rows.begin();
        eo.push_back(outs[uid][row]);
      }
      const torch::Tensor w = torch::softmax(torch::stack(lg), 0);
      mixed.push_back((w.unsqueeze(1) * torch::stack(eo)).sum(0));
    }
    h = torch::stack(mixed);
  }
  const int64_t hp = 2 + 2 * L;
  const torch::Tensor normed = torch::layer_norm(h, {o.hidden()}, p[hp], p[hp + 1], 1e-5);
  r.loss = F::cross_entropy(F::linear(normed, p[hp + 2], p[hp + 3]), y);
  std::vector<torch::Tensor> inputs = p;
  inputs.insert(inputs.end(), expert_outs.begin(), expert_outs.end());
  const auto g = torch::autograd::grad({r.loss}, inputs, {}, false, false, true);
  std::vector<torch::Tensor> flat;
  for (size_t i = 0; i < p.size(); ++i) {
    flat.push_back((g[i].defined() ? g[i] : torch::zeros_like(p[i])).reshape({-1}));
  }
  r.grads = torch::cat(flat);
  for (size_t i = 0; i < expert_uids.size(); ++i) r.expert_grads[expert_uids[i]] = g[p.size() + i];
  return r;
}

std::vector<torch::Tensor> params_of(DmoeLocalModel& m) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& t : m.module().parameters()) out.push_back(t.detach().clone());
  return out;
}

void next_batch(const DmoeTrainer& t, torch::Tensor* x, torch::Tensor* y) {
  BatchIterator copy = t.batches();
  copy.next(x, y);
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.sizes().equals(b.sizes())) << what << ": " << a.sizes() << " vs " << b.sizes();
  EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-6))
      << what << ": max difference " << (a - b).abs().max().item<double>();
}

// Checks the trainer's last step against the reference: local gradients and the gradients sent
// to every expert (with the samples they belong to).
void expect_matches(Rig& st, const Reference& ref) {
  expect_close(st.trainer->last_gradients(), ref.grads, "local gradients");
  size_t seen = 0;
  for (const auto& caller : st.callers) {
    for (const auto& [uid, td] : caller->grad_outputs_seen) {
      ASSERT_TRUE(ref.expert_grads.count(uid)) << uid << " got a gradient it should not";
      EXPECT_EQ(caller->backward_samples.at(uid), ref.expert_rows.at(uid)) << uid;
      expect_close(from_tensor_data(td).value(), ref.expert_grads.at(uid), "grad of " + uid);
      ++seen;
    }
  }
  EXPECT_EQ(seen, ref.expert_grads.size());
}

// The expert of layer `l` that serves the most samples in `ref`.
std::string busiest(const Reference& ref, int64_t l) {
  std::string best;
  size_t most = 0;
  const std::string prefix = "L" + std::to_string(l) + ".";
  for (const auto& [uid, rows] : ref.expert_rows) {
    if (uid.rfind(prefix, 0) == 0 && rows.size() > most) {
      best = uid;
      most = rows.size();
    }
  }
  return best;
}

class DmoeTest : public ::testing::Test {
 protected:
  crowdtrain::testing::FakeWorld world{3};
};

// ---- (a) every expert answers ----------------------------------------------------------------

TEST_F(DmoeTest, StepGradientsMatchMonolithicModel) {
  const DmoeOptions o = small_options();
  Rig st(world, o, blobs(40, 6, 3, 1));
  const std::vector<torch::Tensor> before = params_of(*st.model);
  torch::Tensor x, y;
  next_batch(*st.trainer, &x, &y);
  const Reference ref = reference_step(before, *st.experts, o, x, y);
  const DmoeStepStats stats = st.run_step();
  ASSERT_TRUE(stats.ok) << stats.failure << ": " << stats.status.message();
  EXPECT_NEAR(stats.loss, ref.loss.item<double>(), 1e-5);
  expect_matches(st, ref);
  EXPECT_GT(ref.expert_grads.size(), 3u);  // several experts per layer took part
  // The update is one Adam step with exactly those gradients.
  std::vector<torch::Tensor> expect;
  int64_t offset = 0;
  for (const torch::Tensor& p : before) {
    expect.push_back(p.clone().requires_grad_());
    expect.back().mutable_grad() = ref.grads.narrow(0, offset, p.numel()).view_as(p).clone();
    offset += p.numel();
  }
  torch::optim::Adam adam(expect, torch::optim::AdamOptions(o.lr()));
  adam.step();
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& p : expect) flat.push_back(p.detach().reshape({-1}));
  expect_close(st.model->parameters(), torch::cat(flat), "parameters after the step");
  EXPECT_EQ(st.model->updates(), 1);
  EXPECT_EQ(st.counter("dmoe_steps"), 1);
  EXPECT_EQ(world.sink.sample_count("dmoe_step_s"), 1u);
  EXPECT_GT(world.sink.percentile("dmoe_step_s", 0.5), 0.0);  // finder and caller latencies
}

// ---- (b) an expert dropped in forward --------------------------------------------------------

TEST_F(DmoeTest, DroppedExpertLeavesSoftmaxToSurvivors) {
  const DmoeOptions o = small_options();
  Rig st(world, o, blobs(40, 6, 3, 1));
  const std::vector<torch::Tensor> before = params_of(*st.model);
  torch::Tensor x, y;
  next_batch(*st.trainer, &x, &y);
  const Reference all = reference_step(before, *st.experts, o, x, y);
  const std::string gone = busiest(all, 0);
  ASSERT_FALSE(gone.empty());
  st.callers[0]->drop_forward = {gone};
  const Reference ref = reference_step(before, *st.experts, o, x, y, Failures{{gone}, {}});
  const DmoeStepStats stats = st.run_step();
  ASSERT_TRUE(stats.ok) << stats.status.message();
  EXPECT_NEAR(stats.loss, ref.loss.item<double>(), 1e-5);
  EXPECT_GT(std::abs(stats.loss - all.loss.item<double>()), 1e-6);
  expect_matches(st, ref);
  EXPECT_EQ(st.callers[0]->grad_outputs_seen.count(gone), 0u);  // no backward for it

  // By hand, in doubles: layer 1's inputs are layer 0's mix over the survivors only.
  const torch::Tensor z0 = torch::nn::functional::linear(x, before[0], before[1]);
  const torch::Tensor scores = torch::nn::functional::linear(z0, before[2], before[3]);
  const torch::Tensor z1 = from_tensor_data(st.callers[1]->last_inputs).value();
  const std::vector<int64_t>& hit = all.expert_rows.at(gone);
  for (int64_t s : {hit.front(), hit.back()}) {
    std::vector<std::pair<double, std::string>> survivors;  // (logit, uid)
    for (const auto& [uid, rows] : ref.expert_rows) {
      if (uid.rfind("L0.", 0) != 0 || std::find(rows.begin(), rows.end(), s) == rows.end())
        continue;
      const moe::ExpertCoords c = moe::parse_expert_coords(uid, o.grid_sizes()).value();
      survivors.push_back(
          {scores[s][c[0]].item<double>() + scores[s][3 + c[1]].item<double>(), uid});
    }
    ASSERT_EQ(survivors.size(), static_cast<size_t>(o.k() - 1)) << "sample " << s;
    double norm = 0;
    for (const auto& sv : survivors) norm += std::exp(sv.first);
    torch::Tensor mix = torch::zeros({o.hidden()}, torch::kDouble);
    for (const auto& sv : survivors) {
      const torch::Tensor out = st.experts->apply(sv.second, z0[s].unsqueeze(0));
      mix += std::exp(sv.first) / norm * out[0].to(torch::kDouble);
    }
    expect_close(z1[s].to(torch::kDouble), mix, "sample " + std::to_string(s));
  }
}

TEST_F(DmoeTest, NonFiniteOutputIsNeverCombined) {
  const DmoeOptions o = small_options();
  Rig st(world, o, blobs(40, 6, 3, 1));
  const std::vector<torch::Tensor> before = params_of(*st.model);
  torch::Tensor x, y;
  next_batch(*st.trainer, &x, &y);
  const std::string bad = busiest(reference_step(before, *st.experts, o, x, y), 1);
  st.callers[1]->nan_forward = {bad};
  const Reference ref = reference_step(before, *st.experts, o, x, y, Failures{{bad}, {}});
  const DmoeStepStats stats = st.run_step();
  ASSERT_TRUE(stats.ok) << stats.status.message();
  EXPECT_TRUE(std::isfinite(stats.loss));
  expect_matches(st, ref);
  EXPECT_EQ(st.counter("dmoe_dropped_expert_outputs"), 1);
}

// ---- (c) an expert failing in backward -------------------------------------------------------

TEST_F(DmoeTest, BackwardFailureTreatsExpertAsConstant) {
  const DmoeOptions o = small_options();
  Rig st(world, o, blobs(40, 6, 3, 1));
  const std::vector<torch::Tensor> before = params_of(*st.model);
  torch::Tensor x, y;
  next_batch(*st.trainer, &x, &y);
  const Reference all = reference_step(before, *st.experts, o, x, y);
  const std::string mute = busiest(all, 0);
  st.callers[0]->drop_backward = {mute};
  const Reference ref = reference_step(before, *st.experts, o, x, y, Failures{{}, {mute}});
  const DmoeStepStats stats = st.run_step();
  ASSERT_TRUE(stats.ok) << stats.status.message();
  expect_matches(st, ref);  // the failed expert still got its output's gradient
  // The input projection's gradient lost that expert's path: it differs from `all`.
  const int64_t w_in = before[0].numel();
  EXPECT_GT((st.trainer->last_gradients().narrow(0, 0, w_in) - all.grads.narrow(0, 0, w_in))
                .abs()
                .max()
                .item<double>(),
            1e-6);
  EXPECT_EQ(st.model->updates(), 1);
}

// ---- (d) finder and caller errors ------------------------------------------------------------

TEST_F(DmoeTest, ErrorsFailTheStepAndKeepTheModel) {
  const DmoeOptions o = small_options();
  Rig st(world, o, blobs(40, 6, 3, 1));
  const torch::Tensor before = st.model->parameters();
  st.callers[1]->forward_error = Status::timed_out("fake: too few answers");
  DmoeStepStats s = st.run_step();
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.failure, "forward");
  EXPECT_TRUE(s.status.is_timed_out());
  st.callers[1]->forward_error.reset();
  st.finders[0]->error = Status::timed_out("fake: beam search out of time");
  s = st.run_step();
  EXPECT_EQ(s.failure, "finder");
  st.finders[0]->error.reset();
  st.callers[0]->backward_error = Status::error("fake: too few backward answers");
  s = st.run_step();
  EXPECT_EQ(s.failure, "backward");
  EXPECT_TRUE(torch::equal(st.model->parameters(), before));
  EXPECT_EQ(st.model->updates(), 0);
  EXPECT_EQ(st.trainer->failed_steps(), 3);
  EXPECT_EQ(st.counter("dmoe_failed_steps"), 3);
  EXPECT_EQ(st.counter("dmoe_failed_steps_forward"), 1);
  EXPECT_EQ(st.counter("dmoe_failed_steps_finder"), 1);
  EXPECT_EQ(st.counter("dmoe_failed_steps_backward"), 1);
  EXPECT_EQ(st.counter("dmoe_steps"), 0);
  // Every expert of a sample gone: no usable answer, a failed step too.
  st.callers[0]->backward_error.reset();
  st.callers[0]->k_min = 0;
  for (const char* uid : {"L0.0.0", "L0.0.1", "L0.0.2", "L0.0.3", "L0.1.0", "L0.1.1", "L0.1.2",
                          "L0.1.3", "L0.2.0", "L0.2.1", "L0.2.2", "L0.2.3"}) {
    st.callers[0]->drop_forward.insert(uid);
  }
  s = st.run_step();
  EXPECT_EQ(s.failure, "no_experts");
  std::optional<DmoeEvalResult> eval;
  st.trainer->evaluate(blobs(12, 6, 3, 2), -1, [&](const DmoeEvalResult& r) { eval = r; });
  world.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(eval.has_value());
  EXPECT_EQ(eval->samples, 0);
  EXPECT_EQ(eval->failed_samples, 12);
  // And it recovers: the next step with every expert back updates the model.
  st.callers[0]->drop_forward.clear();
  EXPECT_TRUE(st.run_step().ok);
  EXPECT_EQ(st.model->updates(), 1);
}

// Safety (core/invariants.h): a step that outlives step_deadline is reported, once; steps that
// end in time are checked and pass.
TEST_F(DmoeTest, AStepPastItsDeadlineBreaksTheInvariant) {
  const DmoeOptions o = small_options().step_deadline(std::chrono::seconds(20));
  Rig st(world, o, blobs(40, 6, 3, 1));
  EXPECT_TRUE(st.run_step().ok);
  world.run_for(std::chrono::seconds(30));
  EXPECT_GE(st.counter("invariant_checks"), 1);
  EXPECT_EQ(st.counter("invariant_violations"), 0);
  st.callers[1]->hang_forward = true;
  bool ended = false;
  st.trainer->step([&](const DmoeStepStats&) { ended = true; });
  world.run_for(std::chrono::seconds(19));
  EXPECT_EQ(st.counter("invariant_violations"), 0);
  world.run_for(std::chrono::seconds(60));
  EXPECT_FALSE(ended);
  EXPECT_EQ(st.counter("invariant_violations/dmoe_step_bounded"), 1);
}

// ---- (e) two trainers sharing one model ------------------------------------------------------

// Trainers A and B (different latencies, so their steps overlap) share a model. Replay: starting
// from the same initial parameters, take the steps in their order of completion, each with the
// reference gradient of its batch at the parameters it started from, through one Adam.
TEST_F(DmoeTest, SharedModelStepsEqualSequentialReplay) {
  const DmoeOptions o = small_options();
  auto model = std::make_shared<DmoeLocalModel>(o);
  Rig a(world, DmoeOptions(o).seed(21), blobs(30, 6, 3, 7), std::chrono::milliseconds(3), model, 1);
  Rig b(world, DmoeOptions(o).seed(22), blobs(30, 6, 3, 8), std::chrono::milliseconds(5), model, 2,
        a.experts);
  struct Record {
    int64_t start_version;
    torch::Tensor x, y;
  };
  std::vector<Record> completed;
  std::vector<torch::Tensor> versions = {model->parameters()};
  std::function<void(Rig&, int)> go = [&](Rig& st, int left) {
    auto rec = std::make_shared<Record>();
    rec->start_version = model->updates();
    next_batch(*st.trainer, &rec->x, &rec->y);
    st.trainer->step([&, rec, left](const DmoeStepStats& s) {
      ASSERT_TRUE(s.ok) << s.status.message();
      // The other trainer's updates that landed while this step ran.
      EXPECT_EQ(s.staleness, model->updates() - 1 - rec->start_version);
      completed.push_back(*rec);
      versions.push_back(model->parameters());
      if (left > 1) go(st, left - 1);
    });
  };
  go(a, 6);
  go(b, 4);
  world.run_for(std::chrono::seconds(100));
  ASSERT_EQ(completed.size(), 10u);
  int64_t stale = 0;
  for (size_t i = 0; i < completed.size(); ++i) {
    stale += completed[i].start_version < static_cast<int64_t>(i);
  }
  EXPECT_GE(stale, 3);  // steps really overlapped
  EXPECT_EQ(world.sink.sample_count("dmoe_staleness"), 10u);

  DmoeLocalModel replay(o);
  ASSERT_TRUE(torch::equal(replay.parameters(), versions[0]));
  const std::vector<torch::Tensor> shapes = params_of(replay);
  for (size_t i = 0; i < completed.size(); ++i) {
    const Record& r = completed[i];
    std::vector<torch::Tensor> at_start;
    int64_t offset = 0;
    for (const torch::Tensor& p : shapes) {
      at_start.push_back(versions[r.start_version].narrow(0, offset, p.numel()).view_as(p));
      offset += p.numel();
    }
    const Reference ref = reference_step(at_start, *a.experts, o, r.x, r.y);
    std::vector<torch::Tensor> grads;
    offset = 0;
    for (const torch::Tensor& p : shapes) {
      grads.push_back(ref.grads.narrow(0, offset, p.numel()).view_as(p));
      offset += p.numel();
    }
    ASSERT_TRUE(replay.apply_gradients(grads).ok());
    expect_close(versions[i + 1], replay.parameters(), "after completion " + std::to_string(i));
  }
  expect_close(model->parameters(), replay.parameters(), "final parameters");
}

// ---- (f) learning ----------------------------------------------------------------------------

TEST_F(DmoeTest, LearnsSeparableBlobs) {
  const DmoeOptions o = DmoeOptions()
                            .input_dim(16)
                            .hidden(16)
                            .layers(2)
                            .classes(4)
                            .grid_sizes({4, 4})
                            .k(4)
                            .batch_size(32)
                            .lr(3e-3)
                            .seed(3);
  auto [train, val] = split_train_validation(blobs(1200, 16, 4, 3), 0.25, 1);
  Rig st(world, o, train, std::chrono::milliseconds(1));
  std::optional<DmoeEvalResult> before, after;
  st.trainer->evaluate(val, -1, [&](const DmoeEvalResult& r) { before = r; });
  world.run_for(std::chrono::seconds(10));
  bool finished = false;
  int64_t failed = 0;
  std::vector<double> losses;
  st.trainer->run(
      300,
      [&](const DmoeStepStats& s) {
        failed += !s.ok;
        losses.push_back(s.loss);
      },
      [&] { finished = true; });
  world.run_for(std::chrono::seconds(1000));
  ASSERT_TRUE(finished);
  st.trainer->evaluate(val, -1, [&](const DmoeEvalResult& r) { after = r; });
  world.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(before && after);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(st.trainer->steps_done(), 300);
  EXPECT_EQ(st.counter("dmoe_steps"), 300);
  EXPECT_EQ(after->samples, 300);
  EXPECT_GT(after->accuracy, 0.9) << "before " << before->accuracy;
  ASSERT_EQ(losses.size(), 300u);
  const double first = std::accumulate(losses.begin(), losses.begin() + 30, 0.0) / 30;
  const double last = std::accumulate(losses.end() - 30, losses.end(), 0.0) / 30;
  EXPECT_LT(last, 0.5 * first);
  EXPECT_EQ(world.sink.sample_count("dmoe_loss"), 300u);
}

}  // namespace
}  // namespace crowdtrain::train
