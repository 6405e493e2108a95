// The options of the DHT workload (workload.kind "dht", core/dht/dht_workload.h), read from
// workload.dht by read_dht_options() with errors that name the JSON path; docs/scenarios.md lists
// every key. Rates are per live peer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/json_path.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain::dht {

// Which keys the gets ask for. kOracle: keys drawn from the simulated world's record of successful
// stores (DhtWorkloadShared), so every get is of a key that was stored. kSchedule: every peer
// stores on a schedule all peers can compute (core/dht/dht_live_keys.h) and gets items other peers'
// schedules say were stored a while ago, checking the values; it needs no oracle, so it is the
// one a live run can use, and it runs in the simulator too.
enum class DhtKeys : uint8_t { kOracle = 0, kSchedule = 1 };
const std::vector<std::pair<std::string, DhtKeys>>& dht_keys_names();

struct DhtWorkloadOptions final : WorkloadOptions {
  DhtKeys keys = DhtKeys::kOracle;
  double store_rate_hz = 1.0 / 60;  // store operations per second (Poisson)
  double get_rate_hz = 1.0 / 60;    // get operations per second (Poisson), of keys stored before
  uint32_t batch = 1;               // keys per store / get call (store_many / get_many)
  uint64_t value_bytes = 64;
  double dictionary_fraction = 0.0;  // share of stores that write one subkey of a dictionary key
  uint32_t dictionary_keys = 64;     // dictionary keys shared by all peers; subkey = the peer
  uint64_t key_space = 0;            // plain keys drawn from this many names; 0 = a fresh key each
  double expiration_s = 3600;        // a value expires this long after it is stored
  double warmup_s = 60;              // no store or get before this simulated time
  double bootstrap_spread_s = 20;    // peers present at t = 0 bootstrap spread over this long
  uint32_t bootstrap_peers = 3;      // live peers a newcomer pings first
  // The DhtNode's knobs (core/dht/node.h).
  uint32_t k = 20;
  uint32_t alpha = 3;
  uint32_t replicas = 5;
  double rpc_timeout_s = 2;
  int rpc_retries = 0;
  double refresh_s = 600;    // idle bucket refresh period (0 = none)
  double republish_s = 300;  // republish period (0 = none)
  bool cache_on_lookup = true;
  // Kademlia's hand-off (DhtOptions::handoff): a node met for the first time that is among the
  // `replicas` nearest known to a held key gets its records, repairing placement after joins.
  bool handoff = false;
};

// The reader of workload.dht (WorkloadKind::read).
std::shared_ptr<const WorkloadOptions> read_dht_options(JsonReader& r);
// The checks against other sections: value_bytes fits in network.max_message_bytes.
Status check_dht_options(const Scenario& s);
// The scenario's workload.dht, read or default.
const DhtWorkloadOptions& dht_options_of(const Scenario& s);

}  // namespace crowdtrain::dht
