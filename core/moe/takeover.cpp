// ExpertGuardian (takeover.h).

#include "core/moe/takeover.h"

#include <utility>

namespace crowdtrain::moe {

ExpertGuardian::ExpertGuardian(Runtime& rt, RpcEndpoint& rpc, ExpertDirectory& directory,
                               std::vector<GuardedExpert> guarded, ExpertGuardianOptions options,
                               Adopt adopt)
    : rt_(rt),
      rpc_(rpc),
      directory_(directory),
      options_(std::move(options)),
      adopt_(std::move(adopt)),
      alive_(std::make_shared<bool>(true)) {
  for (auto& g : guarded) {
    Entry e;
    e.expert = std::move(g);
    entries_.push_back(std::move(e));
  }
}

ExpertGuardian::~ExpertGuardian() { *alive_ = false; }

void ExpertGuardian::start() {
  if (started_) return;
  started_ = true;
  tick();
}

size_t ExpertGuardian::guarded() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.adopted ? 0 : 1;
  return n;
}

std::optional<std::string> ExpertGuardian::backup_of(const std::string& uid) const {
  for (const Entry& e : entries_) {
    if (e.expert.uid == uid) return e.state;
  }
  return std::nullopt;
}

void ExpertGuardian::tick() {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!entries_[i].adopted) pull(i);
  }
  check();
  std::weak_ptr<bool> alive = alive_;
  rt_.schedule(options_.backup_interval, [this, alive] {
    if (!alive.expired()) tick();
  });
}

// Asks the next host in turn for the expert's state; a refusal or a time-out only counts.
void ExpertGuardian::pull(size_t i) {
  Entry& e = entries_[i];
  if (e.expert.hosts.empty()) return;
  const PeerId host = e.expert.hosts[e.next_host++ % e.expert.hosts.size()];
  std::weak_ptr<bool> alive = alive_;
  rpc_.call(host, encode_state_request({e.expert.uid}),
            CallOptions().with_timeout(options_.rpc_timeout),
            [this, alive, i, asked = rt_.now()](Result<Message> answer) {
              if (alive.expired()) return;
              Entry& e = entries_[i];
              auto state = answer.ok() ? decode_state_response(answer.value(), options_.limits)
                                       : Result<StateResponse>(answer.status());
              if (!state.ok() || state->uid != e.expert.uid) {
                rt_.metrics().count("moe_backup_failures");
                return;
              }
              if (e.state && asked < e.state_at) return;  // a newer copy came back first
              rt_.metrics().count("moe_backup_pulls");
              e.state = std::move(state->state);
              e.updates = state->updates;
              e.state_at = asked;
            });
}

void ExpertGuardian::check() {
  std::vector<std::string> keys;
  std::vector<size_t> asked;  // entries_ indices, in keys' order
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].adopted) continue;
    keys.push_back(entries_[i].expert.uid);
    asked.push_back(i);
  }
  if (keys.empty()) return;
  std::weak_ptr<bool> alive = alive_;
  directory_.get_many(keys, [this, alive, asked = std::move(asked)](
                                std::vector<std::optional<ExpertDirectory::Dict>> records) {
    if (!alive.expired()) on_records(asked, std::move(records));
  });
}

// An expert whose replica record has stayed empty for takeover_after is adopted (when a backup
// of it has arrived; until then it waits).
void ExpertGuardian::on_records(const std::vector<size_t>& asked,
                                std::vector<std::optional<ExpertDirectory::Dict>> records) {
  for (size_t j = 0; j < asked.size() && j < records.size(); ++j) {
    Entry& e = entries_[asked[j]];
    if (e.adopted) continue;
    if (records[j] && !records[j]->empty()) {
      e.missing_since.reset();
      continue;
    }
    if (!e.missing_since) e.missing_since = rt_.now();
    if (rt_.now() - *e.missing_since >= options_.takeover_after && e.state) adopt(e);
  }
}

void ExpertGuardian::adopt(Entry& e) {
  Status st = adopt_(e.expert.uid, *e.state);
  if (!st.ok()) {
    rt_.metrics().count("moe_takeover_failures");
    rt_.metrics().event("moe_takeover_failed", {{"uid", e.expert.uid}, {"why", st.message()}});
    return;
  }
  e.adopted = true;
  rt_.metrics().count("moe_takeovers");
  rt_.metrics().event("moe_takeover", {{"uid", e.expert.uid},
                                       {"state_age_s", to_seconds(rt_.now() - e.state_at)},
                                       {"updates", e.updates}});
}

}  // namespace crowdtrain::moe
