// The averaging experiment workload: see averaging_workload.h.
#include "core/averaging/averaging_workload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/averaging/gossip.h"

namespace crowdtrain {
namespace {

constexpr const char* kMsePrefix = "averaging_mse_r";

std::string mse_series(uint64_t rounds_done) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s%04llu", kMsePrefix,
                static_cast<unsigned long long>(rounds_done));
  return name;
}

// Distinct random cells of the M^d grid for n peers (peer p at cell p when n >= M^d, cyclically).
std::vector<uint64_t> place_peers(uint32_t n, const AveragingWorkloadSpec& a, uint64_t seed) {
  const double total_d = std::pow(static_cast<double>(a.grid_size), a.grid_dims);
  const uint64_t total = total_d > 1e18 ? uint64_t(1e18) : static_cast<uint64_t>(total_d);
  std::vector<uint64_t> cells(n);
  if (n >= total) {
    for (uint32_t p = 0; p < n; ++p) cells[p] = p % total;
    return cells;
  }
  Rng rng(derive_seed(seed, "averaging_cells"));
  if (total <= (uint64_t{1} << 22)) {
    std::vector<uint64_t> all(total);
    for (uint64_t c = 0; c < total; ++c) all[c] = c;
    for (uint32_t p = 0; p < n; ++p) {
      std::swap(all[p], all[p + rng.uniform_int(total - p)]);
      cells[p] = all[p];
    }
    return cells;
  }
  std::set<uint64_t> taken;
  for (uint32_t p = 0; p < n; ++p) {
    uint64_t c = rng.uniform_int(total);
    while (!taken.insert(c).second) c = rng.uniform_int(total);
    cells[p] = c;
  }
  return cells;
}

}  // namespace

AveragingBoard::AveragingBoard(const Scenario& s, bool local_view)
    : n_(s.peers.count), stop_below_(s.workload.averaging.stop_below_mse), local_view_(local_view) {
  const uint32_t v = s.workload.averaging.vector_size;
  Rng rng(derive_seed(s.seed, "averaging_values"));
  mean_.assign(v, 0.0);
  sources_.reserve(n_);
  for (uint32_t p = 0; p < n_; ++p) {
    std::vector<double> vals(v);
    for (uint32_t i = 0; i < v; ++i) {
      vals[i] = rng.normal();
      mean_[i] += vals[i] / n_;
    }
    sources_.push_back(std::make_shared<VectorSource>(std::move(vals)));
  }
  cells_ = place_peers(n_, s.workload.averaging, s.seed);
  curve_.push_back(mse());  // before any round (reported with the first round's end)
  if (local_view_) {
    for (uint32_t p = 0; p < n_; ++p) initial_mse_of_.push_back(mse_of(p));
  }
}

double AveragingBoard::mse() const {
  double sum = 0.0;
  for (const auto& source : sources_) {
    const std::vector<double>& vals = source->values();
    for (size_t i = 0; i < vals.size(); ++i) sum += (vals[i] - mean_[i]) * (vals[i] - mean_[i]);
  }
  return sum / (static_cast<double>(n_) * static_cast<double>(mean_.size()));
}

double AveragingBoard::mse_of(PeerId p) const {
  const std::vector<double>& vals = sources_[p]->values();
  double sum = 0.0;
  for (size_t i = 0; i < vals.size(); ++i) sum += (vals[i] - mean_[i]) * (vals[i] - mean_[i]);
  return sum / static_cast<double>(mean_.size());
}

void AveragingBoard::on_round_end(Runtime& rt, uint64_t round) {
  const PeerId p = rt.self();
  if (p >= n_) return;
  if (local_view_) {
    if (!initial_reported_) {
      initial_reported_ = true;
      rt.metrics().observe(mse_series(0), initial_mse_of_[p]);
    }
    const double e = mse_of(p);
    rt.metrics().observe(mse_series(round + 1), e);
    rt.metrics().event("averaging_round", {{"round", round + 1}, {"mse", e}});
    return;
  }
  if (!initial_reported_) {
    initial_reported_ = true;
    rt.metrics().observe(mse_series(0), curve_[0]);
  }
  // A round that some peer never reported (it was killed, or restarted into a later slot) is
  // closed once a report two rounds later arrives, with the values held then.
  while (!reports_.empty() && reports_.begin()->first + 2 <= round) {
    const uint64_t stale = reports_.begin()->first;
    const uint32_t got = reports_.begin()->second;
    reports_.erase(reports_.begin());
    rt.metrics().count("averaging_round_incomplete");
    rt.metrics().event("averaging_round_incomplete", {{"round", stale + 1}, {"reports", got}});
    close_round(rt, stale);
  }
  if (++reports_[round] < n_) return;
  reports_.erase(round);
  close_round(rt, round);
}

void AveragingBoard::close_round(Runtime& rt, uint64_t round) {
  if (round + 1 < curve_.size()) return;  // closed already
  const double e = mse();
  curve_.push_back(e);
  rt.metrics().observe(mse_series(round + 1), e);
  rt.metrics().event("averaging_round", {{"round", round + 1}, {"mse", e}});
  if (stop_below_ > 0.0 && e < stop_below_ && !stopped_) {
    stopped_ = true;
    rt.metrics().event("averaging_stop", {{"round", round + 1}, {"mse", e}});
  }
}

