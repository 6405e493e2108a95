// What the DHT workload stores and asks for in the live world, where peers share no oracle: a
// schedule every peer can compute for every other. Peer p's store operation n runs at
//   warmup_s + (n + phase(p)) / store_rate_hz        (on the run's shared timeline)
// and writes `batch` items, each named by (p, n, b): a plain key "live/<p>/<n>.<b>", or (a
// `dictionary_fraction` of them) the subkey "peer<p>/<n>.<b>" of one of `dictionary_keys` shared
// dictionary keys "dict/<d>"; the value names the item too. So a peer can pick an item another peer
// stored a while ago, get it, and check the answer; a get that finds nothing then means the DHT
// lost or could not reach a stored item. Every item has its own subkey, so no store is refused for
// an entry rewritten with a later expiration; a dictionary key then holds about
// peers * store_rate_hz * batch * dictionary_fraction * expiration_s / dictionary_keys subkeys,
// which must stay under DhtOptions::max_subkeys_per_key (1,024).
// Pure functions of (spec, p, n, b); no state, no runtime.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dht/dht_workload_options.h"
#include "core/dht/storage.h"
#include "core/runtime.h"

namespace crowdtrain::dht {

struct LiveItem {
  std::string key;
  std::optional<std::string> subkey;  // set: one entry of a dictionary key
  std::string value;                  // plain items: names the item, padded to value_bytes
};

class LiveKeySchedule {
 public:
  explicit LiveKeySchedule(const DhtWorkloadOptions& spec) : spec_(spec) {}

  // When peer p's store operation n is due.
  Time store_time(PeerId p, uint64_t n) const;
  // How many of p's store operations are due at or before `t` (0 when none, or stores are off).
  uint64_t ops_due(PeerId p, Time t) const;
  // Item b (< batch) of p's operation n.
  LiveItem item(PeerId p, uint64_t n, uint32_t b) const;
  // Whether `got` is a right answer for `item`: the same plain value, or a dictionary whose entry
  // under the item's subkey is the item's value.
  static bool matches(const LiveItem& item, const DhtValue& got);
  // Whether `got` holds a value in the item's place at all: a dictionary without the item's subkey
  // (its storer's entry not stored, or gone) is a miss, not a wrong value.
  static bool has_slot(const LiveItem& item, const DhtValue& got);

 private:
  double phase(PeerId p) const;
  const DhtWorkloadOptions& spec_;
};

}  // namespace crowdtrain::dht
