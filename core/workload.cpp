#include "core/workload.h"

#include <algorithm>

#include "core/averaging/averaging_options.h"
#include "core/averaging/averaging_workload.h"
#include "core/dht/dht_workload.h"
#include "core/dht/dht_workload_options.h"
#include "core/json_path.h"
#include "core/moe/moe_workload.h"
#include "core/probe.h"
#include "core/train/training_options.h"
#include "core/train/training_workload.h"
#include "core/transfers_options.h"

namespace crowdtrain {

namespace {

WorkloadKind probe_kind() {
  WorkloadKind k;
  k.name = "probe";
  k.read = read_probe_options;
  k.check = check_probe_options;
  k.make_app = [](const Scenario& s, Runtime& rt, const WorkloadContext& c) {
    return make_probe_app(rt, probe_options_of(s), c.peers);
  };
  k.summary = [](const Scenario&, const MetricsSink& m) { return probe_summary(m); };
  return k;
}

WorkloadKind transfers_kind() {  // a whole-world calibration run (sim/calibration.h), no PeerApp
  WorkloadKind k;
  k.name = "transfers";
  k.read = read_transfers_options;
  k.check = check_transfers_options;
  return k;
}

WorkloadKind dht_kind() {
  WorkloadKind k;
  k.name = "dht";
  k.read = dht::read_dht_options;
  k.check = dht::check_dht_options;
  k.make_shared = [](const Scenario& s) { return dht::make_dht_workload_shared(s.peers.count); };
  k.make_app = [](const Scenario& s, Runtime& rt, const WorkloadContext& c) {
    return dht::make_dht_workload_app(rt, dht::dht_options_of(s), c, s.peers.count);
  };
  k.summary = [](const Scenario&, const MetricsSink& m) { return dht::dht_workload_summary(m); };
  k.liveness = dht::dht_liveness;
  k.runs_as_client = true;  // a client node asks and stores, and serves nobody
  return k;
}

WorkloadKind averaging_kind() {
  WorkloadKind k;
  k.name = "averaging";
  k.read = read_averaging_options;
  k.make_shared = make_averaging_shared;
  k.make_app = make_averaging_app;
  k.check = check_averaging_clients;
  k.summary = [](const Scenario&, const MetricsSink& m) { return averaging_summary(m); };
  k.liveness = averaging_liveness;
  k.runs_as_client = true;  // the methods that meet through the DHT (the rest refuse a client)
  return k;
}

WorkloadKind training_kind() {
  WorkloadKind k;
  k.name = "training";
  k.read = train::read_training_options;
  k.make_shared = train::make_training_shared;
  k.make_app = train::make_training_app;
  k.summary = train::training_summary;
  k.liveness = train::training_liveness;
  k.check = train::check_training_clients;
  k.runs_as_client = true;  // Moshpit SGD by a method that meets through the DHT; collaborative
  return k;
}

// The one table of workload kinds: a new kind is one line here (its folder has the rest).
std::vector<WorkloadKind> registered_kinds() {
  return {probe_kind(),     transfers_kind(), dht_kind(),
          averaging_kind(), training_kind(),  moe::moe_workload_kind()};
}

}  // namespace

const std::vector<WorkloadKind>& workload_kinds() {
  static const std::vector<WorkloadKind> kinds = registered_kinds();
  return kinds;
}

const WorkloadKind* find_workload_kind(const std::string& name) {
  for (const auto& k : workload_kinds()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool is_peer_workload(const std::string& kind) {
  const WorkloadKind* k = find_workload_kind(kind);
  return k != nullptr && k->make_app != nullptr;
}

Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context) {
  const std::string& kind = scenario.workload.kind;
  const WorkloadKind* k = find_workload_kind(kind);
  if (k == nullptr || !k->make_app) {
    return Status::error("workload.kind: '" + kind + "' does not run as a peer workload");
  }
  if (context.client && !k->runs_as_client) {
    return Status::error("workload.kind: '" + kind +
                         "' cannot run on a client peer (one that cannot be called): its peers "
                         "call each other");
  }
  return k->make_app(scenario, rt, context);
}

std::shared_ptr<WorkloadShared> make_workload_shared(const Scenario& scenario) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  return k != nullptr && k->make_shared ? k->make_shared(scenario) : nullptr;
}

void add_workload_summary(const Scenario& scenario, const MetricsSink& sink,
                          nlohmann::json& summary) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  if (k != nullptr && k->summary) summary[k->name] = k->summary(scenario, sink);
}

std::string workload_progress(const Scenario& scenario, const MetricsSink& sink) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  return k != nullptr && k->progress ? k->progress(scenario, sink) : std::string();
}

nlohmann::json workload_liveness(const Scenario& scenario, const MetricsSink& sink) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  if (k != nullptr && k->liveness) return k->liveness(scenario, sink);
  return {{"goal", nullptr}, {"met", nullptr}};
}

Status check_workload(const Scenario& scenario) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  if (k != nullptr && scenario.peers.has_clients() && !k->runs_as_client) {
    return json_error(
        "peers.clients",
        "workload.kind \"" + k->name +
            "\" cannot run on client peers (ones that cannot be called): its "
            "peers call each other; the dht, averaging, training and moe workloads can");
  }
  return k != nullptr && k->check ? k->check(scenario) : Status();
}

std::vector<PeerId> first_contacts(const WorkloadContext& context, PeerId self, uint32_t count,
                                   Rng& rng) {
  if (context.bootstrap && !context.bootstrap->empty()) return *context.bootstrap;
  std::vector<PeerId> out;
  if (self == 0) return out;
  out.push_back(0);
  for (uint32_t i = 1; i < count && i < self; ++i) {
    out.push_back(static_cast<PeerId>(rng.uniform_int(self)));
  }
  if (context.is_client) {  // drawn as before, so that a run without clients draws the same
    out.erase(std::remove_if(out.begin(), out.end(), context.is_client), out.end());
  }
  return out;
}

}  // namespace crowdtrain
