// The averaging experiment as a workload (workload.kind "averaging", Moshpit paper's averaging
// figure): every peer runs the averaging protocol its options name (averaging_protocol.h: an
// Averager for moshpit, allreduce, allreduce_open, random_groups; a GossipAverager for gossip,
// pushsum) on a vector drawn from N(0, 1); an
// AveragingBoard, made once per run and shared by the peers of the simulated world, holds every
// peer's latest values and, when all peers have reported round r (or, if some never do — killed by
// churn —, when a report for round r+2 arrives: "averaging_round_incomplete"), records the mean
// squared error from the true mean as the sample series "averaging_mse_r<r+1>" (r0000: before any
// round) and an "averaging_round" event; once the MSE is below `stop_below_mse` peers start no more
// rounds. Peers sit at random grid cells when N < M^d. Single-threaded: the board is touched only
// from the world's loop.
//
// Live, every process makes its own board from the seed (the same values everywhere, so every peer
// knows the true mean) and only its own vector moves: the board is a local view, and the series
// "averaging_mse_r<r+1>" is then the squared error of this peer's vector after its round r (mean
// over elements), so each peer's summary.json has its own curve. A local view never stops rounds.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/averaging/averager.h"
#include "core/averaging/averaging_options.h"
#include "core/metrics.h"
#include "core/scenario.h"
#include "core/workload.h"

namespace crowdtrain {

class AveragingBoard final : public AveragingObserver, public WorkloadShared {
 public:
  // `local_view`: live (see above); else the simulated world's board of every peer.
  AveragingBoard(const Scenario& scenario, bool local_view);

  // Peer p's vector, shared with its Averager (a restarted peer resumes with what it held).
  const std::shared_ptr<VectorSource>& source(PeerId p) const { return sources_[p]; }
  uint64_t cell(PeerId p) const { return cells_[p]; }
  double mse() const;             // of the values held now, over every peer
  double mse_of(PeerId p) const;  // of peer p's values held now
  double spread_now() const;      // mean squared distance of the values from their own mean
  void on_round_end(Runtime& rt, uint64_t round) override;
  bool stop_requested() const override { return stopped_; }
  // Safety: once every member of a group has applied a complete all-reduce (nothing left out,
  // nothing timed out), each holds the weighted mean of the vectors the members started the round
  // with, to float32 rounding (averaging_group_mean_exact). Simulated world only.
  void on_allreduce_applied(Runtime& rt, const AllReduceGroup& group,
                            const AllReduceStats& stats) override;
  // Groups some of whose members have applied and others not yet (for tests).
  size_t pending_groups() const { return groups_.size(); }
  // MSE after each completed round, index 0 = before any round.
  const std::vector<double>& curve() const { return curve_; }

 private:
  void close_round(Runtime& rt, uint64_t round);
  // Safety (core/invariants.h): peer p's values are finite and inside the per-element range of
  // the starting vectors (an average of averages never leaves it).
  void check_values(Runtime& rt, PeerId p) const;
  // A group's members as they apply its average: the values each held before and after, and
  // whether every member's all-reduce was complete.
  struct GroupRecord {
    std::map<PeerId, std::vector<double>> before, after;
    bool complete = true;
    uint64_t round = 0;
  };
  void check_group_mean(Runtime& rt, const AllReduceGroup& group, const GroupRecord& record);
  // By group id, until every member has applied, or two rounds later (a member that never applies
  // its group's average: it died or timed out).
  std::map<uint64_t, GroupRecord> groups_;
  std::vector<std::vector<double>> applied_;  // per peer: its values after its last average

  uint32_t n_;
  double stop_below_;
  std::vector<std::shared_ptr<VectorSource>> sources_;
  std::vector<double> mean_;     // the true mean, per element
  std::vector<double> lo_, hi_;  // per element: the smallest and largest starting value
  std::vector<uint64_t> cells_;
  std::map<uint64_t, uint32_t> reports_;  // round -> peers that reported it
  std::vector<double> curve_;
  bool stopped_ = false;
  bool initial_reported_ = false;
  bool liveness_seen_ = false;  // a round closed in the liveness phase (core/invariants.h)
  bool local_view_ = false;
  std::vector<double> initial_mse_of_;  // local view: each peer's error before any round
};

std::shared_ptr<WorkloadShared> make_averaging_shared(const Scenario& scenario);
// peers.clients with a method whose peers call peers that never called them (gossip, push-sum,
// the fixed-membership all-reduce) is an error naming peers.clients.
Status check_averaging_clients(const Scenario& scenario);

Result<std::unique_ptr<PeerApp>> make_averaging_app(const Scenario& scenario, Runtime& rt,
                                                    const WorkloadContext& context);
// {"mse_by_round": [...], "rounds_to_1e-9": r | null, "rounds_to_1e-4": r | null} from the
// "averaging_mse_r*" sample series.
nlohmann::json averaging_summary(const MetricsSink& sink);

// The liveness goal (core/invariants.h): once the faults stop, the spread among the peers falls
// (10x over the liveness phase's rounds, or below 1e-12). Not the error from the true mean: a
// fault can move the swarm's mean for good (a group member that left mid-round takes its share).
nlohmann::json averaging_liveness(const Scenario& scenario, const MetricsSink& sink);

}  // namespace crowdtrain
