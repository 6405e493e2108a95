// Calibration: every (size, concurrency) case runs in its own fresh simulation, once per network
// model, on the same topology and the same sender/receiver pairs. A transfer's completion time is
// the virtual time from its send (all at t = 0) to its delivery.
#include "sim/calibration.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ns3/rng-seed-manager.h>
#include <ns3/simulator.h>
#include <nlohmann/json.hpp>

#include "core/random.h"
#include "core/transfers_options.h"
#include "sim/network.h"
#include "sim/topology.h"

namespace crowdtrain::sim {
namespace {

struct CaseResult {
  std::string fidelity;
  uint64_t size = 0;
  uint32_t concurrency = 0;
  size_t transfers = 0;  // sent
  size_t completed = 0;  // delivered before the cap
  double mean_s = 0, p50_s = 0, max_s = 0;
  double wall_s = 0;
};

using Pairs = std::vector<std::pair<PeerId, PeerId>>;

// `pairs` disjoint sender -> receiver pairs from the "calibration" stream (2 x pairs <= peers).
Pairs choose_pairs(const Scenario& s) {
  std::vector<PeerId> perm(s.peers.count);
  for (PeerId p = 0; p < perm.size(); ++p) perm[p] = p;
  Rng rng(derive_seed(s.seed, "calibration"));
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng.uniform_int(i)]);
  Pairs pairs;
  for (uint32_t i = 0; i < transfers_options_of(s).pairs; ++i) {
    pairs.emplace_back(perm[(2 * i) % perm.size()], perm[(2 * i + 1) % perm.size()]);
  }
  return pairs;
}

