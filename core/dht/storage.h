// A node's local DHT storage: for each key id either a plain value or a dictionary of subkeys,
// every value with its own expiration time. The later expiration wins: a store that would replace a
// value with one that expires earlier is refused (with a reason), as is a value that has already
// expired. Expired values and subkeys vanish on read (and on purge()). Sizes are bounded: value and
// subkey bytes, subkeys per key, keys in all (a full storage refuses new keys, or, as a cache,
// evicts the key that expires first). Time comes from the clock passed in. Owned by one DhtNode;
// single-threaded.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dht/dht_id.h"
#include "core/status.h"
#include "core/time.h"

namespace crowdtrain::dht {

struct ValueEntry {
  std::string value;
  Time expiration{0};
  bool operator==(const ValueEntry& o) const {
    return value == o.value && expiration == o.expiration;
  }
};

// What a key holds: a plain value, or a dictionary of subkeys (hivemind's DictionaryDHTValue).
struct DhtValue {
  bool is_dictionary = false;
  ValueEntry plain;                              // when !is_dictionary
  std::map<std::string, ValueEntry> dictionary;  // when is_dictionary; never empty in storage
  // The latest expiration of the value (of any subkey for a dictionary).
  Time expiration() const;
  // Merges `other` in, entry by entry, keeping the later expiration (a plain value and a
  // dictionary: whichever expires later). Used to combine answers from several peers.
  void merge(const DhtValue& other);
};

struct StorageLimits {
  size_t max_keys = 100000;
  size_t max_value_bytes = 64 * 1024;
  size_t max_subkey_bytes = 256;
  size_t max_subkeys_per_key = 1024;
  bool evict_when_full = false;  // a cache evicts the key expiring first instead of refusing
};

class Storage {
 public:
  using Clock = std::function<Time()>;
  Storage(StorageLimits limits, Clock clock);

  // Stores a plain value under `key`. An error says why it was refused; nothing changes then.
  Status store(const DhtId& key, std::string value, Time expiration);
  // Stores one subkey of the dictionary under `key`.
  Status store_subkey(const DhtId& key, std::string subkey, std::string value, Time expiration);
  // The unexpired value under `key`, if any. Drops what has expired first.
  std::optional<DhtValue> get(const DhtId& key);
  // The same without a copy: valid until the storage next changes; nullptr when nothing is held.
  const DhtValue* peek(const DhtId& key);
  // Drops whatever is held under `key` (an owner's record replacing a squatter's).
  void erase(const DhtId& key) { data_.erase(key); }
  // Drops every expired value and subkey; returns how many keys vanished.
  size_t purge();
  // Every unexpired (key, value), in key order (for republishing).
  std::vector<std::pair<DhtId, DhtValue>> items();
  // When `key` was last stored to (any subkey), if it is held.
  std::optional<Time> last_stored(const DhtId& key) const;

  size_t size() const { return data_.size(); }
  const StorageLimits& limits() const { return limits_; }

 private:
  struct Record {
    DhtValue value;
    Time stored_at{0};
  };
  Status check_sizes(const std::string* subkey, const std::string& value, Time expiration) const;
  // Makes room for a new key; an error when the storage is full and does not evict.
  Status make_room(const DhtId& key);
  // Drops expired parts of `it`'s record; returns false (and erases it) when nothing is left.
  bool drop_expired(std::map<DhtId, Record>::iterator it, Time now);

  StorageLimits limits_;
  Clock clock_;
  std::map<DhtId, Record> data_;
};

}  // namespace crowdtrain::dht
