// State download messages for Moshpit SGD joiners: see state_transfer.h.
#include "core/train/state_transfer.h"

#include <torch/torch.h>

#include <vector>

#include "core/sha256.h"
#include "core/tensor_codec.h"

namespace crowdtrain::train {

std::string state_digest(const at::Tensor& flat) {
  const torch::Tensor t = flat.to(torch::kFloat32).contiguous();
  return sha256_hex(std::string_view(static_cast<const char*>(t.data_ptr()),
                                     static_cast<size_t>(t.numel()) * sizeof(float)));
}

bool holds_installed_state(const LocalTrainer& trainer, const InstalledState& installed) {
  return state_digest(trainer.parameters()) == installed.params_digest &&
         (installed.optimizer == 0 ||
          state_digest(trainer.optimizer_state()) == installed.stats_digest);
}

Message make_state_request(bool want_optimizer) {
  Message m(MsgType::kTrainStateRequest);
  m.add_u64(kTagStateWantOptimizer, want_optimizer ? 1 : 0);
  return m;
}

Message make_state_response(const LocalTrainer& trainer, bool with_optimizer) {
  Message m(MsgType::kTrainStateResponse);
  const torch::Tensor params = trainer.parameters().contiguous();
  const torch::Tensor stats =
      with_optimizer ? trainer.optimizer_state().contiguous() : torch::empty({0}, torch::kFloat32);
  m.add_u64(kTagStateParams, static_cast<uint64_t>(params.numel()));
  m.add_u64(kTagStateOptimizer, static_cast<uint64_t>(stats.numel()));
  m.add_i64(kTagStateAdamStep, trainer.adam_step());
  m.add_i64(kTagStateSteps, trainer.steps_done());
  m.add_bytes(kTagStateDigest, state_digest(params));
  m.add_bytes(kTagStateStatsDigest, state_digest(stats));
  for (const torch::Tensor* t : {&params, &stats}) {
    for (int64_t begin = 0; begin < t->numel(); begin += kStateChunkElements) {
      const int64_t n = std::min(kStateChunkElements, t->numel() - begin);
      m.add_tensor(kTagStateChunk, to_tensor_data(t->narrow(0, begin, n)));
    }
  }
  return m;
}

Result<InstalledState> install_state(const Message& response, LocalTrainer& trainer,
                                     bool with_optimizer) {
  if (response.type != MsgType::kTrainStateResponse) {
    return Status::error("state: not a state response");
  }
  if (auto why = response.bytes(kTagError); why.ok()) {
    return Status::error("state: the server refused: " + why.value());
  }
  auto params = response.u64(kTagStateParams);
  auto stats = response.u64(kTagStateOptimizer);
  auto adam_step = response.i64(kTagStateAdamStep);
  auto steps = response.i64(kTagStateSteps);
  if (!params.ok()) return Status::error("state: " + params.status().message());
  if (!stats.ok()) return Status::error("state: " + stats.status().message());
  if (!adam_step.ok()) return Status::error("state: " + adam_step.status().message());
  if (!steps.ok()) return Status::error("state: " + steps.status().message());
  auto digest = response.bytes(kTagStateDigest);
  auto stats_digest = response.bytes(kTagStateStatsDigest);
  if (!digest.ok()) return Status::error("state: " + digest.status().message());
  if (!stats_digest.ok()) return Status::error("state: " + stats_digest.status().message());
  const int64_t want_params = trainer.num_parameters();
  if (static_cast<int64_t>(*params) != want_params) {
    return Status::error("state: " + std::to_string(*params) + " parameters, the model has " +
                         std::to_string(want_params));
  }
  const int64_t want_stats = with_optimizer ? trainer.optimizer_state().numel() : 0;
  if (with_optimizer && static_cast<int64_t>(*stats) != want_stats) {
    return Status::error("state: " + std::to_string(*stats) + " optimizer statistics, expected " +
                         std::to_string(want_stats));
  }
  if (*adam_step < 0) return Status::error("state: negative Adam step");
  const int64_t total = want_params + static_cast<int64_t>(*stats);
  std::vector<torch::Tensor> chunks;
  int64_t got = 0;
  for (const Field* f : response.all(kTagStateChunk)) {
    if (f->kind() != FieldKind::kTensor) return Status::error("state: a chunk is not a tensor");
    const TensorData& d = std::get<TensorData>(f->value);
    if (d.dtype != DType::kFloat32 || d.shape.size() != 1) {
      return Status::error("state: chunks must be 1-D float32");
    }
    if (d.numel() <= 0 || d.numel() > kStateChunkElements) {
      return Status::error("state: chunk of " + std::to_string(d.numel()) + " elements (limit " +
                           std::to_string(kStateChunkElements) + ")");
    }
    if (got + d.numel() > total) return Status::error("state: more elements than declared");
    auto t = from_tensor_data(d);
    if (!t.ok()) return Status::error("state: " + t.status().message());
    if (!torch::isfinite(t.value()).all().item<bool>()) {
      return Status::error("state: non-finite values");
    }
    got += d.numel();
    chunks.push_back(t.value());
  }
  if (got != total) {
    return Status::error("state: " + std::to_string(got) + " elements, declared " +
                         std::to_string(total));
  }
  const torch::Tensor flat =
      chunks.empty() ? torch::empty({0}, torch::kFloat32) : torch::cat(chunks);
  const torch::Tensor p = flat.narrow(0, 0, want_params).clone();
  if (state_digest(p) != *digest ||
      state_digest(flat.narrow(0, want_params, static_cast<int64_t>(*stats))) != *stats_digest) {
    return Status::error("state: the values do not hash to the digest sent (corrupted in transit)");
  }
  // Everything is checked; now install (set_parameters cannot fail for the right size).
  Status s = trainer.set_parameters(p);
  if (!s.ok()) return Status::error("state: " + s.message());
  if (with_optimizer && want_stats > 0) {
    s = trainer.set_optimizer_state(flat.narrow(0, want_params, want_stats).clone(), *adam_step);
    if (!s.ok()) return Status::error("state: " + s.message());
  }
  // `optimizer`: the statistics installed (none when they were not asked for).
  return InstalledState{want_params, with_optimizer ? want_stats : 0, *steps, *digest,
                        *stats_digest};
}

}  // namespace crowdtrain::train
