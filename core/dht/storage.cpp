#include "core/dht/storage.h"

namespace crowdtrain::dht {
namespace {

std::string ms(Time t) { return std::to_string(to_millis(t)) + " ms"; }

}  // namespace

Time DhtValue::expiration() const {
  if (!is_dictionary) return plain.expiration;
  Time latest{INT64_MIN};
  for (const auto& [sub, e] : dictionary) latest = std::max(latest, e.expiration);
  return latest;
}

void DhtValue::merge(const DhtValue& other) {
  if (is_dictionary && other.is_dictionary) {
    for (const auto& [sub, e] : other.dictionary) {
      auto it = dictionary.find(sub);
      if (it == dictionary.end() || it->second.expiration < e.expiration) dictionary[sub] = e;
    }
    return;
  }
  if (other.expiration() > expiration()) *this = other;
}

Storage::Storage(StorageLimits limits, Clock clock) : limits_(limits), clock_(std::move(clock)) {
  CT_CHECK(clock_);
  CT_CHECK(limits_.max_keys > 0);
}

Status Storage::check_sizes(const std::string* subkey, const std::string& value,
                            Time expiration) const {
  if (value.size() > limits_.max_value_bytes) {
    return Status::error("value of " + std::to_string(value.size()) + " bytes, limit " +
                         std::to_string(limits_.max_value_bytes));
  }
  if (subkey && subkey->size() > limits_.max_subkey_bytes) {
    return Status::error("subkey of " + std::to_string(subkey->size()) + " bytes, limit " +
                         std::to_string(limits_.max_subkey_bytes));
  }
  const Time now = clock_();
  if (expiration <= now) {
    return Status::error("value expired at " + ms(expiration) + ", now " + ms(now));
  }
  return Status::ok_status();
}

Status Storage::make_room(const DhtId& key) {
  if (data_.count(key) || data_.size() < limits_.max_keys) return Status::ok_status();
  purge();
  if (data_.size() < limits_.max_keys) return Status::ok_status();
  if (!limits_.evict_when_full) {
    return Status::error("storage full (" + std::to_string(limits_.max_keys) + " keys)");
  }
  auto victim = data_.begin();  // the key that expires first; ties: the smallest id
  for (auto it = data_.begin(); it != data_.end(); ++it) {
    if (it->second.value.expiration() < victim->second.value.expiration()) victim = it;
  }
  data_.erase(victim);
  return Status::ok_status();
}

Status Storage::store(const DhtId& key, std::string value, Time expiration) {
  if (Status s = check_sizes(nullptr, value, expiration); !s.ok()) return s;
  auto it = data_.find(key);
  if (it != data_.end() && drop_expired(it, clock_())) {
    const Time held = it->second.value.expiration();
    if (held > expiration) {
      return Status::error("a value expiring later is stored (at " + ms(held) + " > " +
                           ms(expiration) + ")");
    }
  }
  if (Status s = make_room(key); !s.ok()) return s;
  Record& r = data_[key];
  r.value = DhtValue{};
  r.value.plain = ValueEntry{std::move(value), expiration};
  r.stored_at = clock_();
  return Status::ok_status();
}

Status Storage::store_subkey(const DhtId& key, std::string subkey, std::string value,
                             Time expiration) {
  if (Status s = check_sizes(&subkey, value, expiration); !s.ok()) return s;
  auto it = data_.find(key);
  if (it != data_.end() && drop_expired(it, clock_())) {
    DhtValue& held = it->second.value;
    if (!held.is_dictionary) {
      if (held.plain.expiration > expiration) {
        return Status::error("a plain value expiring later is stored (at " +
                             ms(held.plain.expiration) + " > " + ms(expiration) + ")");
      }
      held = DhtValue{};
      held.is_dictionary = true;
    }
    auto sub = held.dictionary.find(subkey);
    if (sub != held.dictionary.end()) {
      if (sub->second.expiration > expiration) {
        return Status::error("subkey holds a value expiring later (at " +
                             ms(sub->second.expiration) + " > " + ms(expiration) + ")");
      }
      sub->second = ValueEntry{std::move(value), expiration};
    } else {
      if (held.dictionary.size() >= limits_.max_subkeys_per_key) {
        return Status::error("dictionary full (" + std::to_string(limits_.max_subkeys_per_key) +
                             " subkeys)");
      }
      held.dictionary.emplace(std::move(subkey), ValueEntry{std::move(value), expiration});
    }
    it->second.stored_at = clock_();
    return Status::ok_status();
  }
  if (Status s = make_room(key); !s.ok()) return s;
  Record& r = data_[key];
  r.value = DhtValue{};
  r.value.is_dictionary = true;
  r.value.dictionary.emplace(std::move(subkey), ValueEntry{std::move(value), expiration});
  r.stored_at = clock_();
  return Status::ok_status();
}

bool Storage::drop_expired(std::map<DhtId, Record>::iterator it, Time now) {
  DhtValue& v = it->second.value;
  if (v.is_dictionary) {
    for (auto sub = v.dictionary.begin(); sub != v.dictionary.end();) {
      sub = sub->second.expiration <= now ? v.dictionary.erase(sub) : std::next(sub);
    }
    if (!v.dictionary.empty()) return true;
  } else if (v.plain.expiration > now) {
    return true;
  }
  data_.erase(it);
  return false;
}

std::optional<DhtValue> Storage::get(const DhtId& key) {
  auto it = data_.find(key);
  if (it == data_.end() || !drop_expired(it, clock_())) return std::nullopt;
  return it->second.value;
}

const DhtValue* Storage::peek(const DhtId& key) {
  auto it = data_.find(key);
  if (it == data_.end() || !drop_expired(it, clock_())) return nullptr;
  return &it->second.value;
}

size_t Storage::purge() {
  const Time now = clock_();
  size_t dropped = 0;
  for (auto it = data_.begin(); it != data_.end();) {
    auto next = std::next(it);
    if (!drop_expired(it, now)) ++dropped;
    it = next;
  }
  return dropped;
}

std::vector<std::pair<DhtId, DhtValue>> Storage::items() {
  purge();
  std::vector<std::pair<DhtId, DhtValue>> out;
  out.reserve(data_.size());
  for (const auto& [key, r] : data_) out.emplace_back(key, r.value);
  return out;
}

std::optional<Time> Storage::last_stored(const DhtId& key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second.stored_at;
}

}  // namespace crowdtrain::dht
