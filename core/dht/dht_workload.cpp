// The DHT workload's per-peer app: see dht_workload.h.
#include "core/dht/dht_workload.h"

#include <algorithm>

#include "core/dht/dht_live_keys.h"
#include "core/invariants.h"

namespace crowdtrain::dht {
namespace {

// A bootstrap that found no live peer is retried after this long.
constexpr double kBootstrapRetryS = 5.0;

DhtOptions options_of(const DhtWorkloadOptions& s, bool client) {
  return DhtOptions()
      .client_mode(client)
      .k(s.k)
      .alpha(s.alpha)
      .replicas(s.replicas)
      .rpc_timeout(from_seconds(s.rpc_timeout_s))
      .rpc_retries(s.rpc_retries)
      .refresh_period(from_seconds(s.refresh_s))
      .republish_period(from_seconds(s.republish_s))
      .cache_on_lookup(s.cache_on_lookup)
      .handoff(s.handoff);
}

class DhtWorkloadApp final : public PeerApp {
 public:
  DhtWorkloadApp(Runtime& rt, const DhtWorkloadOptions& spec, const WorkloadContext& context,
                 uint32_t world_peers)
      : rt_(rt),
        spec_(spec),
        context_(context),
        world_peers_(world_peers),
        shared_(context.shared_as<DhtWorkloadShared>()),
        rpc_(rt),
        node_(std::make_unique<DhtNode>(rt, rpc_, DhtId::random(rt.rng()),
                                        options_of(spec, context.client))),
        value_(spec.value_bytes, 'v'),
        live_keys_(spec) {}

  ~DhtWorkloadApp() override {
    if (shared_) shared_->detach(rt_.self(), node_.get());
  }

  void start() override {
    if (shared_) {
      // The oracle learns who accepted which key into primary storage.
      shared_->attach(rt_.self(), node_.get());
      node_->set_store_observer([this](const DhtId& key) { shared_->add_holder(key, rt_.self()); });
    }
    node_->start();
    // Peers present from the start spread their bootstraps, as a network that grows would.
    double delay = 0.0;
    if (rt_.now() == Time(0) && spec_.bootstrap_spread_s > 0.0) {
      delay = rt_.rng().uniform(0.0, spec_.bootstrap_spread_s);
    }
    rt_.schedule(from_seconds(delay), [this] { bootstrap(); });
  }

  void on_message(PeerId from, Message msg) override {
    if (!rpc_.handle(from, std::move(msg))) rt_.metrics().count("dht_unexpected_messages");
  }

 private:
  // Whether a live peer holds `key` now: 1 or 0, -1 where the world attached no oracle.
  int live_replica(const std::string& key) const {
    return shared_ ? (shared_->live_replica(DhtId::from_key(key)) ? 1 : 0) : -1;
  }

  // Gets whose key a live peer held (the oracle's view; the liveness goal reads them).
  void count_live_replica(bool ok, int live) {
    if (live > 0) rt_.metrics().count("dht_get_live_replica");
    if (!ok) {
      rt_.metrics().count(live > 0 ? "dht_get_failed_with_live_replica"
                                   : "dht_get_failed_no_live_replica");
    }
  }

  // Safety (core/invariants.h): a get returns no entry that has expired, nor one whose expiry is
  // later than any store could have set (stored at the latest now, for expiration_s).
  bool check_not_expired(const std::string& key, const DhtValue& v) {
    const Time now = rt_.now();
    const Time latest = now + from_seconds(spec_.expiration_s);
    bool fresh = true;
    const auto check = [&](const ValueEntry& e) {
      fresh = fresh && e.expiration > now && e.expiration <= latest;
    };
    if (v.is_dictionary) {
      for (const auto& [sub, e] : v.dictionary) check(e);
    } else {
      check(v.plain);
    }
    return check_invariant(rt_.metrics(), fresh, "dht_get_not_expired", [&] {
      return "key '" + key + "': an entry expiring at " +
             std::to_string(to_seconds(v.expiration())) + " s returned at " +
             std::to_string(to_seconds(now)) + " s";
    });
  }

