// DhtNode: one peer's Kademlia node. It serves ping, store and find on the peer's RpcEndpoint,
// keeps a routing table (updated from every request and response; ping-before-evict), a primary
// storage and a cache, and offers bootstrap, store (plain and dictionary subkeys, to the `replicas`
// nearest peers), get (iterative FIND_VALUE, caching the value at the nearest peer that lacked it)
// and find_nearest, each for many keys at once through one traversal (core/dht/traverse.h).
// Periodic timers refresh idle buckets and republish stored records; with `handoff`, a node met
// for the first time gets the stored records for which it is among the `replicas` nearest
// (Kademlia's join rule, so that values stored while the network was young reach the peers that
// joined later; a node met again after a time-out dropped it gets nothing: on congested links that
// re-meeting is constant, and handing everything off each time floods the swarm). A peer that
// does not answer a call (a time-out) is blacklisted for a while (doubling per repeated failure)
// and dropped from the routing table when a replacement waits for its place (else kept, so that a
// node whose own link failed does not flush its table: Kademlia, section 4.1); a peer that answers
// is alive and never blacklisted, even when it refuses. Counters and samples go to rt.metrics().
// Ownership: the node borrows the Runtime and the RpcEndpoint (both outlive it); callbacks that
// come after the node is destroyed are dropped. Threading: single-threaded, on the runtime's loop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/dht/dht_id.h"
#include "core/dht/dht_options.h"
#include "core/dht/protocol.h"
#include "core/dht/record_signing.h"
#include "core/dht/routing_table.h"
#include "core/dht/storage.h"
#include "core/dht/traverse.h"
#include "core/rpc.h"
#include "core/runtime.h"

namespace crowdtrain::dht {

// Checks a record before it is stored (incoming or local) or accepted from a find response; an
// error refuses it with that reason. Size limits are checked before; signatures can go here later.
using RecordValidator = std::function<Status(const StoreRecord& record)>;
// Told, after a store request from a peer is served, each of its keys that the node now holds in
// primary storage (an observer outside the protocol, as the simulated world's DHT oracle).
using StoreObserver = std::function<void(const DhtId& key)>;

struct StoreItem {
  std::string key;
  std::optional<std::string> subkey;  // set: one entry of the dictionary under `key`
  std::string value;
  Time expiration{0};
};

class DhtNode {
 public:
  using StatusDone = std::function<void(Status)>;
  using StoreDone = std::function<void(size_t stored_at)>;  // replicas that took it (0: failed)
  using GetDone = std::function<void(Result<DhtValue>)>;
  using ContactsDone = std::function<void(std::vector<Contact>)>;

  DhtNode(Runtime& rt, RpcEndpoint& rpc, DhtId id, DhtOptions options = DhtOptions());
  ~DhtNode();
  DhtNode(const DhtNode&) = delete;
  DhtNode& operator=(const DhtNode&) = delete;

  // Starts the refresh and republish timers.
  void start();
  // Pings `peers`, then looks up the node's own id. Ok when one answered, or when `peers` holds no
  // other peer (the first node of a network).
  void bootstrap(std::vector<PeerId> peers, StatusDone done);

  void store(const std::string& key, std::string value, Time expiration, StoreDone done);
  void store_subkey(const std::string& key, std::string subkey, std::string value, Time expiration,
                    StoreDone done);
  // One traversal for all keys; done gets, per item, how many peers stored it.
  void store_many(std::vector<StoreItem> items, std::function<void(std::vector<size_t>)> done);
  // The value under `key` (a dictionary merges the entries of every answer); an error when no peer
  // holds an unexpired value.
  void get(const std::string& key, GetDone done);
  // Values this node holds are returned without asking anyone, unless `latest`: then the lookup
  // asks the whole beam and merges every answer (the freshest dictionary, at a higher cost).
  void get_many(std::vector<std::string> keys,
                std::function<void(std::vector<Result<DhtValue>>)> done, bool latest = false);
  // The `count` live peers nearest to `target` (this node included when it is among them).
  void find_nearest(const DhtId& target, size_t count, ContactsDone done);