AdvertisedLink advertised_link(const LoadBalanceSpec& spec, const WorkloadContext& context) {
  AdvertisedLink out;
  if (spec.load_balance == "equal") return out;
  // A member moves as much as it receives (load_balancing.h), so the slower direction binds.
  const double link = context.upload_mbps > 0 && context.download_mbps > 0
                          ? std::min(context.upload_mbps, context.download_mbps)
                          : 0.0;
  out.bandwidth_mbps = spec.bandwidth_mbps > 0 ? spec.bandwidth_mbps : link;
  if (out.bandwidth_mbps > 0 && out.bandwidth_mbps < spec.client_below_mbps) {
    out.mode = AveragingMode::kClient;
  }
  return out;
}

std::shared_ptr<void> make_averaging_shared(const Scenario& scenario) {
  return std::make_shared<AveragingBoard>(scenario, /*local_view=*/false);
}

Result<std::unique_ptr<PeerApp>> make_averaging_app(const Scenario& scenario, Runtime& rt,
                                                    const WorkloadContext& context) {
  const AveragingWorkloadSpec& a = scenario.workload.averaging;
  // The live world shares nothing: each peer makes the same board from the seed, a local view.
  auto board = context.shared ? std::static_pointer_cast<AveragingBoard>(context.shared)
                              : std::make_shared<AveragingBoard>(scenario, /*local_view=*/true);
  const PeerId self = rt.self();
  if (self >= scenario.peers.count) return Status::error("averaging: peer id out of range");

  if (a.method == "gossip" || a.method == "pushsum") {
    GossipOptions g;
    g.method = a.method == "gossip" ? GossipMethod::kRing : GossipMethod::kPushSum;
    g.peers = scenario.peers.count;
    g.start_delay = from_seconds(a.bootstrap_spread_s * self / scenario.peers.count);
    g.first_round = from_seconds(a.first_round_s);
    g.round_interval = from_seconds(a.round_interval_s);
    g.exchange_window = from_seconds(a.gossip_window_s);
    g.rounds = a.rounds;
    g.failure_prob = a.failure_prob;
    return std::unique_ptr<PeerApp>(
        std::make_unique<GossipAverager>(rt, std::move(g), board->source(self), board));
  }
  AveragerOptions o;
  o.grid.group_size(a.grid_size).dims(a.grid_dims);
  o.peers = scenario.peers.count;
  o.random_groups_seed = scenario.seed;
  o.key_mode = a.method == "allreduce"       ? GroupKeyMode::kFixedMembership
               : a.method == "random_groups" ? GroupKeyMode::kRandomGroups
                                             : GroupKeyMode::kGrid;
  o.key_prefix = a.key_prefix;
  o.initial_bits = initial_bits_for_cell(board->cell(self), o.grid);
  o.start_delay = from_seconds(a.bootstrap_spread_s * self / scenario.peers.count);
  o.bootstrap = first_contacts(context, self, a.bootstrap_peers, rt.rng());
  o.first_round = from_seconds(a.first_round_s);
  o.round_interval = from_seconds(a.round_interval_s);
  o.rounds = a.rounds;
  o.failure_prob = a.failure_prob;
  const AdvertisedLink link = advertised_link(a.balance, context);
  o.bandwidth_mbps = link.bandwidth_mbps;
  o.mode = link.mode;
  uint32_t target = a.target_group_size == 0 ? a.grid_size : a.target_group_size;
  uint32_t min_size = a.min_group_size;
  if (o.key_mode == GroupKeyMode::kFixedMembership) {
    // All N at once, all or nothing: a round in which anybody is missing forms no group.
    if (scenario.peers.count > kMaxGroupSize) {
      return Status::error("averaging: method allreduce supports at most " +
                           std::to_string(kMaxGroupSize) + " peers");
    }
    target = min_size = scenario.peers.count;
    o.allreduce.all_or_nothing(true);
  }
  o.matchmaking.target_group_size(target)
      .min_group_size(min_size)
      .declare_time(from_seconds(a.declare_s))
      .timeout(from_seconds(a.matchmaking_timeout_s))
      .begin_grace(std::chrono::milliseconds(500));
  o.allreduce.timeout(from_seconds(a.allreduce_timeout_s));
  if (a.wire_params > 0) o.allreduce.payload_scale(a.wire_params * 4.0 / (a.vector_size * 8.0));
  o.dht.rpc_timeout(std::chrono::seconds(1));
  return std::unique_ptr<PeerApp>(
      std::make_unique<Averager>(rt, std::move(o), board->source(self), board));
}

nlohmann::json averaging_summary(const MetricsSink& sink) {
  nlohmann::json curve = nlohmann::json::array();
  nlohmann::json to9 = nullptr, to4 = nullptr;
  for (const std::string& name : sink.sample_names()) {
    if (name.rfind(kMsePrefix, 0) != 0) continue;
    const uint64_t r = std::stoull(name.substr(std::string(kMsePrefix).size()));
    const double e = sink.sample_mean(name);
    curve.push_back({{"round", r}, {"mse", e}});
    if (to4.is_null() && e <= 1e-4) to4 = r;
    if (to9.is_null() && e <= 1e-9) to9 = r;
  }
  return {{"mse_by_round", curve}, {"rounds_to_1e-9", to9}, {"rounds_to_1e-4", to4}};
}

}  // namespace crowdtrain
