// The averaging experiment workload: see averaging_workload.h.
#include "core/averaging/averaging_workload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <set>

#include "core/averaging/averaging_protocol.h"
#include "core/invariants.h"
#include "core/json_path.h"

namespace crowdtrain {
namespace {

constexpr const char* kMsePrefix = "averaging_mse_r";
constexpr const char* kSpreadPrefix = "averaging_spread_r";
constexpr const char* kLivenessFirstSpread = "liveness.averaging_first_spread";

std::string series(const char* prefix, uint64_t rounds_done) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s%04llu", prefix,
                static_cast<unsigned long long>(rounds_done));
  return name;
}

std::string mse_series(uint64_t rounds_done) { return series(kMsePrefix, rounds_done); }

// Distinct random cells of the M^d grid for n peers (peer p at cell p when n >= M^d, cyclically).
std::vector<uint64_t> place_peers(uint32_t n, const GroupAveragingOptions& a, uint64_t seed) {
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
    : n_(s.peers.count),
      stop_below_(averaging_options_of(s).stop_below_mse),
      local_view_(local_view) {
  const uint32_t v = averaging_options_of(s).vector_size;
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
  for (const auto& source : sources_) applied_.push_back(source->values());
  lo_.assign(v, INFINITY);
  hi_.assign(v, -INFINITY);
  for (const auto& source : sources_) {
    for (uint32_t i = 0; i < v; ++i) {
      lo_[i] = std::min(lo_[i], source->values()[i]);
      hi_[i] = std::max(hi_[i], source->values()[i]);
    }
  }
  cells_ = place_peers(n_, averaging_options_of(s).group, s.seed);
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

double AveragingBoard::spread_now() const {
  const size_t v = mean_.size();
  std::vector<double> now(v, 0.0);
  for (const auto& source : sources_) {
    for (size_t i = 0; i < v; ++i) now[i] += source->values()[i] / n_;
  }
  double sum = 0.0;
  for (const auto& source : sources_) {
    for (size_t i = 0; i < v; ++i) {
      const double d = source->values()[i] - now[i];
      sum += d * d;
    }
  }
  return sum / (static_cast<double>(n_) * static_cast<double>(v));
}

double AveragingBoard::mse_of(PeerId p) const {
  const std::vector<double>& vals = sources_[p]->values();
  double sum = 0.0;
  for (size_t i = 0; i < vals.size(); ++i) sum += (vals[i] - mean_[i]) * (vals[i] - mean_[i]);
  return sum / static_cast<double>(mean_.size());
}

void AveragingBoard::check_values(Runtime& rt, PeerId p) const {
  const std::vector<double>& vals = sources_[p]->values();
  size_t bad = vals.size();
  bool finite = true;
  for (size_t i = 0; i < vals.size() && bad == vals.size(); ++i) {
    finite = std::isfinite(vals[i]);
    // Float32 on the wire: a mean may land a rounding error outside the hull.
    const double tol = 1e-5 * (hi_[i] - lo_[i]) + 1e-12;
    if (!finite || vals[i] < lo_[i] - tol || vals[i] > hi_[i] + tol) bad = i;
  }
  if (!check_invariant(rt.metrics(), finite, "averaging_finite", [&] {
        return "element " + std::to_string(bad) + " is " + std::to_string(vals[bad]);
      })) {
    return;
  }
  check_invariant(rt.metrics(), bad == vals.size(), "averaging_convex", [&] {
    return "element " + std::to_string(bad) + " is " + std::to_string(vals[bad]) +
           ", outside every starting vector's range [" + std::to_string(lo_[bad]) + ", " +
           std::to_string(hi_[bad]) + "]";
  });
}

void AveragingBoard::on_allreduce_applied(Runtime& rt, const AllReduceGroup& group,
                                          const AllReduceStats& stats) {
  const PeerId p = rt.self();
  if (local_view_ || p >= n_) return;
  GroupRecord& record = groups_[group.group_id];
  record.round = group.round;
  record.before[p] = applied_[p];
  record.after[p] = sources_[p]->values();
  applied_[p] = sources_[p]->values();
  record.complete = record.complete && stats.elements_local == 0 && !stats.timed_out &&
                    stats.senders_left_out.empty() && stats.reducers_failed.empty();
  if (record.after.size() < group.members.size()) return;  // more members to come
  if (record.complete) check_group_mean(rt, group, record);
  groups_.erase(group.group_id);
}

// The weighted mean of what the contributing members held before, against what each holds now.
void AveragingBoard::check_group_mean(Runtime& rt, const AllReduceGroup& group,
                                      const GroupRecord& record) {
  const size_t v = mean_.size();
  std::vector<double> mean(v, 0.0);
  double weights = 0.0;
  for (const GroupMember& m : group.members) {
    auto it = record.before.find(m.peer);
    if (m.mode == AveragingMode::kAux || it == record.before.end()) continue;
    for (size_t i = 0; i < v; ++i) mean[i] += m.weight * it->second[i];
    weights += m.weight;
  }
  if (weights <= 0.0) return;
  for (const auto& entry : record.after) {
    const PeerId peer = entry.first;
    const std::vector<double>& values = entry.second;
    size_t bad = v;
    for (size_t i = 0; i < v && bad == v; ++i) {
      const double want = mean[i] / weights;
      // Float32 on the wire and in the reducers' sums.
      if (std::abs(values[i] - want) > 1e-5 * (std::abs(want) + hi_[i] - lo_[i]) + 1e-9) bad = i;
    }
    check_invariant(rt.metrics(), bad == v, "averaging_group_mean_exact", [&] {
      return "group " + std::to_string(group.group_id) + ": peer " + std::to_string(peer) +
             " element " + std::to_string(bad) + " is " + std::to_string(values[bad]) +
             ", the members' mean " + std::to_string(mean[bad] / weights);
    });
  }
}

void AveragingBoard::on_round_end(Runtime& rt, uint64_t round) {
  const PeerId p = rt.self();
  if (p >= n_) return;
  check_values(rt, p);
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
  for (auto it = groups_.begin(); it != groups_.end();) {
    it = it->second.round + 2 < round ? groups_.erase(it) : std::next(it);
  }
  const double e = mse();
  curve_.push_back(e);
  rt.metrics().observe(mse_series(round + 1), e);
  rt.metrics().count("averaging_rounds_closed");
  // The spread among the peers (not from the true mean: faults may move the swarm's mean, which
  // averaging never brings back), what the liveness goal watches.
  const double spread = spread_now();
  rt.metrics().observe(series(kSpreadPrefix, round + 1), spread);
  MetricsSink& sink = rt.metrics().sink();
  if (sink.has_liveness() && sink.in_liveness(rt.now()) && !liveness_seen_) {
    liveness_seen_ = true;  // the spread when the liveness phase began (its first round's)
    rt.metrics().observe(kLivenessFirstSpread, spread);
  }
  rt.metrics().event("averaging_round", {{"round", round + 1}, {"mse", e}});
  if (stop_below_ > 0.0 && e < stop_below_ && !stopped_) {
    stopped_ = true;
    rt.metrics().event("averaging_stop", {{"round", round + 1}, {"mse", e}});
  }
}

Status check_averaging_clients(const Scenario& scenario) {
  if (!scenario.peers.has_clients()) return Status();
  const AveragingMethod m = averaging_options_of(scenario).group.method;
  if (!method_takes_clients(m)) {
    return json_error("peers.clients",
                      "workload.averaging.method \"" + averaging_method_name(m) +
                          "\" has peers call peers that never called them: clients (which "
                          "nobody can call) need a method that meets through the DHT "
                          "(moshpit, allreduce_open, random_groups)");
  }
  return Status();
}

std::shared_ptr<WorkloadShared> make_averaging_shared(const Scenario& scenario) {
  return std::make_shared<AveragingBoard>(scenario, /*local_view=*/false);
}

Result<std::unique_ptr<PeerApp>> make_averaging_app(const Scenario& scenario, Runtime& rt,
                                                    const WorkloadContext& context) {
  const AveragingWorkloadOptions& a = averaging_options_of(scenario);
  // The live world shares nothing: each peer makes the same board from the seed, a local view.
  auto board = context.shared ? context.shared_as<AveragingBoard>()
                              : std::make_shared<AveragingBoard>(scenario, /*local_view=*/true);
  const PeerId self = rt.self();
  const uint32_t n = scenario.peers.count;
  if (self >= n) return Status::error("averaging: peer id out of range");
  AveragingPeerPlan plan;
  plan.workload = "averaging";
  plan.peers = n;
  plan.seed = scenario.seed;
  plan.key_prefix = a.key_prefix;
  plan.cell = board->cell(self);
  plan.start_delay = from_seconds(a.group.bootstrap_spread_s * self / n);
  plan.bootstrap = [&] { return first_contacts(context, self, a.group.bootstrap_peers, rt.rng()); };
  plan.rounds = a.rounds;
  plan.failure_prob = a.failure_prob;
  plan.link = advertised_link(a.group.balance, context);
  plan.client = context.client;
  if (a.wire_params > 0) plan.payload_scale = a.wire_params * 4.0 / (a.vector_size * 8.0);
  auto protocol = averaging_protocol(rt, a.group, plan);
  if (!protocol.ok()) return protocol.status();
  return protocol.value()(board->source(self), board);
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

nlohmann::json averaging_liveness(const Scenario& s, const MetricsSink& sink) {
  // The last round's spread and error from the true mean: the series of the highest round
  // (sample_names() is sorted, the rounds zero-padded).
  double last = NAN, last_mse = NAN;
  for (const std::string& name : sink.sample_names()) {
    if (name.rfind(kSpreadPrefix, 0) == 0) last = sink.sample_mean(name);
    if (name.rfind(kMsePrefix, 0) == 0) last_mse = sink.sample_mean(name);
  }
  const double first = sink.sample_mean(kLivenessFirstSpread);
  const int64_t rounds = sink.counter(liveness_counter("averaging_rounds_closed"));
  // Float32 on the wire leaves a spread near 1e-15; 1e-12 is well above that floor.
  const bool fell = rounds > 0 && !std::isnan(first) && last <= std::max(0.1 * first, 1e-12);
  const auto num = [](double v) {
    return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  // A run that reached stop_below_mse starts no more rounds: that is the goal met early.
  const double stop_below = averaging_options_of(s).stop_below_mse;
  const bool stopped = stop_below > 0.0 && last_mse < stop_below;
  return {{"goal",
           "the spread among the peers (mean squared distance from their own mean) falls 10x "
           "over the liveness phase's rounds, or below 1e-12; or the run stopped at "
           "stop_below_mse"},
          {"met", fell || stopped},
          {"rounds", rounds},
          {"first_spread", num(first)},
          {"last_spread", num(last)}};
}

}  // namespace crowdtrain
