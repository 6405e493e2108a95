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

MixtureCallOptions chain_call_options(const MoeClientOptions& c) {
  MixtureCallOptions m;
  m.k_min = 1;
  m.forward_timeout = from_seconds(c.forward_timeout_s);
  m.timeout_after_k_min = Time(0);
  m.backward_k_min = 1;
  m.backward_timeout = from_seconds(c.backward_timeout_s);
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
      finders_.push_back(std::make_unique<BeamSearch>(
          rt, directory_, layer_grid(o_, l),
          BeamSearchOptions()
              .beam_size(o_.client.beam_size)
              .timeout(from_seconds(o_.client.search_timeout_s))
              .negative_cache(from_seconds(o_.client.negative_cache_s))));
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
