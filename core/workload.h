// The workload registry and factory. A workload kind (workload.kind) is a WorkloadKind: its name,
// the reader of its own options (workload.<name>), its cross-section checks, the state its peers
// share in the simulated world, the PeerApp of one peer incarnation and its summary section. The
// table of kinds is in core/workload.cpp: adding a workload is its folder plus one line there, and
// nothing in sim/, net/ or the scenario reader. Both worlds call only the functions below.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/json_path.h"
#include "core/runtime.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain {

namespace dht {
class SigningKey;
}

// State that the peers of one simulated run share — a board that measures the whole swarm, an
// oracle of what was stored, data loaded once. Each workload subclasses it; the world only holds it
// and hands it to every app (WorkloadContext::shared). The live world has none.
class WorkloadShared {
 public:
  virtual ~WorkloadShared() = default;
};

struct WorkloadContext {
  // Every peer id of the world (sim) or every known peer (live), the peer itself included.
  std::shared_ptr<const std::vector<PeerId>> peers;
  // Peers a newcomer may contact first (bootstrap); empty = any of `peers`.
  std::shared_ptr<const std::vector<PeerId>> bootstrap;
  // State all peers of one run share, from make_workload_shared (sim only; null in the live world,
  // where peers share nothing). The DHT workload keeps its oracle there: live nodes, stored keys.
  std::shared_ptr<WorkloadShared> shared;
  // `shared` as the workload's own type; null when there is none (or it is of another type).
  template <typename T>
  std::shared_ptr<T> shared_as() const {
    return std::dynamic_pointer_cast<T>(shared);
  }
  // This peer's access link as the world knows it, in Mb/s (sim: what the topology drew for it;
  // live: 0, unknown). Averaging advertises it for load balancing.
  double upload_mbps = 0.0;
  double download_mbps = 0.0;
  // A folder of this peer's own that outlives its incarnations (its disk: checkpoints a restarted
  // peer resumes from). Simulated world: <run folder>/state/peer-<id>, emptied when a run starts;
  // live world: <run folder>/state, kept across process restarts; "" when the run writes no files.
  std::string state_dir;
  // This peer's Ed25519 identity, which signs the DHT records it owns (core/dht/record_signing.h).
  // Simulated world: drawn from the run's seed and the peer's id (kept across its incarnations);
  // live world: --identity-file, or a fresh key from the OS's randomness. Null: no identity.
  std::shared_ptr<const dht::SigningKey> identity;
  // This peer cannot be called (behind NAT or a firewall; live: --client): it calls out and hears
  // the answers on its own connections, and only the peers it reached can reach it. A workload
  // runs it as a caller (its DHT node in client mode, never in anyone's routing table); one whose
  // peers must be callable refuses it (WorkloadKind::runs_as_client).
  bool client = false;
  // Whether the scenario makes a peer a client (peers.clients): nobody can call it, so it is never
  // a first contact. Null: no peer is.
  std::function<bool(PeerId)> is_client;
};

// The peers a peer contacts first to join an overlay (DHT bootstrap): context.bootstrap when the
// world gives one; else, for peer `self` > 0, peer 0 and up to count - 1 peers drawn from the lower
// ids (those present at t = 0 bootstrap in id order), less the scenario's clients; none for peer
// 0. Draws from `rng`.
std::vector<PeerId> first_contacts(const WorkloadContext& context, PeerId self, uint32_t count,
                                   Rng& rng);

// One workload kind. `read` reads its options from workload.<name> into a WorkloadOptions subclass
// kept in its folder, found with WorkloadSpec::options_of<T>(name). `make_app` is null for
// whole-world runs (transfers).
struct WorkloadKind {
  std::string name;
  std::function<std::shared_ptr<const WorkloadOptions>(JsonReader& r)> read;
  std::function<Status(const Scenario&)> check;  // after every section is read; may be null
  std::function<std::shared_ptr<WorkloadShared>(const Scenario&)> make_shared;  // may be null
  std::function<Result<std::unique_ptr<PeerApp>>(const Scenario&, Runtime&, const WorkloadContext&)>
      make_app;
  std::function<nlohmann::json(const Scenario&, const MetricsSink&)> summary;  // may be null
  // One short line on how the run is going ("accuracy 0.81 at t=60 s"), "" when nothing new; the
  // worlds print it when it changes. May be null.
  std::function<std::string(const Scenario&, const MetricsSink&)> progress;
  // The liveness goal (core/invariants.h), judged after a run with a liveness phase from its
  // "liveness.*" counters: {"goal": what must happen, "met": bool, figures...}. May be null.
  std::function<nlohmann::json(const Scenario&, const MetricsSink&)> liveness;
  // Whether a peer that cannot be called (WorkloadContext::client) can run it; make_app may still
  // refuse a role that must be callable (an expert server).
  bool runs_as_client = false;
};

// Every registered kind, in registration order; the one named `name`, or null.
const std::vector<WorkloadKind>& workload_kinds();
const WorkloadKind* find_workload_kind(const std::string& name);

// Made once per run by the simulated world, before any peer joins, and passed to every app in
// WorkloadContext::shared; null for workloads that share nothing.
std::shared_ptr<WorkloadShared> make_workload_shared(const Scenario& scenario);

// Adds the workload's derived figures (e.g. success rates) to `summary` from the run's metrics.
void add_workload_summary(const Scenario& scenario, const MetricsSink& sink,
                          nlohmann::json& summary);

// The workload's liveness verdict (WorkloadKind::liveness); {"goal": null, "met": null} for a kind
// with no goal.
nlohmann::json workload_liveness(const Scenario& scenario, const MetricsSink& sink);

// The cross-section checks of the scenario's workload kind (WorkloadKind::check).
Status check_workload(const Scenario& scenario);

// The workload's progress line (WorkloadKind::progress), "" when it has none.
std::string workload_progress(const Scenario& scenario, const MetricsSink& sink);

// Whether `kind` names a workload that runs as a PeerApp in every peer.
bool is_peer_workload(const std::string& kind);

// The app for `scenario.workload.kind` on `rt`; an error for a kind this build cannot run in a peer
// (e.g. "transfers", which is a whole-world calibration run).
Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context);

}  // namespace crowdtrain
