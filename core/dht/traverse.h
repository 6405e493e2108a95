// The iterative Kademlia lookup, for many keys at once, as a pure algorithm: the network is passed
// in as `find` (ask one peer about some keys, get its nearest contacts per key back, or a failure),
// so it runs the same on a runtime, on a synthetic network in a test, or synchronously. Per key it
// keeps a beam of the nearest peers that answered and a set of candidates; at most `alpha` requests
// that include a key are in flight, at most `max_in_flight` in all, and one request carries up to
// `max_keys_per_call` keys whose candidate lists hold the same peer (hivemind's traverse_dht). A
// key ends when a reply says stop (its value was found), or when no unasked candidate is nearer
// than the beam's farthest member and none of its requests is in flight. Every count is bounded.
// Ownership: traverse() keeps its state alive until `done` ran and every callback came back.
// Threading: single-threaded; `find` may call back at once or later, never concurrently.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "core/dht/dht_id.h"

namespace crowdtrain::dht {

struct TraverseOptions {
  size_t alpha = 3;               // requests in flight per key
  size_t beam = 20;               // nearest answering peers kept per key
  size_t max_in_flight = 12;      // requests in flight in all
  size_t max_keys_per_call = 32;  // keys asked in one request
  size_t max_requests = 4096;     // requests in all; when spent, keys end with what they have
  TraverseOptions& with_alpha(size_t v) {
    alpha = v;
    return *this;
  }
  TraverseOptions& with_beam(size_t v) {
    beam = v;
    return *this;
  }
  TraverseOptions& with_max_in_flight(size_t v) {
    max_in_flight = v;
    return *this;
  }
  TraverseOptions& with_max_keys_per_call(size_t v) {
    max_keys_per_call = v;
    return *this;
  }
  TraverseOptions& with_max_requests(size_t v) {
    max_requests = v;
    return *this;
  }
};

// One peer's answer about one key.
struct FindReply {
  std::vector<Contact> nearest;  // the peers it knows nearest to the key
  bool stop = false;             // the caller has what it wanted for this key: end it
};

// Replies in the order of the keys asked, or nullopt when the peer failed (time-out, refusal).
using FindCallback = std::function<void(std::optional<std::vector<FindReply>>)>;
// Must call `callback` exactly once (at once or later).
using FindFn =
    std::function<void(const Contact& peer, const std::vector<DhtId>& keys, FindCallback callback)>;

struct TraverseResult {
  std::vector<Contact> nearest;  // up to beam peers that answered, nearest first
  bool stopped = false;          // ended because a reply said stop
  int hops = 0;                  // depth of the nearest answering peer (initial peers: 1)
};

struct TraverseStats {
  size_t requests = 0;           // find calls made
  size_t failures = 0;           // of which failed
  size_t max_in_flight = 0;      // most calls in flight at once
  size_t max_key_in_flight = 0;  // most calls in flight for one key at once
};

struct TraverseInput {
  std::vector<DhtId> keys;
  // Where to start: one list shared by every key, or one list per key.
  std::vector<std::vector<Contact>> initial;
  std::optional<DhtId> exclude;  // never asked nor returned (the node itself)
};

using TraverseDone = std::function<void(std::vector<TraverseResult>, TraverseStats)>;

// Runs the lookup; `done` gets one result per key (in the keys' order). With no keys, or no initial
// peers, `done` runs at once.
void traverse(TraverseInput input, TraverseOptions options, FindFn find, TraverseDone done);

}  // namespace crowdtrain::dht
