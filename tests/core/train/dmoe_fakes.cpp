// The DMoE fakes: real LibTorch experts behind the ExpertFinder and MixtureCaller interfaces.
#include "tests/core/train/dmoe_fakes.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/tensor_codec.h"

namespace crowdtrain::train::testing {

FakeExperts::FakeExperts(const std::vector<std::string>& prefixes, const std::vector<int64_t>& grid,
                         int64_t d, int64_t inner, uint64_t seed) {
  torch::manual_seed(seed);
  int64_t points = 1;
  for (int64_t g : grid) points *= g;
  for (const std::string& prefix : prefixes) {
    for (int64_t flat = 0; flat < points; ++flat) {
      moe::ExpertCoords c(grid.size());
      int64_t rest = flat;
      for (size_t i = grid.size(); i-- > 0;) {
        c[i] = rest % grid[i];
        rest /= grid[i];
      }
      params_[moe::make_expert_uid(prefix, c)] = {
          torch::randn({inner, d}) / std::sqrt(static_cast<double>(d)), torch::randn({inner}) * 0.1,
          torch::randn({d, inner}) / std::sqrt(static_cast<double>(inner)),
          torch::randn({d}) * 0.1};
    }
  }
}

FakeExperts::~FakeExperts() = default;

at::Tensor FakeExperts::apply(const std::string& uid, const at::Tensor& x) const {
  const std::vector<at::Tensor>& p = params_.at(uid);
  namespace F = torch::nn::functional;
  return x + F::linear(torch::relu(F::linear(x, p[0], p[1])), p[2], p[3]);
}

void FakeFinder::find(std::vector<std::vector<std::vector<double>>> scores, size_t k, Done done) {
  ++calls;
  if (error) {
    rt_.schedule(latency_, [done = std::move(done), e = *error] { done(e); });
    return;
  }
  std::vector<std::vector<moe::FoundExpert>> found;
  for (const auto& points : moe::brute_force_top_k(scores, grid_, k)) {
    found.emplace_back();
    for (const moe::GridPoint& p : points) {
      found.back().push_back({{moe::make_expert_uid(prefix_, p.coords), server_}, p.score});
    }
  }
  rt_.schedule(latency_, [done = std::move(done), found = std::move(found)]() mutable {
    done(std::move(found));
  });
}

void FakeCaller::forward(const TensorData& inputs,
                         const std::vector<std::vector<moe::ExpertRef>>& chosen, Done done) {
  ++forward_calls;
  last_inputs = inputs;
  if (hang_forward) return;
  if (forward_error) {
    rt_.schedule(latency_, [done = std::move(done), e = *forward_error] { done(e); });
    return;
  }
  const torch::Tensor x = from_tensor_data(inputs).value();
  std::map<moe::ExpertRef, std::vector<int64_t>> routed;
  for (size_t s = 0; s < chosen.size(); ++s) {
    for (const moe::ExpertRef& e : chosen[s]) routed[e].push_back(static_cast<int64_t>(s));
  }
  std::vector<moe::ExpertCall> calls;
  std::vector<uint32_t> answers(chosen.size(), 0);
  for (auto& [expert, samples] : routed) {
    moe::ExpertCall call{expert, samples, std::nullopt, std::nullopt};
    if (!drop_forward.count(expert.uid)) {
      torch::NoGradGuard no_grad;
      torch::Tensor out = experts_.apply(expert.uid, x.index_select(0, torch::tensor(samples)));
      if (nan_forward.count(expert.uid)) out.fill_(std::numeric_limits<float>::quiet_NaN());
      call.output = to_tensor_data(out);
      for (int64_t s : samples) ++answers[static_cast<size_t>(s)];
    }
    calls.push_back(std::move(call));
  }
  for (size_t s = 0; s < chosen.size(); ++s) {
    if (answers[s] < std::min<size_t>(k_min, chosen[s].size())) {
      rt_.schedule(latency_, [done = std::move(done), s] {
        done(Status::error("fake caller: sample " + std::to_string(s) + " got too few answers"));
      });
      return;
    }
  }
  rt_.schedule(latency_, [done = std::move(done), calls = std::move(calls)]() mutable {
    done(std::move(calls));
  });
}

void FakeCaller::backward(const TensorData& inputs, std::vector<moe::ExpertCall> calls,
                          std::vector<TensorData> grad_outputs, Done done) {
  ++backward_calls;
  CT_CHECK(calls.size() == grad_outputs.size());
  const torch::Tensor x = from_tensor_data(inputs).value();
  for (size_t c = 0; c < calls.size(); ++c) {
    const std::string& uid = calls[c].expert.uid;
    grad_outputs_seen[uid] = grad_outputs[c];
    backward_samples[uid] = calls[c].samples;
    if (backward_error || drop_backward.count(uid)) continue;
    torch::Tensor rows = x.index_select(0, torch::tensor(calls[c].samples)).requires_grad_();
    torch::Tensor g = from_tensor_data(grad_outputs[c]).value();
    torch::Tensor gi = torch::autograd::grad({experts_.apply(uid, rows)}, {rows}, {g})[0];
    calls[c].grad_input = to_tensor_data(gi);
  }
  if (backward_error) {
    rt_.schedule(latency_, [done = std::move(done), e = *backward_error] { done(e); });
    return;
  }
  rt_.schedule(latency_, [done = std::move(done), calls = std::move(calls)]() mutable {
    done(std::move(calls));
  });
}

}  // namespace crowdtrain::train::testing
