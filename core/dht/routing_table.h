// Kademlia's routing table: k-buckets that partition the 160-bit id space by prefix. A full bucket
// splits when it holds the node's own id (or, as in hivemind, when its depth is not a multiple of
// depth_modulo); otherwise it keeps its long-lived contacts: the newcomer waits in a bounded
// replacement cache and the caller is asked to ping the least-recently-seen contact, which is
// evicted (and replaced from the cache) only if the ping fails. Buckets not touched for a while are
// listed for refresh. Owned by one DhtNode; single-threaded; time is passed in, never read.
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "core/dht/dht_id.h"
#include "core/time.h"

namespace crowdtrain::dht {

struct RoutingTableOptions {
  size_t k = 20;                  // contacts per bucket
  size_t replacement_cache = 20;  // newcomers waiting per full bucket
  int depth_modulo = 5;           // also split buckets whose depth % this != 0 (0: never)
};

class RoutingTable {
 public:
  struct Bucket {
    DhtId lo;                       // the bucket holds the ids whose first `depth` bits equal lo's
    int depth = 0;                  // lo has zeros after the first `depth` bits
    std::vector<Contact> contacts;  // least recently seen first; at most k
    std::deque<Contact> replacements;  // most recent last; at most replacement_cache
    Time last_updated{0};              // last contact update or lookup in this range
    bool ping_in_flight = false;       // the least-recently-seen contact is being pinged
    bool covers(const DhtId& id) const { return id.common_prefix_bits(lo) >= depth; }
  };

  RoutingTable(DhtId self, RoutingTableOptions options);

  // Records that `c` was seen alive at `now`. Returns the contact the caller should ping when c's
  // bucket is full and cannot split (c then waits in the replacement cache); nothing otherwise. The
  // node's own id is ignored. A contact with a known PeerId but a new id replaces the old entry.
  std::optional<Contact> update(const Contact& c, Time now);
  // Removes the contact with `id` (it failed to answer) and promotes the most recent replacement.
  // Returns true when it was in the table (or in a replacement cache).
  bool remove(const DhtId& id);
  // A contact that failed to answer a request: removed (as remove) when its bucket has a
  // replacement to promote, else kept. Kademlia (section 4.1): a node whose own link failed for a
  // while — a loss burst, a partition — must not flush its whole table, or it stays cut off after
  // the link comes back. Returns whether it was removed.
  bool remove_if_replaceable(const DhtId& id);
  // Marks a ping of the least-recently-seen contact of id's bucket as answered (the contact stays,
  // moved to most recently seen).
  void ping_answered(const Contact& c, Time now) { update(c, now); }

  // Up to `count` contacts nearest to `target`, nearest first; `exclude` is left out.
  std::vector<Contact> nearest(const DhtId& target, size_t count,
                               const DhtId* exclude = nullptr) const;
  bool contains(const DhtId& id) const;
  std::optional<Contact> find(const DhtId& id) const;
  size_t size() const;

  // Marks id's bucket as used at `now` (a lookup of an id in its range counts as a refresh).
  void touch(const DhtId& id, Time now);
  // Indices of buckets not updated since `now - idle`.
  std::vector<size_t> stale_buckets(Time now, Time idle) const;
  // A uniformly random id inside bucket `index` (a refresh lookup target).
  DhtId random_id_in(size_t index, Rng& rng) const;

  const std::vector<Bucket>& buckets() const { return buckets_; }
  const DhtId& self() const { return self_; }
  size_t bucket_index(const DhtId& id) const;

 private:
  bool can_split(const Bucket& b) const;
  void split(size_t index);

  DhtId self_;
  RoutingTableOptions options_;
  std::vector<Bucket> buckets_;  // sorted by lo; together they cover the whole id space
};

}  // namespace crowdtrain::dht