  void set_validator(RecordValidator validator) { validator_ = std::move(validator); }
  // Items stored through this node whose key or subkey names this key's owner marker are signed
  // with it (core/dht/record_signing.h); without a key, nothing is signed.
  void set_signing_key(SigningKey key) { signing_key_ = std::move(key); }
  const std::optional<SigningKey>& signing_key() const { return signing_key_; }
  void set_store_observer(StoreObserver observer) { store_observer_ = std::move(observer); }

  const DhtId& id() const { return id_; }
  Contact contact() const { return Contact{id_, rt_.self()}; }
  const DhtOptions& options() const { return options_; }
  RoutingTable& routing_table() { return table_; }
  Storage& storage() { return storage_; }
  Storage& cache() { return cache_; }
  bool blacklisted(PeerId peer) const;

 private:
  // What a lookup learns about one key's value (get only).
  struct Found {
    std::optional<DhtValue> value;
    std::vector<DhtId> holders;  // peers that returned a value
  };
  using LookupDone = std::function<void(std::vector<TraverseResult>, std::vector<Found>)>;

  // Server side (node.cpp).
  void serve_ping(PeerId from, Message req, RpcEndpoint::Responder respond);
  void serve_store(PeerId from, Message req, RpcEndpoint::Responder respond);
  void serve_find(PeerId from, Message req, RpcEndpoint::Responder respond);
  Status store_local(const StoreRecord& record, bool in_cache);
  Status check_owner(Storage& where, const StoreRecord& record);
  // Whether an answer's entry may be accepted: the validator, the signature, and for a key looked
  // up by a name that names an owner, that owner's signature.
  bool accept_entry(const StoreRecord& record) const;
  Status validate(const StoreRecord& record) const;
  std::optional<DhtValue> local_value(const DhtId& key);

  // Routing and failures (node.cpp).
  void saw(const Contact& c, bool client);
  void ping_contact(const Contact& c);
  // A call to `peer` (table entry `id`, when known) ended with `r`, which failed or did not decode
  // (r.ok()). Only a time-out blacklists the peer and drops it from the routing table; a refusal
  // leaves it be (it answered); an answer that does not decode drops it from the table only; a
  // local failure (the endpoint's pending limit) says nothing about it.
  void call_failed(PeerId peer, const std::optional<DhtId>& id, const Result<Message>& r);
  CallOptions call_options() const;
  // Runs `fn` after `delay` unless the node is gone by then.
  void later(Time delay, std::function<void()> fn);
  void refresh();
  void republish();
  void hand_off();  // the stored records newcomers_ should hold, sent to them

  // Lookups (node_ops.cpp).
  enum class Want { kNodes, kFirstValue, kAllValues };
  // One traversal for `keys` (distinct); done runs later, never inside lookup().
  void lookup(std::vector<DhtId> keys, Want want, LookupDone done);
  // `v` without its expired and invalid entries; nullopt when nothing is left.
  std::optional<DhtValue> accept(const DhtId& key, DhtValue v) const;
  // Stores each record at the `replicas` peers nearest its key (this node among them when it is).
  void store_records(std::vector<StoreRecord> records,
                     std::function<void(std::vector<size_t>)> done);
  // Sends records[i] to every peer in targets[i], batching per peer; done gets the stores per
  // record.
  void send_stores(std::vector<StoreRecord> records, std::vector<std::vector<Contact>> targets,
                   bool in_cache, std::function<void(std::vector<size_t>)> done);
  void cache_found(const std::vector<DhtId>& keys, const std::vector<TraverseResult>& results,
                   const std::vector<Found>& found);

  Runtime& rt_;
  RpcEndpoint& rpc_;
  DhtId id_;
  DhtOptions options_;
  ProtocolLimits limits_;
  RoutingTable table_;
  Storage storage_;
  Storage cache_;
  RecordValidator validator_;
  std::optional<SigningKey> signing_key_;
  // Keys looked up by a name that names an owner (with how many lookups want each): answers for
  // them are accepted only with that owner's signature.
  std::map<DhtId, std::pair<OwnerKey, int>> owned_lookups_;
  StoreObserver store_observer_;
  std::vector<Contact> newcomers_;  // met since the last hand-off round
  std::set<DhtId> met_;             // every node id a hand-off considered (bounded, see saw())
  bool handoff_pending_ = false;
  struct Strike {
    Time until{0};
    int count = 0;
  };
  std::map<PeerId, Strike> blacklist_;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::dht
