// DhtNode's knobs, in LibTorch's builder style: DhtOptions().k(20).alpha(3).replicas(5). Defaults
// follow Kademlia and hivemind (k = 20, alpha = 3, 5 replicas, caching along the lookup path).
// A plain value type.
#pragma once

#include <chrono>
#include <cstddef>

#include "core/options.h"
#include "core/time.h"

namespace crowdtrain::dht {

#define CT_DHT_OPTION(type, name, init) CT_OPTION(DhtOptions, type, name, init)

class DhtOptions {
  CT_DHT_OPTION(size_t, k, 20)                  // bucket size; also the lookup beam
  CT_DHT_OPTION(size_t, alpha, 3)               // find requests in flight per key
  CT_DHT_OPTION(size_t, max_in_flight, 12)      // find requests in flight per lookup
  CT_DHT_OPTION(size_t, replicas, 5)            // peers a value is stored at (the nearest)
  CT_DHT_OPTION(size_t, replacement_cache, 20)  // newcomers waiting per full bucket
  CT_DHT_OPTION(int, depth_modulo, 5)           // also split buckets whose depth % this != 0
  CT_DHT_OPTION(size_t, max_requests_per_lookup, 4096)
  CT_DHT_OPTION(Time, rpc_timeout, std::chrono::seconds(2))
  CT_DHT_OPTION(int, rpc_retries, 0)
  CT_DHT_OPTION(Time, blacklist_time, std::chrono::seconds(5))  // doubles per repeated failure
  CT_DHT_OPTION(Time, blacklist_max_time, std::chrono::seconds(60))
  CT_DHT_OPTION(size_t, max_blacklist, 10000)
  CT_DHT_OPTION(Time, refresh_period, std::chrono::seconds(600))    // 0: no bucket refresh
  CT_DHT_OPTION(Time, republish_period, std::chrono::seconds(300))  // 0: no republishing
  CT_DHT_OPTION(size_t, max_republish_keys, 1024)                   // per republish round
  CT_DHT_OPTION(bool, cache_on_lookup, true)  // a get stores what it found at the nearest miss
  // Kademlia's hand-off: a node met for the first time that is among the `replicas` nearest
  // known to a stored key gets that key's records (batched, at most one round per handoff_delay).
  CT_DHT_OPTION(bool, handoff, false)
  CT_DHT_OPTION(Time, handoff_delay, std::chrono::milliseconds(100))
  CT_DHT_OPTION(bool, client_mode, false)  // asks, never serves as a routing-table member
  CT_DHT_OPTION(size_t, max_keys_stored, 100000)
  CT_DHT_OPTION(size_t, max_cache_keys, 10000)
  CT_DHT_OPTION(size_t, max_value_bytes, 64 * 1024)
  CT_DHT_OPTION(size_t, max_subkey_bytes, 256)
  CT_DHT_OPTION(size_t, max_subkeys_per_key, 1024)
  CT_DHT_OPTION(size_t, max_keys_per_request, 128)           // keys per find, records per store
  CT_DHT_OPTION(size_t, max_response_value_bytes, 16 << 20)  // value bytes in one find response
};

#undef CT_DHT_OPTION

}  // namespace crowdtrain::dht
