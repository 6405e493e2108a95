// The throughput trainer peer (trainer.task "chain"): a DhtNode, one BeamSearch per layer, a
// RemoteMixture and trainers_per_peer ChainTrainers passing batches through one expert per layer
// (moe_peer.h, chain_trainer.h).

#include <memory>
#include <vector>

#include "core/moe/beam_search.h"
#include "core/moe/chain_trainer.h"
#include "core/moe/client.h"
#include "core/moe/moe_peer.h"

namespace crowdtrain::moe {

namespace {

// One expert per call: its answer or nothing, no stragglers to wait for.
MixtureCallOptions chain_call_options(const MoeClientOptions& c) {
  MixtureCallOptions m = call_options(c);
  m.k_min = m.backward_k_min = 1;
  m.timeout_after_k_min = Time(0);
  return m;
}

class ChainApp final : public MoePeer {
 public:
  ChainApp(Runtime& rt, const Scenario& s, const WorkloadContext& context,
           std::vector<int64_t> sample_shape)
      : MoePeer(rt, s, context),
        directory_(*node_),
        caller_(rt, rpc_, chain_call_options(o_.client), o_.numerics) {
    std::vector<ChainLayer> layers;
    for (uint32_t l = 0; l < o_.trainer.layers; ++l) {
      finders_.push_back(std::make_unique<BeamSearch>(rt, directory_, layer_grid(o_, l),
                                                      search_options(o_.client)));
      layers.push_back({finders_.back().get(), o_.grid_sizes});
    }
    ChainOptions co;
    co.batch = o_.chain.batch;
    co.sample_shape = std::move(sample_shape);
    co.backward = o_.chain.backward;
    co.numerics = o_.numerics;
    co.warmup = from_seconds(o_.chain.warmup_s);
    co.retry = from_seconds(o_.chain.retry_s);
    co.avoid_failed = from_seconds(o_.chain.avoid_failed_s);
    for (uint32_t t = 0; t < o_.trainer.trainers_per_peer; ++t) {
      trainers_.push_back(std::make_unique<ChainTrainer>(rt, layers, caller_, co));
    }
  }

 private:
  void on_bootstrapped() override {
    const Time start = from_seconds(o_.trainer.start_s);
    const Time delay = rt_.now() < start ? start - rt_.now() : Time(0);
    rt_.schedule(delay, [this] {
      for (auto& t : trainers_) t->run();
    });
  }

  DhtExpertDirectory directory_;
  RemoteMixture caller_;
  std::vector<std::unique_ptr<BeamSearch>> finders_;
  std::vector<std::unique_ptr<ChainTrainer>> trainers_;  // last: destroyed first
};

}  // namespace

Result<std::unique_ptr<PeerApp>> make_chain_app(const Scenario& s, Runtime& rt,
                                                const WorkloadContext& context) {
  auto info = expert_info(moe_options_of(s).expert);
  if (!info.ok()) return Status::error("moe: " + info.status().message());
  return std::unique_ptr<PeerApp>(
      std::make_unique<ChainApp>(rt, s, context, info.value().input_shape));
}

}  // namespace crowdtrain::moe
