// The reader of workload.dht (DhtWorkloadOptions): rates, sizes, the key space and the DhtNode
// knobs, each with its range. docs/scenarios.md lists every key; keep it in step.
#include "core/dht/dht_workload_options.h"

#include <string>

namespace crowdtrain::dht {

namespace {

constexpr double kMaxRateHz = 1000;
constexpr double kMaxBatch = 128;             // DhtOptions::max_keys_per_request
constexpr double kMaxValueBytes = 64 * 1024;  // DhtOptions::max_value_bytes
constexpr double kMaxRetries = 100;

}  // namespace

const std::vector<std::pair<std::string, DhtKeys>>& dht_keys_names() {
  static const std::vector<std::pair<std::string, DhtKeys>> names = {
      {"oracle", DhtKeys::kOracle}, {"schedule", DhtKeys::kSchedule}};
  return names;
}

std::shared_ptr<const WorkloadOptions> read_dht_options(JsonReader& r) {
  auto o = std::make_shared<DhtWorkloadOptions>();
  r.read_enum("keys", o->keys, dht_keys_names());
  r.read("store_rate_hz", o->store_rate_hz, NumberRange::closed(0, kMaxRateHz));
  r.read("get_rate_hz", o->get_rate_hz, NumberRange::closed(0, kMaxRateHz));
  r.read("batch", o->batch, NumberRange::closed(1, kMaxBatch));
  r.read("value_bytes", o->value_bytes, NumberRange::closed(1, kMaxValueBytes));
  r.read("dictionary_fraction", o->dictionary_fraction, NumberRange::fraction());
  r.read("dictionary_keys", o->dictionary_keys, NumberRange::at_least(1));
  r.read("key_space", o->key_space);
  r.read("expiration_s", o->expiration_s, NumberRange::positive());
  r.read("warmup_s", o->warmup_s, NumberRange::non_negative());
  r.read("bootstrap_spread_s", o->bootstrap_spread_s, NumberRange::non_negative());
  r.read("bootstrap_peers", o->bootstrap_peers, NumberRange::closed(1, 64));
  r.read("k", o->k, NumberRange::closed(1, 64));
  r.read("alpha", o->alpha, NumberRange::closed(1, 64));
  r.read("replicas", o->replicas, NumberRange::closed(1, 64));
  r.read("rpc_timeout_s", o->rpc_timeout_s, NumberRange::positive());
  r.read("rpc_retries", o->rpc_retries, NumberRange::closed(0, kMaxRetries));
  r.read("refresh_s", o->refresh_s, NumberRange::non_negative());
  r.read("republish_s", o->republish_s, NumberRange::non_negative());
  r.read("cache_on_lookup", o->cache_on_lookup);
  r.read("handoff", o->handoff);
  return o;
}

Status check_dht_options(const Scenario& s) {
  return check_fits_in_message(s, "workload.dht.value_bytes", dht_options_of(s).value_bytes);
}

const DhtWorkloadOptions& dht_options_of(const Scenario& s) {
  return s.workload.options_of<DhtWorkloadOptions>("dht");
}

}  // namespace crowdtrain::dht
