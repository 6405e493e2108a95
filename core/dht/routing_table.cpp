#include "core/dht/routing_table.h"

#include <algorithm>

namespace crowdtrain::dht {

RoutingTable::RoutingTable(DhtId self, RoutingTableOptions options)
    : self_(self), options_(options) {
  CT_CHECK(options_.k > 0);
  buckets_.push_back(Bucket{});  // depth 0 covers everything
}

size_t RoutingTable::bucket_index(const DhtId& id) const {
  auto it = std::upper_bound(buckets_.begin(), buckets_.end(), id,
                             [](const DhtId& v, const Bucket& b) { return v < b.lo; });
  CT_CHECK(it != buckets_.begin());
  const size_t index = static_cast<size_t>(it - buckets_.begin()) - 1;
  CT_CHECK(buckets_[index].covers(id));
  return index;
}

bool RoutingTable::can_split(const Bucket& b) const {
  if (b.depth >= kIdBits) return false;
  if (b.covers(self_)) return true;
  return options_.depth_modulo > 0 && b.depth % options_.depth_modulo != 0;
}

void RoutingTable::split(size_t index) {
  Bucket old = std::move(buckets_[index]);
  Bucket low, high;
  low.lo = old.lo;
  high.lo = old.lo;
  high.lo.set_bit(old.depth, true);
  low.depth = high.depth = old.depth + 1;
  low.last_updated = high.last_updated = old.last_updated;
  for (const Contact& c : old.contacts) (low.covers(c.id) ? low : high).contacts.push_back(c);
  for (const Contact& c : old.replacements) {
    (low.covers(c.id) ? low : high).replacements.push_back(c);
  }
  buckets_[index] = std::move(low);
  buckets_.insert(buckets_.begin() + static_cast<std::ptrdiff_t>(index) + 1, std::move(high));
}

std::optional<Contact> RoutingTable::update(const Contact& c, Time now) {
  if (c.id == self_) return std::nullopt;
  // A peer that came back with a new id: forget the old one (at most one entry per peer).
  auto old_id_of_peer = [&]() -> std::optional<DhtId> {
    for (const Bucket& b : buckets_) {
      for (const Contact& old : b.contacts) {
        if (old.peer == c.peer && old.id != c.id) return old.id;
      }
    }
    return std::nullopt;
  };
  if (auto stale = old_id_of_peer()) remove(*stale);
  for (int guard = 0; guard <= kIdBits; ++guard) {
    const size_t index = bucket_index(c.id);
    Bucket& b = buckets_[index];
    auto it = std::find_if(b.contacts.begin(), b.contacts.end(),
                           [&](const Contact& x) { return x.id == c.id; });
    if (it != b.contacts.end()) {
      if (it == b.contacts.begin()) b.ping_in_flight = false;  // the pinged contact answered
      b.contacts.erase(it);
      b.contacts.push_back(c);
      b.last_updated = now;
      return std::nullopt;
    }
    if (b.contacts.size() < options_.k) {
      b.contacts.push_back(c);
      b.last_updated = now;
      auto r = std::find_if(b.replacements.begin(), b.replacements.end(),
                            [&](const Contact& x) { return x.id == c.id; });
      if (r != b.replacements.end()) b.replacements.erase(r);
      return std::nullopt;
    }
    if (can_split(b)) {
      split(index);
      continue;
    }
    auto r = std::find_if(b.replacements.begin(), b.replacements.end(),
                          [&](const Contact& x) { return x.id == c.id; });
    if (r != b.replacements.end()) b.replacements.erase(r);
    if (options_.replacement_cache == 0) return std::nullopt;
    b.replacements.push_back(c);
    while (b.replacements.size() > options_.replacement_cache) b.replacements.pop_front();
    if (b.ping_in_flight) return std::nullopt;
    b.ping_in_flight = true;
    return b.contacts.front();
  }
  CT_CHECK(false && "routing table: a bucket split more than 160 times");
  return std::nullopt;
}

bool RoutingTable::remove(const DhtId& id) {
  Bucket& b = buckets_[bucket_index(id)];
  auto it = std::find_if(b.contacts.begin(), b.contacts.end(),
                         [&](const Contact& x) { return x.id == id; });
  if (it != b.contacts.end()) {
    if (it == b.contacts.begin()) b.ping_in_flight = false;
    b.contacts.erase(it);
    if (!b.replacements.empty()) {
      b.contacts.push_back(b.replacements.back());
      b.replacements.pop_back();
    }
    return true;
  }
  auto r = std::find_if(b.replacements.begin(), b.replacements.end(),
                        [&](const Contact& x) { return x.id == id; });
  if (r == b.replacements.end()) return false;
  b.replacements.erase(r);
  return true;
}

bool RoutingTable::remove_if_replaceable(const DhtId& id) {
  const Bucket& b = buckets_[bucket_index(id)];
  const bool listed = std::any_of(b.contacts.begin(), b.contacts.end(),
                                  [&](const Contact& x) { return x.id == id; });
  if (listed && b.replacements.empty()) return false;
  return remove(id);
}

std::vector<Contact> RoutingTable::nearest(const DhtId& target, size_t count,
                                           const DhtId* exclude) const {
  std::vector<std::pair<DhtId, Contact>> all;
  for (const Bucket& b : buckets_) {
    for (const Contact& c : b.contacts) {
      if (exclude && c.id == *exclude) continue;
      all.emplace_back(c.id ^ target, c);
    }
  }
  const size_t n = std::min(count, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                    [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Contact> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(all[i].second);
  return out;
}

std::optional<Contact> RoutingTable::find(const DhtId& id) const {
  const Bucket& b = buckets_[bucket_index(id)];
  for (const Contact& c : b.contacts) {
    if (c.id == id) return c;
  }
  return std::nullopt;
}

bool RoutingTable::contains(const DhtId& id) const { return find(id).has_value(); }

size_t RoutingTable::size() const {
  size_t n = 0;
  for (const Bucket& b : buckets_) n += b.contacts.size();
  return n;
}

void RoutingTable::touch(const DhtId& id, Time now) {
  buckets_[bucket_index(id)].last_updated = now;
}

std::vector<size_t> RoutingTable::stale_buckets(Time now, Time idle) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    if (buckets_[i].last_updated + idle <= now) out.push_back(i);
  }
  return out;
}

DhtId RoutingTable::random_id_in(size_t index, Rng& rng) const {
  CT_CHECK(index < buckets_.size());
  const Bucket& b = buckets_[index];
  DhtId id = DhtId::random(rng);
  for (int i = 0; i < b.depth; ++i) id.set_bit(i, b.lo.bit(i));
  return id;
}

}  // namespace crowdtrain::dht
