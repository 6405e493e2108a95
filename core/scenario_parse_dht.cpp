// The reader of `workload.dht` (DhtWorkloadSpec): rates, sizes, the key space and the DhtNode
// knobs, each with its range. docs/scenarios.md lists every key. The check of value_bytes against
// network.max_message_bytes is in scenario.cpp with the other cross-section checks.

#include "core/scenario_parse.h"

namespace crowdtrain::scenario_detail {

namespace {

constexpr double kMaxRateHz = 1000;
constexpr double kMaxBatch = 128;             // DhtOptions::max_keys_per_request
constexpr double kMaxValueBytes = 64 * 1024;  // DhtOptions::max_value_bytes
constexpr double kMaxRetries = 100;

}  // namespace

void read_dht_workload(JsonReader& r, DhtWorkloadSpec& out) {
  r.read("store_rate_hz", out.store_rate_hz, NumberRange::closed(0, kMaxRateHz));
  r.read("get_rate_hz", out.get_rate_hz, NumberRange::closed(0, kMaxRateHz));
  r.read("batch", out.batch, NumberRange::closed(1, kMaxBatch));
  r.read("value_bytes", out.value_bytes, NumberRange::closed(1, kMaxValueBytes));
  r.read("dictionary_fraction", out.dictionary_fraction, NumberRange::fraction());
  r.read("dictionary_keys", out.dictionary_keys, NumberRange::at_least(1));
  r.read("key_space", out.key_space);
  r.read("expiration_s", out.expiration_s, NumberRange::positive());
  r.read("warmup_s", out.warmup_s, NumberRange::non_negative());
  r.read("bootstrap_spread_s", out.bootstrap_spread_s, NumberRange::non_negative());
  r.read("bootstrap_peers", out.bootstrap_peers, NumberRange::closed(1, 64));
  r.read("k", out.k, NumberRange::closed(1, 64));
  r.read("alpha", out.alpha, NumberRange::closed(1, 64));
  r.read("replicas", out.replicas, NumberRange::closed(1, 64));
  r.read("rpc_timeout_s", out.rpc_timeout_s, NumberRange::positive());
  r.read("rpc_retries", out.rpc_retries, NumberRange::closed(0, kMaxRetries));
  r.read("refresh_s", out.refresh_s, NumberRange::non_negative());
  r.read("republish_s", out.republish_s, NumberRange::non_negative());
  r.read("cache_on_lookup", out.cache_on_lookup);
}

}  // namespace crowdtrain::scenario_detail
