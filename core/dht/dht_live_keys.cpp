// LiveKeySchedule: see dht_live_keys.h.
#include "core/dht/dht_live_keys.h"

#include <cmath>

#include "core/random.h"

namespace crowdtrain::dht {
namespace {

// Streams of the schedule: fixed, so that every peer of a run draws the same phases and names
// whatever its own seed.
constexpr uint64_t kScheduleSeed = 0x6c6976652d646874ULL;  // "live-dht"

}  // namespace

double LiveKeySchedule::phase(PeerId p) const {
  Rng rng(derive_seed(kScheduleSeed, "dht-live-phase", p));
  return rng.uniform(0.0, 1.0);
}

Time LiveKeySchedule::store_time(PeerId p, uint64_t n) const {
  if (!(spec_.store_rate_hz > 0.0)) return Time::max();
  return from_seconds(spec_.warmup_s + (static_cast<double>(n) + phase(p)) / spec_.store_rate_hz);
}

uint64_t LiveKeySchedule::ops_due(PeerId p, Time t) const {
  if (!(spec_.store_rate_hz > 0.0)) return 0;
  const double x = (to_seconds(t) - spec_.warmup_s) * spec_.store_rate_hz - phase(p);
  uint64_t n = x > 0.0 ? static_cast<uint64_t>(std::floor(x)) + 1 : 0;
  // Exact at the edges (the estimate can be off by one in floating point): operation n-1 is due
  // by t, operation n is not.
  while (n > 0 && store_time(p, n - 1) > t) --n;
  while (store_time(p, n) <= t) ++n;
  return n;
}

LiveItem LiveKeySchedule::item(PeerId p, uint64_t n, uint32_t b) const {
  const uint64_t index = n * spec_.batch + b;
  Rng rng(derive_seed(kScheduleSeed, "dht-live-item", p, index));
  LiveItem it;
  const bool dict = spec_.dictionary_fraction > 0.0 && spec_.dictionary_keys > 0 &&
                    rng.bernoulli(spec_.dictionary_fraction);
  const std::string name = std::to_string(p) + "/" + std::to_string(n) + "." + std::to_string(b);
  if (dict) {
    it.key = "dict/" + std::to_string(rng.uniform_int(spec_.dictionary_keys));
    it.subkey = "peer" + name;
  } else {
    it.key = "live/" + name;
  }
  it.value = "v" + name;
  if (it.value.size() < spec_.value_bytes) it.value.resize(spec_.value_bytes, 'v');
  return it;
}

bool LiveKeySchedule::has_slot(const LiveItem& item, const DhtValue& got) {
  return !item.subkey || !got.is_dictionary || got.dictionary.count(*item.subkey) > 0;
}

bool LiveKeySchedule::matches(const LiveItem& item, const DhtValue& got) {
  if (!item.subkey) return !got.is_dictionary && got.plain.value == item.value;
  if (!got.is_dictionary) return false;
  auto it = got.dictionary.find(*item.subkey);
  return it != got.dictionary.end() && it->second.value == item.value;
}

}  // namespace crowdtrain::dht