CaseResult run_case(const Scenario& s, const Topology& topology, const Pairs& pairs,
                    const std::string& fidelity, uint64_t size, uint32_t concurrency) {
  CaseResult r{fidelity, size, concurrency};
  r.transfers = pairs.size() * concurrency;
  std::vector<double> done(r.transfers, -1.0);

  ns3::Simulator::Destroy();
  ns3::RngSeedManager::SetSeed(static_cast<uint32_t>(derive_seed(s.seed, "ns3") % 0x7FFFFFFF) + 1);
  ns3::RngSeedManager::SetRun(1);
  const uint64_t loss_seed = derive_seed(s.seed, "loss");
  auto deliver = [&](PeerId, PeerId, Message m) {
    if (m.request_id < done.size() && done[m.request_id] < 0) {
      done[m.request_id] = ns3::Simulator::Now().GetSeconds();
      if (++r.completed == r.transfers) ns3::Simulator::Stop();
    }
  };
  NetworkSpec net_spec = s.network;
  net_spec.tcp_effects = fidelity == "message+tcp";
  auto net = fidelity == "packet" ? make_packet_network(topology, net_spec, loss_seed, deliver)
                                  : make_message_network(topology, net_spec, loss_seed, deliver);
  for (PeerId p = 0; p < topology.size(); ++p) net->peer_up(p);
  ns3::Simulator::ScheduleNow([&] {
    uint64_t id = 0;
    for (const auto& [from, to] : pairs) {
      for (uint32_t k = 0; k < concurrency; ++k) {
        Message m(MsgType::kTransferRequest);
        m.request_id = id++;
        m.add_filler(kTagPayload, size);
        const uint64_t wire = m.wire_size();
        net->send(from, to, std::move(m), wire);
      }
    }
  });
  // A cap far above any plausible completion: the slowest link carrying all of a sender's bytes.
  double slowest_bps = std::numeric_limits<double>::max();
  for (PeerId p = 0; p < topology.size(); ++p) {
    slowest_bps = std::min({slowest_bps, topology.peer(p).up_bps, topology.peer(p).down_bps});
  }
  const double cap_s = 600.0 + 20.0 * concurrency * (size + 64) * 8.0 / slowest_bps;
  ns3::Simulator::Stop(ns3::Seconds(cap_s));
  const auto wall0 = std::chrono::steady_clock::now();
  ns3::Simulator::Run();
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  net.reset();
  ns3::Simulator::Destroy();

  std::vector<double> t;
  for (double d : done) {
    if (d >= 0) t.push_back(d);
  }
  if (!t.empty()) {
    std::sort(t.begin(), t.end());
    double sum = 0;
    for (double x : t) sum += x;
    r.mean_s = sum / t.size();
    r.p50_s = t[(t.size() - 1) / 2];
    r.max_s = t.back();
  }
  return r;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

Status run_calibration(const Scenario& scenario, const std::string& out_dir) {
  auto topo = Topology::build(scenario);
  if (!topo.ok()) return topo.status();
  const Topology& topology = topo.value();
  const TransfersOptions& spec = transfers_options_of(scenario);
  if (scenario.peers.count < 2 * spec.pairs) {
    return Status::error("workload.transfers.pairs: 2 x pairs must be <= peers.count");
  }
  const Pairs pairs = choose_pairs(scenario);
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Status::error(out_dir + ": cannot create: " + ec.message());

  std::vector<CaseResult> rows;
  const std::vector<std::string> kVariants = {"message", "message+tcp"};
  for (const char* fidelity : {"message", "message+tcp", "packet"}) {
    for (uint64_t size : spec.sizes_bytes) {
      for (uint32_t c : spec.concurrency) {
        rows.push_back(run_case(scenario, topology, pairs, fidelity, size, c));
        const CaseResult& r = rows.back();
        std::fprintf(stderr,
                     "[calibration] %-11s %11llu B x%-3u %zu/%zu done, mean %.4f s (%.1f s wall)\n",
                     fidelity, static_cast<unsigned long long>(size), c, r.completed, r.transfers,
                     r.mean_s, r.wall_s);
      }
    }
  }

  std::ofstream csv(out_dir + "/calibration.csv");
  csv << "fidelity,size_bytes,concurrency,transfers,completed,mean_completion_s,p50_s,max_s,wall_"
         "s\n";
  for (const auto& r : rows) {
    char line[256];
    std::snprintf(line, sizeof line, "%s,%llu,%u,%zu,%zu,%.9f,%.9f,%.9f,%.3f\n", r.fidelity.c_str(),
                  static_cast<unsigned long long>(r.size), r.concurrency, r.transfers, r.completed,
                  r.mean_s, r.p50_s, r.max_s, r.wall_s);
    csv << line;
  }
  if (!csv) return Status::error(out_dir + "/calibration.csv: write failed");

  // Comparison: each message-level variant's mean over the packet-level mean, per case.
  const size_t n = rows.size() / 3;  // rows: message block, message+tcp block, packet block
  std::ofstream cmp(out_dir + "/comparison.csv");
  cmp << "variant,size_bytes,concurrency,message_mean_s,packet_mean_s,ratio,relative_error\n";
  nlohmann::json variants = nlohmann::json::object();
  bool incomplete = false;
  for (const auto& r : rows) incomplete |= r.completed < r.transfers;
  std::printf("%-11s %12s %4s %14s %14s %8s %9s\n", "variant", "size_bytes", "conc",
              "message_mean_s", "packet_mean_s", "ratio", "rel_error");
  for (size_t v = 0; v < kVariants.size(); ++v) {
    nlohmann::json cases = nlohmann::json::array();
    std::vector<double> errors;
    size_t worst = 0;
    for (size_t i = 0; i < n; ++i) {
      const CaseResult& m = rows[v * n + i];
      const CaseResult& p = rows[2 * n + i];
      const double ratio = p.mean_s > 0 ? m.mean_s / p.mean_s : 0.0;
      const double err = std::fabs(ratio - 1.0);
      if (errors.empty() || err > errors[worst]) worst = errors.size();
      errors.push_back(err);
      char line[256];
      std::snprintf(line, sizeof line, "%s,%llu,%u,%.9f,%.9f,%.6f,%.6f\n", kVariants[v].c_str(),
                    static_cast<unsigned long long>(m.size), m.concurrency, m.mean_s, p.mean_s,
                    ratio, err);
      cmp << line;
      std::printf("%-11s %12llu %4u %14.4f %14.4f %8.3f %8.1f%%\n", kVariants[v].c_str(),
                  static_cast<unsigned long long>(m.size), m.concurrency, m.mean_s, p.mean_s, ratio,
                  100 * err);
      cases.push_back({{"size_bytes", m.size},
                       {"concurrency", m.concurrency},
                       {"message_mean_s", m.mean_s},
                       {"packet_mean_s", p.mean_s},
                       {"ratio", ratio},
                       {"relative_error", err},
                       {"completed", {{"message", m.completed}, {"packet", p.completed}}},
                       {"transfers", m.transfers}});
    }
    nlohmann::json vs = {{"cases", cases}, {"median_relative_error", median_of(errors)}};
    if (!errors.empty()) {
      vs["worst_relative_error"] = {{"value", errors[worst]},
                                    {"size_bytes", rows[worst].size},
                                    {"concurrency", rows[worst].concurrency}};
    }
    std::printf("%s vs packet: median relative error %.1f%%, worst %.1f%%\n", kVariants[v].c_str(),
                100 * median_of(errors), errors.empty() ? 0.0 : 100 * errors[worst]);
    variants[kVariants[v]] = vs;
  }
  nlohmann::json summary = {
      {"scenario", scenario.name},
      {"seed", scenario.seed},
      {"peers", scenario.peers.count},
      {"pairs", spec.pairs},
      {"variants", variants},
      {"all_completed", !incomplete},
      {"resolved_scenario", scenario.resolved},
  };
  std::ofstream(out_dir + "/summary.json") << summary.dump(2) << "\n";
  std::printf("files in %s\n", out_dir.c_str());
  if (incomplete)
    return Status::error("calibration: some transfers did not complete (see summary.json)");
  return Status::ok_status();
}

}  // namespace crowdtrain::sim
