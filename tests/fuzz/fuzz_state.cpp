// libFuzzer target: Moshpit SGD's state download (core/train/state_transfer.h), what a joiner reads
// from a live peer: a message, then install_state() into a small trainer, with and without the
// optimizer statistics. A refused state leaves the trainer exactly as it was (parameters and
// optimizer statistics, bit for bit); an installed one is finite and of the trainer's sizes.
#include <cstddef>
#include <cstdint>
#include <memory>

#include <torch/torch.h>

#include "core/message.h"
#include "core/train/local_trainer.h"
#include "core/train/models.h"
#include "core/train/state_transfer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace crowdtrain;
using namespace crowdtrain::train;

// A joiner: 6 inputs, 8 hidden, 3 classes, SGD with momentum (the statistics are the momentum
// buffers, present after one step).
std::unique_ptr<LocalTrainer> make_joiner() {
  torch::manual_seed(3);
  Dataset data(torch::randn({16, 6}), torch::randint(0, 3, {16}, torch::kInt64), 3);
  auto t = std::make_unique<LocalTrainer>(
      make_model(ModelOptions().input_dim(6).hidden(8).depth(1).num_classes(3), 1), std::move(data),
      LocalTrainerOptions().optimizer(OptimizerKind::kSgd).lr(0.1).momentum(0.9).seed(1));
  t->step_now();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<LocalTrainer> joiner = make_joiner();
  if (size < 1) return 0;
  auto m = decode_copy(data + 1, size - 1);
  if (!m.ok()) return 0;
  const at::Tensor params = joiner->parameters().clone();
  const at::Tensor stats = joiner->optimizer_state().clone();
  auto r = install_state(m.value(), *joiner, /*with_optimizer=*/(data[0] & 1) != 0);
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    FUZZ_CHECK(torch::equal(joiner->parameters(), params));
    FUZZ_CHECK(torch::equal(joiner->optimizer_state(), stats));
    return 0;
  }
  FUZZ_CHECK(r->params == joiner->num_parameters());
  FUZZ_CHECK(torch::isfinite(joiner->parameters()).all().item<bool>());
  // Back to the joiner's own state for the next input (a persistent trainer keeps the run fast).
  FUZZ_CHECK(joiner->set_parameters(params).ok());
  FUZZ_CHECK(joiner->set_optimizer_state(stats, 0).ok());
  return 0;
}