  // keys "oracle": every store writes value_, so a get returns value_ in every entry, unexpired.
  void check_stored_value(const std::string& key, const DhtValue& v) {
    bool same = true;
    if (v.is_dictionary) {
      for (const auto& [sub, e] : v.dictionary) same = same && e.value == value_;
    } else {
      same = v.plain.value == value_;
    }
    check_invariant(rt_.metrics(), same, "dht_get_value",
                    [&] { return "key '" + key + "': a value no peer stored"; });
    check_not_expired(key, v);
  }

  void note_holder(const DhtId& key) {
    if (node_->storage().get(key).has_value()) shared_->add_holder(key, rt_.self());
  }

  std::vector<PeerId> bootstrap_peers() {
    const size_t n = spec_.bootstrap_peers;
    if (shared_) return shared_->pick_ready(n, rt_.self(), rt_.rng());
    const auto& from =
        context_.bootstrap && !context_.bootstrap->empty() ? context_.bootstrap : context_.peers;
    std::vector<PeerId> out;
    if (!from) return out;
    for (size_t i = 0; i < 4 * n && out.size() < n && !from->empty(); ++i) {
      const PeerId p = (*from)[rt_.rng().uniform_int(from->size())];
      if (p != rt_.self() && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
    return out;
  }

  void bootstrap() {
    std::vector<PeerId> peers = bootstrap_peers();
    // With an oracle, no ready peer means this is the network's first node; without one, a node
    // that knows no other peer starts alone too (DhtNode::bootstrap's rule). A client never
    // starts a network (nobody could reach it): it waits for one.
    if (peers.empty() && context_.client) {
      rt_.metrics().count("dht_bootstrap_retries");
      rt_.schedule(from_seconds(kBootstrapRetryS), [this] { bootstrap(); });
      return;
    }
    node_->bootstrap(std::move(peers), [this](Status s) {
      if (!s.ok()) {
        rt_.metrics().count("dht_bootstrap_retries");
        rt_.schedule(from_seconds(kBootstrapRetryS), [this] { bootstrap(); });
        return;
      }
      // Others bootstrap from ready peers: a client is not one (it cannot be called).
      if (shared_ && !context_.client) shared_->set_ready(rt_.self());
      rt_.metrics().event("dht_ready", {{"routing_contacts", node_->routing_table().size()}},
                          EventDetail::kOperation);
      if (spec_.keys == DhtKeys::kSchedule) {  // the schedule every peer can compute
        live_store_due();
        schedule(spec_.get_rate_hz, [this] { do_live_get(); });
        return;
      }
      schedule(spec_.store_rate_hz, [this] { do_store(); });
      schedule(spec_.get_rate_hz, [this] { do_get(); });
    });
  }

  // Calls `op` at Poisson times of `rate_hz`, from warmup_s on.
  void schedule(double rate_hz, std::function<void()> op) {
    if (rate_hz <= 0.0) return;
    const double wait = std::max(0.0, spec_.warmup_s - to_seconds(rt_.now()));
    const double gap = rt_.rng().exponential(1.0 / rate_hz);
    rt_.schedule(from_seconds(wait + gap), [this, rate_hz, op = std::move(op)]() mutable {
      op();
      schedule(rate_hz, std::move(op));
    });
  }

  // ---- keys "oracle": keys and answers checked against the simulated world's oracle.

  void do_store() {
    std::vector<StoreItem> items;
    std::vector<bool> shared_name;
    const Time expiration = rt_.now() + from_seconds(spec_.expiration_s);
    for (uint32_t i = 0; i < spec_.batch; ++i) {
      StoreItem item;
      const bool dict =
          spec_.dictionary_fraction > 0.0 && rt_.rng().bernoulli(spec_.dictionary_fraction);
      if (dict) {
        item.key = "dict/" + std::to_string(rt_.rng().uniform_int(spec_.dictionary_keys));
        item.subkey = "peer" + std::to_string(rt_.self());
      } else if (spec_.key_space > 0) {
        item.key = "key/" + std::to_string(rt_.rng().uniform_int(spec_.key_space));
      } else {
        item.key = "key/" + std::to_string(rt_.self()) + "." + node_->id().short_hex() + "/" +
                   std::to_string(next_key_++);
      }
      item.value = value_;
      item.expiration = expiration;
      shared_name.push_back(dict || spec_.key_space > 0);
      items.push_back(std::move(item));
    }
    std::vector<std::string> keys;
    for (const StoreItem& it : items) keys.push_back(it.key);
    const Time started = rt_.now();
    node_->store_many(std::move(items), [this, keys, shared_name, expiration,
                                         started](std::vector<size_t> stored) {
      const double ms = to_millis(rt_.now() - started);
      rt_.metrics().observe("dht_store_ms", ms);
      for (size_t i = 0; i < keys.size(); ++i) {
        const bool ok = stored[i] > 0;
        rt_.metrics().observe("dht_store_replicas", static_cast<double>(stored[i]));
        if (ok) {
          shared_->add_stored(keys[i], expiration, shared_name[i]);
          note_holder(DhtId::from_key(keys[i]));  // this node may be one of the nearest
        }
        rt_.metrics().event("dht_store", {{"ok", ok ? 1 : 0}, {"replicas", stored[i]}, {"ms", ms}},
                            EventDetail::kOperation);
      }
    });
  }

  void do_get() {
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < spec_.batch; ++i) {
      const auto* k = shared_->pick_stored(rt_.rng(), rt_.now());
      if (k) keys.push_back(k->key);
    }
    if (keys.empty()) {
      rt_.metrics().count("dht_get_skipped_no_key");
      return;
    }
    const Time started = rt_.now();
    node_->get_many(keys, [this, keys, started](std::vector<Result<DhtValue>> values) {
      const double ms = to_millis(rt_.now() - started);
      rt_.metrics().observe("dht_get_ms", ms);
      for (size_t i = 0; i < keys.size(); ++i) {
        const bool ok = values[i].ok();
        if (ok) check_stored_value(keys[i], values[i].value());
        const int live = live_replica(keys[i]);  // keys "oracle": an oracle is attached
        count_live_replica(ok, live);
        rt_.metrics().event("dht_get", {{"ok", ok ? 1 : 0}, {"live_replica", live}, {"ms", ms}},
                            EventDetail::kOperation);
      }
    });
  }

  // ---- keys "schedule": stores on LiveKeySchedule, gets of what others stored (any world).

  // Runs every store operation that is due (those a late bootstrap missed too), then waits for
  // the next.
  void live_store_due() {
    while (live_keys_.store_time(rt_.self(), next_op_) <= rt_.now()) do_live_store(next_op_++);
    const Time next = live_keys_.store_time(rt_.self(), next_op_);
    if (next == Time::max()) return;
    rt_.schedule(next - rt_.now(), [this] { live_store_due(); });
  }

  void do_live_store(uint64_t op) {
    std::vector<StoreItem> items;
    const Time expiration = rt_.now() + from_seconds(spec_.expiration_s);
    for (uint32_t b = 0; b < spec_.batch; ++b) {
      LiveItem it = live_keys_.item(rt_.self(), op, b);
      items.push_back(
          StoreItem{std::move(it.key), std::move(it.subkey), std::move(it.value), expiration});
    }
    const Time started = rt_.now();
    node_->store_many(std::move(items), [this, op, started](std::vector<size_t> stored) {
      const double ms = to_millis(rt_.now() - started);
      rt_.metrics().observe("dht_store_ms", ms);
      for (size_t b = 0; b < stored.size(); ++b) {
        rt_.metrics().observe("dht_store_replicas", static_cast<double>(stored[b]));
        rt_.metrics().event("dht_store",
                            {{"ok", stored[b] > 0 ? 1 : 0},
                             {"replicas", stored[b]},
                             {"ms", ms},
                             {"op", op},
                             {"item", uint64_t{b}},
                             {"due_s", to_seconds(live_keys_.store_time(rt_.self(), op))}},
                            EventDetail::kOperation);
      }
    });
  }

  // Gets `batch` items that other peers' schedules say were stored at least a settling time ago
  // (long enough for a store's lookup through a few time-outs), and checks the answers. A get
  // event names the storer and when its store was due, so a test can tell keys of peers that died
  // before storing them.
  void do_live_get() {
    const Time settle = from_seconds(3 * spec_.rpc_timeout_s * (spec_.rpc_retries + 1));
    struct Want {
      PeerId storer;
      uint64_t op;
      Time due;
      LiveItem item;
    };
    std::vector<Want> plain, dict;
    for (uint32_t i = 0; world_peers_ > 1 && i < spec_.batch; ++i) {
      PeerId p = rt_.self();
      for (int tries = 0; tries < 8 && p == rt_.self(); ++tries) {
        p = static_cast<PeerId>(rt_.rng().uniform_int(world_peers_));
      }
      const uint64_t ops = p == rt_.self() ? 0 : live_keys_.ops_due(p, rt_.now() - settle);
      if (ops == 0) continue;
      const uint64_t op = rt_.rng().uniform_int(ops);
      const uint32_t b = static_cast<uint32_t>(rt_.rng().uniform_int(spec_.batch));
      Want w{p, op, live_keys_.store_time(p, op), live_keys_.item(p, op, b)};
      (w.item.subkey ? dict : plain).push_back(std::move(w));
    }
    if (plain.empty() && dict.empty()) {
      rt_.metrics().count("dht_get_skipped_no_key");
      return;
    }
    // Dictionaries ask the whole beam (latest): a copy cached before the storer's entry arrived
    // must not hide it.
    for (auto* wants : {&plain, &dict}) {
      if (wants->empty()) continue;
      std::vector<std::string> keys;
      for (const Want& w : *wants) keys.push_back(w.item.key);
      const Time started = rt_.now();
      node_->get_many(
          keys,
          [this, asked = *wants, started](std::vector<Result<DhtValue>> values) {
            const double ms = to_millis(rt_.now() - started);
            rt_.metrics().observe("dht_get_ms", ms);
            for (size_t i = 0; i < asked.size(); ++i) {
              const Want& w = asked[i];
              bool ok = values[i].ok();
              if (ok && !LiveKeySchedule::has_slot(w.item, values[i].value())) {
                ok = false;  // others' entries, not this one: a miss
                rt_.metrics().count("dht_get_subkey_missing");
              }
              if (ok) {
                ok = check_invariant(rt_.metrics(),
                                     LiveKeySchedule::matches(w.item, values[i].value()),
                                     "dht_get_value", [&] {
                                       return "key '" + w.item.key + "': not the value peer " +
                                              std::to_string(w.storer) + "'s schedule stored";
                                     });
                if (!ok) rt_.metrics().count("dht_get_wrong_value");
                if (ok) ok = check_not_expired(w.item.key, values[i].value());
              }
              rt_.metrics().count(ok ? "dht_live_get_ok" : "dht_live_get_failed");
              const int live = live_replica(w.item.key);
              if (live >= 0) count_live_replica(ok, live);
              rt_.metrics().event("dht_get",
                                  {{"ok", ok ? 1 : 0},
                                   {"live_replica", live},
                                   {"ms", ms},
                                   {"storer", w.storer},
                                   {"op", w.op},
                                   {"stored_at_s", to_seconds(w.due)},
                                   {"dictionary", w.item.subkey ? 1 : 0}},
                                  EventDetail::kOperation);
            }
          },
          /*latest=*/wants == &dict);
    }
  }

  Runtime& rt_;
  const DhtWorkloadOptions& spec_;
  WorkloadContext context_;
  uint32_t world_peers_;  // keys "schedule": the peers whose schedules are asked for
  std::shared_ptr<DhtWorkloadShared> shared_;
  RpcEndpoint rpc_;
  std::unique_ptr<DhtNode> node_;  // after rpc_: destroyed first
  std::string value_;
  uint64_t next_key_ = 0;
  LiveKeySchedule live_keys_;  // keys "schedule" only
  uint64_t next_op_ = 0;       // keys "schedule" only: this peer's next store operation
};

}  // namespace

Result<std::unique_ptr<PeerApp>> make_dht_workload_app(Runtime& rt, const DhtWorkloadOptions& spec,
                                                       const WorkloadContext& context,
                                                       uint32_t world_peers) {
  if (spec.keys == DhtKeys::kOracle && !context.shared_as<DhtWorkloadShared>()) {
    return json_error("workload.dht.keys",
                      "\"oracle\" draws the keys to get from the simulated world's record of "
                      "stores, which this world does not keep; use \"schedule\"");
  }
  return std::unique_ptr<PeerApp>(std::make_unique<DhtWorkloadApp>(rt, spec, context, world_peers));
}

}  // namespace crowdtrain::dht
