#include "core/dht/node.h"

#include <algorithm>

namespace crowdtrain::dht {
namespace {

// Node ids remembered as already met by the hand-off; past this many the memory starts over.
constexpr size_t kMaxMetIds = 1 << 16;

ProtocolLimits limits_of(const DhtOptions& o) {
  ProtocolLimits l;
  l.max_keys_per_request = o.max_keys_per_request();
  l.max_contacts_per_key = std::max<size_t>(o.k(), 64);
  l.max_entries_per_key = o.max_subkeys_per_key();
  l.max_value_bytes = o.max_value_bytes();
  l.max_subkey_bytes = o.max_subkey_bytes();
  return l;
}

StorageLimits storage_limits(const DhtOptions& o, size_t max_keys, bool evict) {
  StorageLimits l;
  l.max_keys = max_keys;
  l.max_value_bytes = o.max_value_bytes();
  l.max_subkey_bytes = o.max_subkey_bytes();
  l.max_subkeys_per_key = o.max_subkeys_per_key();
  l.evict_when_full = evict;
  return l;
}

}  // namespace

DhtNode::DhtNode(Runtime& rt, RpcEndpoint& rpc, DhtId id, DhtOptions options)
    : rt_(rt),
      rpc_(rpc),
      id_(id),
      options_(options),
      limits_(limits_of(options)),
      table_(id,
             RoutingTableOptions{options.k(), options.replacement_cache(), options.depth_modulo()}),
      storage_(storage_limits(options, options.max_keys_stored(), false),
               [&rt] { return rt.now(); }),
      cache_(storage_limits(options, options.max_cache_keys(), true), [&rt] { return rt.now(); }),
      alive_(std::make_shared<bool>(true)) {
  CT_CHECK(options_.k() > 0 && options_.alpha() > 0 && options_.replicas() > 0);
  CT_CHECK(options_.max_keys_per_request() > 0);
  rpc_.serve(MsgType::kDhtPingRequest, [this](PeerId from, Message m, RpcEndpoint::Responder r) {
    serve_ping(from, std::move(m), std::move(r));
  });
  rpc_.serve(MsgType::kDhtStoreRequest, [this](PeerId from, Message m, RpcEndpoint::Responder r) {
    serve_store(from, std::move(m), std::move(r));
  });
  rpc_.serve(MsgType::kDhtFindRequest, [this](PeerId from, Message m, RpcEndpoint::Responder r) {
    serve_find(from, std::move(m), std::move(r));
  });
}

DhtNode::~DhtNode() {
  *alive_ = false;
  // Requests that arrive later are answered "no handler" by the endpoint.
  for (MsgType t :
       {MsgType::kDhtPingRequest, MsgType::kDhtStoreRequest, MsgType::kDhtFindRequest}) {
    rpc_.serve(t, [](PeerId, Message m, RpcEndpoint::Responder r) {
      r(make_error_response(m, "dht: node stopped"));
    });
  }
}

void DhtNode::later(Time delay, std::function<void()> fn) {
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(delay, [alive, fn = std::move(fn)]() mutable {
    auto a = alive.lock();
    if (a && *a) fn();
  });
}

void DhtNode::start() {
  if (options_.refresh_period() > Time(0)) later(options_.refresh_period(), [this] { refresh(); });
  if (options_.republish_period() > Time(0)) {
    later(options_.republish_period(), [this] { republish(); });
  }
}

// ---------------------------------------------------------------- serving

void DhtNode::serve_ping(PeerId from, Message req, RpcEndpoint::Responder respond) {
  auto r = decode_ping_request(req, limits_);
  if (!r.ok()) {
    rt_.metrics().count("dht_malformed_requests");
    respond(make_error_response(req, r.error()));
    return;
  }
  saw(Contact{r->sender, from}, r->client);
  respond(encode_ping_response(PingResponse{id_}));
}

void DhtNode::serve_store(PeerId from, Message req, RpcEndpoint::Responder respond) {
  auto r = decode_store_request(req, limits_);
  if (!r.ok()) {
    rt_.metrics().count("dht_malformed_requests");
    respond(make_error_response(req, r.error()));
    return;
  }
  saw(Contact{r->sender, from}, r->client);
  StoreResponse resp{id_, {}};
  for (const StoreRecord& rec : r->records) {
    Status s = store_local(rec, r->in_cache);
    if (!s.ok()) rt_.metrics().count("dht_store_refused");
    resp.refusals.push_back(
        s.ok() ? std::string() : "dht store of key " + rec.key.short_hex() + ": " + s.message());
  }
  respond(encode_store_response(resp));
  if (!store_observer_ || r->in_cache) return;
  for (const StoreRecord& rec : r->records) {
    if (storage_.get(rec.key).has_value()) store_observer_(rec.key);
  }
}

void DhtNode::serve_find(PeerId from, Message req, RpcEndpoint::Responder respond) {
  auto r = decode_find_request(req, limits_);
  if (!r.ok()) {
    rt_.metrics().count("dht_malformed_requests");
    respond(make_error_response(req, r.error()));
    return;
  }
  saw(Contact{r->sender, from}, r->client);
  FindResponse resp{id_, {}};
  size_t value_bytes = 0;  // values beyond the budget are left out; the asker looks elsewhere
  for (const DhtId& key : r->keys) {
    FindKeyResult kr;
    kr.value = local_value(key);
    if (kr.value) {
      size_t bytes = kr.value->plain.value.size();
      for (const auto& [sub, e] : kr.value->dictionary) bytes += sub.size() + e.value.size();
      if (value_bytes + bytes > options_.max_response_value_bytes()) {
        kr.value.reset();
      } else {
        value_bytes += bytes;
      }
    }
    kr.nearest = table_.nearest(key, options_.k(), &r->sender);
    resp.results.push_back(std::move(kr));
  }
  rt_.metrics().count("dht_finds_served");
  respond(encode_find_response(resp, r->keys));
}

Status DhtNode::validate(const StoreRecord& record) const {
  if (!validator_) return Status::ok_status();
  return validator_(record);
}

Status DhtNode::store_local(const StoreRecord& rec, bool in_cache) {
  if (Status s = validate(rec); !s.ok())
    return Status::error("refused by validator: " + s.message());
  Storage& where = in_cache ? cache_ : storage_;
  if (Status s = check_owner(where, rec); !s.ok()) {
    rt_.metrics().count("dht_forged_records");
    return s;
  }
  if (rec.has_subkey) return where.store_subkey(rec.key, rec.subkey, rec.value, rec.expiration);
  return where.store(rec.key, rec.value, rec.expiration);
}

// The owner rules of core/dht/record_signing.h against what `where` holds: a forged record is
// refused, a record of an owned key must be its owner's, and the owner's replaces a squatter's.
Status DhtNode::check_owner(Storage& where, const StoreRecord& rec) {
  auto signer = check_record_signature(rec);
  if (!signer.ok()) return Status::error(signer.error());
  const DhtValue* held = where.peek(rec.key);
  if (!held) return Status::ok_status();
  // Every record of an owned key is its owner's (others are refused, and the owner's first record
  // cleared the key), so one record tells whether the key is owned.
  const std::string& any =
      held->is_dictionary ? held->dictionary.begin()->second.value : held->plain.value;
  const std::optional<OwnerKey> key_owner = held_owner(any);
  if (key_owner && *signer != key_owner) {
    return Status::error("the key is owned by " + owner_short(*key_owner) +
                         ": only its owner's signed records change it");
  }
  if (!key_owner && held_owner(rec.value)) where.erase(rec.key);  // the owner's first record
  return Status::ok_status();
}

std::optional<DhtValue> DhtNode::local_value(const DhtId& key) {
  auto primary = storage_.get(key);
  auto cached = cache_.get(key);
  if (!primary) return cached;
  if (cached) primary->merge(*cached);
  return primary;
}

// ---------------------------------------------------------------- routing and failures

void DhtNode::saw(const Contact& c, bool client) {
  if (client || c.id == id_) return;
  blacklist_.erase(c.peer);  // it is alive
  const bool known = table_.contains(c.id);
  if (auto stale = table_.update(c, rt_.now())) ping_contact(*stale);
  if (!options_.handoff() || known || !table_.contains(c.id) || storage_.size() == 0) return;
  if (met_.size() >= kMaxMetIds) met_.clear();  // a churning swarm of many ids: start over
  if (!met_.insert(c.id).second) return;        // met before: it had its hand-off then
  newcomers_.push_back(c);
  if (handoff_pending_) return;
  handoff_pending_ = true;
  later(options_.handoff_delay(), [this] { hand_off(); });
}

void DhtNode::ping_contact(const Contact& c) {
  rt_.metrics().count("dht_eviction_pings");
  std::weak_ptr<bool> alive = alive_;
  rpc_.call(c.peer, encode_ping_request(PingRequest{id_, options_.client_mode()}), call_options(),
            [this, alive, c](Result<Message> r) {
              auto a = alive.lock();
              if (!a || !*a) return;
              auto pong = r.ok() ? decode_ping_response(r.value(), limits_)
                                 : Result<PingResponse>(r.status());
              if (pong.ok() && pong->responder == c.id) {
                table_.ping_answered(c, rt_.now());
                return;
              }
              // Evicted whatever the failure (a refusal means it no longer serves the DHT); only a
              // time-out blacklists it too.
              rt_.metrics().count("dht_evictions");
              table_.remove(c.id);
              if (pong.ok()) {
                saw(Contact{pong->responder, c.peer}, false);  // it came back with a new id
              } else {
                call_failed(c.peer, c.id, r);
              }
            });
}

void DhtNode::call_failed(PeerId peer, const std::optional<DhtId>& id, const Result<Message>& r) {
  if (r.ok()) {
    // It answered, but not in this protocol: no use as a contact, yet alive (no blacklist).
    rt_.metrics().count("dht_malformed_responses");
    if (id) table_.remove(*id);
    return;
  }
  if (r.status().is_refused()) {
    rt_.metrics().count("dht_rpc_refused");  // it answered: alive, it stays
    return;
  }
  if (!r.status().is_timed_out()) {
    rt_.metrics().count("dht_rpc_local_failures");  // never sent (a local limit): says nothing
    return;
  }
  rt_.metrics().count("dht_rpc_failed");
  if (id && !table_.remove_if_replaceable(*id)) rt_.metrics().count("dht_failed_contact_kept");
  auto it = blacklist_.find(peer);
  if (it == blacklist_.end()) {
    if (blacklist_.size() >= options_.max_blacklist()) blacklist_.erase(blacklist_.begin());
    it = blacklist_.emplace(peer, Strike{}).first;
  }
  Strike& s = it->second;
  Time span = options_.blacklist_time();
  for (int i = 0; i < s.count && span < options_.blacklist_max_time(); ++i) span *= 2;
  span = std::min(span, options_.blacklist_max_time());
  s.until = rt_.now() + span;
  s.count = std::min(s.count + 1, 32);
}

bool DhtNode::blacklisted(PeerId peer) const {
  auto it = blacklist_.find(peer);
  return it != blacklist_.end() && it->second.until > rt_.now();
}

CallOptions DhtNode::call_options() const {
  return CallOptions().with_timeout(options_.rpc_timeout()).with_retries(options_.rpc_retries());
}

// ---------------------------------------------------------------- maintenance

void DhtNode::refresh() {
  later(options_.refresh_period(), [this] { refresh(); });
  std::vector<DhtId> targets;
  for (size_t index : table_.stale_buckets(rt_.now(), options_.refresh_period())) {
    targets.push_back(table_.random_id_in(index, rt_.rng()));
    if (targets.size() >= options_.max_keys_per_request()) break;
  }
  if (targets.empty()) return;
  rt_.metrics().count("dht_bucket_refreshes", static_cast<int64_t>(targets.size()));
  lookup(std::move(targets), Want::kNodes, [](std::vector<TraverseResult>, std::vector<Found>) {});
}

void DhtNode::republish() {
  later(options_.republish_period(), [this] { republish(); });
  if (options_.client_mode()) return;
  const Time now = rt_.now();
  std::vector<StoreRecord> records;
  for (auto& [key, value] : storage_.items()) {
    auto stored = storage_.last_stored(key);
    // Kademlia's shortcut: a record someone stored here during the last period is fresh already.
    if (stored && *stored + options_.republish_period() > now) continue;
    if (records.size() >= options_.max_republish_keys()) break;
    if (value.is_dictionary) {
      for (auto& [sub, e] : value.dictionary) {
        records.push_back(StoreRecord{key, true, sub, std::move(e.value), e.expiration});
      }
    } else {
      records.push_back(
          StoreRecord{key, false, "", std::move(value.plain.value), value.plain.expiration});
    }
  }
  if (records.empty()) return;
  rt_.metrics().count("dht_republished", static_cast<int64_t>(records.size()));
  store_records(std::move(records), [](std::vector<size_t>) {});
}

// Every stored record goes to the newcomers among the `replicas` contacts nearest its key (a
// newcomer evicted since, or a client, is not among them).
void DhtNode::hand_off() {
  handoff_pending_ = false;
  std::vector<Contact> newcomers = std::move(newcomers_);
  newcomers_.clear();
  if (options_.client_mode()) return;
  std::vector<StoreRecord> records;
  std::vector<std::vector<Contact>> targets;
  for (auto& [key, value] : storage_.items()) {
    std::vector<Contact> to;
    for (const Contact& n : table_.nearest(key, options_.replicas())) {
      auto it = std::find_if(newcomers.begin(), newcomers.end(),
                             [&](const Contact& c) { return c.id == n.id; });
      if (it != newcomers.end()) to.push_back(n);
    }
    if (to.empty()) continue;
    if (records.size() >= options_.max_republish_keys()) break;
    if (value.is_dictionary) {
      for (auto& [sub, e] : value.dictionary) {
        records.push_back(StoreRecord{key, true, sub, std::move(e.value), e.expiration});
        targets.push_back(to);
      }
    } else {
      records.push_back(
          StoreRecord{key, false, "", std::move(value.plain.value), value.plain.expiration});
      targets.push_back(std::move(to));
    }
  }
  if (records.empty()) return;
  rt_.metrics().count("dht_handed_off", static_cast<int64_t>(records.size()));
  send_stores(std::move(records), std::move(targets), false, [](std::vector<size_t>) {});
}

}  // namespace crowdtrain::dht
