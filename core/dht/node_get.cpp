// DhtNode's client side, part 2: get (with caching along the path), find_nearest, bootstrap.
#include <algorithm>

#include "core/dht/node.h"

namespace crowdtrain::dht {

namespace {

// Removes the entries of `v` that expired at or before `now`; false when nothing is left.
bool drop_expired_entries(DhtValue& v, Time now) {
  if (!v.is_dictionary) return v.plain.expiration > now;
  for (auto it = v.dictionary.begin(); it != v.dictionary.end();) {
    it = it->second.expiration > now ? std::next(it) : v.dictionary.erase(it);
  }
  return !v.dictionary.empty();
}

}  // namespace

void DhtNode::get(const std::string& key, GetDone done) {
  get_many({key},
           [done = std::move(done)](std::vector<Result<DhtValue>> r) { done(std::move(r[0])); });
}

void DhtNode::get_many(std::vector<std::string> keys,
                       std::function<void(std::vector<Result<DhtValue>>)> done, bool latest) {
  auto out = std::make_shared<std::vector<Result<DhtValue>>>();
  std::vector<DhtId> ask;                      // distinct ids to look up
  std::map<DhtId, std::vector<size_t>> slots;  // id -> positions in `keys`
  std::vector<DhtId> owned;                    // ids whose names name an owner
  for (size_t i = 0; i < keys.size(); ++i) {
    const DhtId id = DhtId::from_key(keys[i]);
    out->push_back(
        Status::error("dht get: key '" + keys[i] + "' (" + id.short_hex() + ") not found"));
    if (auto o = owner_named_by(keys[i]); o.ok() && *o) {
      auto [at, fresh] = owned_lookups_.emplace(id, std::make_pair(**o, 0));
      if (fresh || at->second.first == **o) {
        ++at->second.second;
        owned.push_back(id);
      }
    }
    auto own = latest ? std::nullopt : local_value(id);
    // A squatter's record held here for an owned key is not the owner's: look further.
    if (own && !owned.empty() && owned.back() == id) own = accept(id, std::move(*own));
    if (own) {
      out->back() = std::move(*own);
      continue;
    }
    auto& s = slots[id];
    if (s.empty()) ask.push_back(id);
    s.push_back(i);
  }
  auto finish = [this, out, owned, done = std::move(done)]() {
    for (const DhtId& id : owned) {
      auto at = owned_lookups_.find(id);
      if (at != owned_lookups_.end() && --at->second.second == 0) owned_lookups_.erase(at);
    }
    for (const auto& r : *out) rt_.metrics().count(r.ok() ? "dht_get_ok" : "dht_get_failed");
    done(std::move(*out));
  };
  if (ask.empty()) {
    later(Time(0), std::move(finish));
    return;
  }
  const Want want = latest ? Want::kAllValues : Want::kFirstValue;
  lookup(ask, want,
         [this, out, ask, slots, finish = std::move(finish)](std::vector<TraverseResult> results,
                                                             std::vector<Found> found) mutable {
           for (size_t j = 0; j < ask.size(); ++j) {
             // An answer may arrive after (part of) its value expired: drop what has.
             if (found[j].value && !drop_expired_entries(*found[j].value, rt_.now())) {
               found[j].value.reset();
             }
             for (size_t i : slots.at(ask[j])) {
               if (found[j].value) {
                 (*out)[i] = *found[j].value;
               } else {
                 (*out)[i] = Status::error((*out)[i].error() + " (" +
                                           std::to_string(results[j].nearest.size()) +
                                           " nearest peers asked)");
               }
             }
           }
           if (options_.cache_on_lookup()) cache_found(ask, results, found);
           finish();
         });
}

void DhtNode::cache_found(const std::vector<DhtId>& keys,
                          const std::vector<TraverseResult>& results,
                          const std::vector<Found>& found) {
  std::vector<StoreRecord> records;
  std::vector<std::vector<Contact>> targets;
  for (size_t j = 0; j < keys.size(); ++j) {
    if (!found[j].value) continue;
    const auto& holders = found[j].holders;
    // The nearest peer that answered without the value: the next lookup will likely ask it first.
    std::optional<Contact> miss;
    for (const Contact& c : results[j].nearest) {
      if (std::find(holders.begin(), holders.end(), c.id) == holders.end()) {
        miss = c;
        break;
      }
    }
    if (!miss) continue;
    const DhtValue& v = *found[j].value;
    if (v.is_dictionary) {
      for (const auto& [sub, e] : v.dictionary) {
        records.push_back(StoreRecord{keys[j], true, sub, e.value, e.expiration});
        targets.push_back({*miss});
      }
    } else {
      records.push_back(StoreRecord{keys[j], false, "", v.plain.value, v.plain.expiration});
      targets.push_back({*miss});
    }
  }
  if (records.empty()) return;
  rt_.metrics().count("dht_cache_stores", static_cast<int64_t>(records.size()));
  send_stores(std::move(records), std::move(targets), true, [](std::vector<size_t>) {});
}

void DhtNode::find_nearest(const DhtId& target, size_t count, ContactsDone done) {
  lookup({target}, Want::kNodes,
         [this, target, count, done = std::move(done)](std::vector<TraverseResult> results,
                                                       std::vector<Found>) {
           std::vector<Contact> out = std::move(results[0].nearest);
           if (!options_.client_mode()) {
             auto pos = std::find_if(out.begin(), out.end(),
                                     [&](const Contact& c) { return closer(id_, c.id, target); });
             out.insert(pos, contact());
           }
           if (out.size() > count) out.resize(count);
           done(std::move(out));
         });
}

void DhtNode::bootstrap(std::vector<PeerId> peers, StatusDone done) {
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  peers.erase(std::remove(peers.begin(), peers.end(), rt_.self()), peers.end());
  if (peers.empty()) {
    later(Time(0), [done = std::move(done)] { done(Status::ok_status()); });
    return;
  }
  struct State {
    size_t remaining = 0;
    size_t answered = 0;
    StatusDone done;
  };
  auto st = std::make_shared<State>();
  st->remaining = peers.size();
  st->done = std::move(done);
  std::weak_ptr<bool> alive = alive_;
  for (PeerId p : peers) {
    rpc_.call(
        p, encode_ping_request(PingRequest{id_, options_.client_mode()}), call_options(),
        [this, alive, st, p](Result<Message> r) {
          auto a = alive.lock();
          if (!a || !*a) return;
          auto pong =
              r.ok() ? decode_ping_response(r.value(), limits_) : Result<PingResponse>(r.status());
          if (pong.ok()) {
            ++st->answered;
            saw(Contact{pong->responder, p}, false);
          } else {
            call_failed(p, std::nullopt, r);
          }
          if (--st->remaining > 0) return;
          if (st->answered == 0) {
            rt_.metrics().count("dht_bootstrap_failed");
            st->done(Status::error("dht bootstrap: none of the initial peers answered (" +
                                   pong.error() + ")"));
            return;
          }
          lookup({id_}, Want::kNodes, [this, st](std::vector<TraverseResult>, std::vector<Found>) {
            rt_.metrics().count("dht_bootstrapped");
            st->done(Status::ok_status());
          });
        });
  }
}

}  // namespace crowdtrain::dht
