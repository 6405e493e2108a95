// DhtNode's client side, part 1: the lookup (one traversal on the RPC endpoint) and stores.
#include <algorithm>
#include <utility>

#include "core/dht/node.h"

namespace crowdtrain::dht {

void DhtNode::lookup(std::vector<DhtId> keys, Want want, LookupDone done) {
  const Time started = rt_.now();
  auto found = std::make_shared<std::vector<Found>>(keys.size());
  auto index = std::make_shared<std::map<DhtId, size_t>>();
  TraverseInput in;
  in.exclude = id_;
  for (size_t i = 0; i < keys.size(); ++i) {
    (*index)[keys[i]] = i;
    table_.touch(keys[i], started);
    in.initial.push_back(table_.nearest(keys[i], options_.k()));
  }
  CT_CHECK(index->size() == keys.size());
  in.keys = keys;
  TraverseOptions to;
  to.alpha = options_.alpha();
  to.beam = options_.k();
  to.max_in_flight = std::max(options_.max_in_flight(), options_.alpha());
  to.max_keys_per_call = options_.max_keys_per_request();
  to.max_requests = options_.max_requests_per_lookup();
  std::weak_ptr<bool> alive = alive_;
  FindFn find = [this, alive, found, index, want](const Contact& peer, const std::vector<DhtId>& ks,
                                                  FindCallback cb) {
    if (blacklisted(peer.peer)) {
      later(Time(0), [cb] { cb(std::nullopt); });
      return;
    }
    rt_.metrics().count("dht_find_requests");
    Message req = encode_find_request(FindRequest{id_, options_.client_mode(), ks});
    rpc_.call(peer.peer, std::move(req), call_options(),
              [this, alive, found, index, want, peer, ks, cb](Result<Message> r) {
                auto a = alive.lock();
                if (!a || !*a) return;
                auto resp = r.ok() ? decode_find_response(r.value(), ks, limits_)
                                   : Result<FindResponse>(r.status());
                if (!resp.ok()) {
                  call_failed(peer.peer, peer.id, r);
                  cb(std::nullopt);
                  return;
                }
                if (resp->responder != peer.id) table_.remove(peer.id);
                saw(Contact{resp->responder, peer.peer}, false);
                std::vector<FindReply> replies(ks.size());
                for (size_t i = 0; i < ks.size(); ++i) {
                  FindKeyResult& kr = resp->results[i];
                  replies[i].nearest = std::move(kr.nearest);
                  if (want == Want::kNodes || !kr.value) continue;
                  auto v = accept(ks[i], std::move(*kr.value));
                  if (!v) continue;
                  Found& f = (*found)[index->at(ks[i])];
                  if (f.value) {
                    f.value->merge(*v);
                  } else {
                    f.value = std::move(v);
                  }
                  f.holders.push_back(resp->responder);
                  replies[i].stop = want == Want::kFirstValue;
                }
                cb(std::move(replies));
              });
  };
  auto sync = std::make_shared<bool>(true);
  const size_t n = keys.size();
  traverse(std::move(in), to, std::move(find),
           [this, alive, found, started, n, sync, done = std::move(done)](
               std::vector<TraverseResult> results, TraverseStats stats) mutable {
             auto finish = [this, found, started, n, done = std::move(done),
                            results = std::move(results), stats]() mutable {
               rt_.metrics().count("dht_lookups", static_cast<int64_t>(n));
               for (const TraverseResult& r : results) {
                 rt_.metrics().observe("dht_lookup_hops", r.hops);
               }
               rt_.metrics().observe("dht_lookup_ms", to_millis(rt_.now() - started));
               if (n > 0) {
                 rt_.metrics().observe("dht_messages_per_lookup",
                                       static_cast<double>(stats.requests) / n);
               }
               // Replies still in flight may write into `found` later: leave them a fresh one.
               done(std::move(results), std::exchange(*found, std::vector<Found>(n)));
             };
             auto a = alive.lock();
             if (!a || !*a) return;
             if (*sync) {
               later(Time(0), std::move(finish));
             } else {
               finish();
             }
           });
  *sync = false;
}

bool DhtNode::accept_entry(const StoreRecord& record) const {
  if (!validate(record).ok()) return false;
  auto signer = check_record_signature(record);
  if (!signer.ok()) {
    rt_.metrics().count("dht_forged_answers");
    return false;
  }
  auto owned = owned_lookups_.find(record.key);
  if (owned == owned_lookups_.end()) return true;
  if (held_owner(record.value) == owned->second.first) return true;
  rt_.metrics().count("dht_forged_answers");  // an owned key's value not signed by its owner
  return false;
}

std::optional<DhtValue> DhtNode::accept(const DhtId& key, DhtValue v) const {
  const Time now = rt_.now();
  if (!v.is_dictionary) {
    if (v.plain.expiration <= now) return std::nullopt;
    if (!accept_entry(StoreRecord{key, false, "", v.plain.value, v.plain.expiration})) {
      return std::nullopt;
    }
    return v;
  }
  for (auto it = v.dictionary.begin(); it != v.dictionary.end();) {
    const bool keep =
        it->second.expiration > now &&
        accept_entry(StoreRecord{key, true, it->first, it->second.value, it->second.expiration});
    it = keep ? std::next(it) : v.dictionary.erase(it);
  }
  if (v.dictionary.empty()) return std::nullopt;
  return v;
}

void DhtNode::store(const std::string& key, std::string value, Time expiration, StoreDone done) {
  store_many({StoreItem{key, std::nullopt, std::move(value), expiration}},
             [done = std::move(done)](std::vector<size_t> n) { done(n[0]); });
}

void DhtNode::store_subkey(const std::string& key, std::string subkey, std::string value,
                           Time expiration, StoreDone done) {
  store_many({StoreItem{key, std::move(subkey), std::move(value), expiration}},
             [done = std::move(done)](std::vector<size_t> n) { done(n[0]); });
}

void DhtNode::store_many(std::vector<StoreItem> items,
                         std::function<void(std::vector<size_t>)> done) {
  std::vector<StoreRecord> records;
  std::vector<size_t> origin;  // records[j] is items[origin[j]]
  const std::string* mark = signing_key_ ? &signing_key_->marker() : nullptr;
  for (size_t i = 0; i < items.size(); ++i) {
    StoreItem& it = items[i];
    if (mark) {
      const bool mine = it.key.find(*mark) != std::string::npos ||
                        (it.subkey && it.subkey->find(*mark) != std::string::npos);
      if (mine) {
        it.value = signing_key_->sign(it.key, it.subkey, it.value, it.expiration);
        rt_.metrics().count("dht_records_signed");
      }
    }
    const bool too_big = it.value.size() > options_.max_value_bytes() ||
                         (it.subkey && it.subkey->size() > options_.max_subkey_bytes());
    if (too_big) continue;  // every peer would refuse it: fails with 0 stores
    records.push_back(StoreRecord{DhtId::from_key(it.key), it.subkey.has_value(),
                                  it.subkey.value_or(""), std::move(it.value), it.expiration});
    origin.push_back(i);
  }
  const size_t n_items = items.size();
  store_records(std::move(records),
                [this, origin, n_items, done = std::move(done)](std::vector<size_t> stored) {
                  std::vector<size_t> out(n_items, 0);
                  for (size_t j = 0; j < origin.size(); ++j) out[origin[j]] = stored[j];
                  for (size_t n : out)
                    rt_.metrics().count(n > 0 ? "dht_store_ok" : "dht_store_failed");
                  done(std::move(out));
                });
}

void DhtNode::store_records(std::vector<StoreRecord> records,
                            std::function<void(std::vector<size_t>)> done) {
  std::vector<DhtId> keys;
  std::map<DhtId, size_t> key_index;
  for (const StoreRecord& r : records) {
    if (key_index.emplace(r.key, keys.size()).second) keys.push_back(r.key);
  }
  lookup(keys, Want::kNodes,
         [this, key_index, records = std::move(records), done = std::move(done)](
             std::vector<TraverseResult> results, std::vector<Found>) mutable {
           std::vector<std::vector<Contact>> targets(records.size());
           std::vector<size_t> local(records.size(), 0);
           const size_t replicas = options_.replicas();
           for (size_t i = 0; i < records.size(); ++i) {
             const DhtId& key = records[i].key;
             std::vector<Contact> nearest = results[key_index.at(key)].nearest;
             bool here = false;
             if (!options_.client_mode()) {
               here = nearest.size() < replicas || closer(id_, nearest[replicas - 1].id, key);
             }
             const size_t remote = here ? replicas - 1 : replicas;
             if (nearest.size() > remote) nearest.resize(remote);
             targets[i] = std::move(nearest);
             if (here && store_local(records[i], false).ok()) local[i] = 1;
           }
           send_stores(std::move(records), std::move(targets), false,
                       [local, done = std::move(done)](std::vector<size_t> stored) {
                         for (size_t i = 0; i < stored.size(); ++i) stored[i] += local[i];
                         done(std::move(stored));
                       });
         });
}

void DhtNode::send_stores(std::vector<StoreRecord> records,
                          std::vector<std::vector<Contact>> targets, bool in_cache,
                          std::function<void(std::vector<size_t>)> done) {
  CT_CHECK(records.size() == targets.size());
  std::map<PeerId, std::pair<Contact, std::vector<size_t>>> per_peer;
  for (size_t i = 0; i < targets.size(); ++i) {
    for (const Contact& c : targets[i]) {
      auto& entry = per_peer[c.peer];
      entry.first = c;
      entry.second.push_back(i);
    }
  }
  struct State {
    std::vector<size_t> stored;
    size_t remaining = 0;
    std::function<void(std::vector<size_t>)> done;
  };
  auto st = std::make_shared<State>();
  st->stored.assign(records.size(), 0);
  st->done = std::move(done);
  const size_t batch = options_.max_keys_per_request();
  for (const auto& [peer, entry] : per_peer)
    st->remaining += (entry.second.size() + batch - 1) / batch;
  if (st->remaining == 0) {
    later(Time(0), [st] { st->done(std::move(st->stored)); });
    return;
  }
  auto one_done = [st] {
    if (--st->remaining == 0) st->done(std::move(st->stored));
  };
  std::weak_ptr<bool> alive = alive_;
  for (const auto& [peer, entry] : per_peer) {
    const Contact c = entry.first;
    for (size_t from = 0; from < entry.second.size(); from += batch) {
      std::vector<size_t> idx(entry.second.begin() + from,
                              entry.second.begin() + std::min(from + batch, entry.second.size()));
      if (blacklisted(c.peer)) {
        later(Time(0), one_done);
        continue;
      }
      StoreRequest req{id_, options_.client_mode(), in_cache, {}};
      for (size_t i : idx) req.records.push_back(records[i]);
      rt_.metrics().count("dht_store_requests");
      rpc_.call(c.peer, encode_store_request(req), call_options(),
                [this, alive, st, c, idx, one_done](Result<Message> r) {
                  auto a = alive.lock();
                  if (!a || !*a) return;
                  auto resp = r.ok() ? decode_store_response(r.value(), idx.size(), limits_)
                                     : Result<StoreResponse>(r.status());
                  if (resp.ok()) {
                    saw(Contact{resp->responder, c.peer}, false);
                    for (size_t j = 0; j < idx.size(); ++j) {
                      if (resp->refusals[j].empty()) ++st->stored[idx[j]];
                    }
                  } else {
                    call_failed(c.peer, c.id, r);
                  }
                  one_done();
                });
    }
  }
}

}  // namespace crowdtrain::dht
