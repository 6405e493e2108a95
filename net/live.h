// The live world's entry point: one peer process on real hosts. It runs the scenario's workload
// (the same PeerApp the simulator runs) over ZeroMQ (net/zmq_runtime.h) in wall-clock time, and
// writes the same output files as a simulated run. No ZeroMQ in this header.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "core/scenario.h"

namespace crowdtrain::net {

// The most peers one live process knows (one DEALER socket each).
constexpr size_t kMaxLivePeers = 1000;

struct LiveOptions {
  PeerId id = 0;
  std::string listen;  // e.g. "tcp://127.0.0.1:5501"; "" for a client
  // A peer that cannot be called (behind NAT; --client): open membership, no listen address
  // (ZmqRuntimeOptions::client_mode, WorkloadContext::client).
  bool client = false;
  std::map<PeerId, std::string> peers;  // a fixed peer list: id -> address (may include self)
  // Open membership (no `peers`): the addresses this peer first says hello to (address, public
  // key in secure mode); none for the first peer of a swarm. It learns every other peer's address
  // from the swarm (net/zmq_runtime.h).
  std::vector<std::pair<std::string, std::string>> initial_peers;
  // The swarm key's file (--swarm-key-file): only its holders may join an open swarm. Required in
  // secure open mode.
  std::string swarm_key_file;
  // Secure mode (--key-file): this peer's keypair file (created when missing) and every other
  // peer's public key (--peers ID=ADDR#KEY). Empty: plain mode, which says so.
  std::string key_file;
  std::map<PeerId, std::string> peer_keys;
  // This peer's Ed25519 identity file (--identity-file; created when missing), which signs the
  // DHT records it owns. Empty: a fresh identity for this process.
  std::string identity_file;
  double duration_s = 10.0;  // overrides scenario.duration_s when > 0
  std::string out_dir;       // "" = runs/<scenario>/live-<id>/
  // The run's time 0, in seconds since 1970-01-01 UTC, given alike to every peer of the run so that
  // they share one timeline (to within their clocks' skew). Unset: this process's start.
  std::optional<double> epoch_unix_s;
};

// What of `scenario` a live peer cannot honour, one line each ("key: why"): churn and faults (the
// processes' own starts and stops are the churn), the simulated network (regions, access latency,
// bandwidth, loss: the real network's apply), packet fidelity, the compute-time model (live peers
// compute for real). Printed at the start and kept in summary.json "not_honoured".
std::vector<std::string> live_not_honoured(const Scenario& scenario);

// Runs one live peer until time duration_s of the run's timeline; returns the process exit code.
// `overrides` (the --set values) only go into the reproduce line.
int run_live(const Scenario& scenario, const LiveOptions& options,
             const std::vector<std::string>& overrides = {});

// `crowdtrain live [SCENARIO] --id N --listen ADDR --peers ID=ADDR,ID=ADDR,... [--duration S]
// [--epoch UNIX_SECONDS] [--out DIR] [--seed N] [--set key=value ...]`: parses the arguments (after
// the verb), loads the scenario (default scenarios/quickstart.json), runs. Exit 2 on bad arguments
// or a broken scenario.
int live_main(const std::vector<std::string>& args);

}  // namespace crowdtrain::net
