#include "core/dht/traverse.h"

#include <map>
#include <memory>
#include <set>

namespace crowdtrain::dht {
namespace {

struct Candidate {
  Contact contact;
  int depth = 1;
};

struct KeyState {
  DhtId key;
  std::map<DhtId, Candidate> candidates;  // by distance to key: not asked yet
  std::map<DhtId, Candidate> nearest;     // by distance to key: answered; at most beam
  std::set<DhtId> seen;                   // ids ever made candidates
  size_t in_flight = 0;
  bool stopped = false;
  bool finished = false;
};

class Traversal : public std::enable_shared_from_this<Traversal> {
 public:
  Traversal(TraverseInput input, TraverseOptions options, FindFn find, TraverseDone done)
      : options_(options), exclude_(input.exclude), find_(std::move(find)), done_(std::move(done)) {
    CT_CHECK(options_.alpha > 0 && options_.beam > 0 && options_.max_in_flight > 0);
    CT_CHECK(options_.max_keys_per_call > 0);
    CT_CHECK(input.initial.size() == 1 || input.initial.size() == input.keys.size());
    keys_.resize(input.keys.size());
    for (size_t i = 0; i < keys_.size(); ++i) {
      keys_[i].key = input.keys[i];
      for (const Contact& c : input.initial[input.initial.size() == 1 ? 0 : i]) {
        add_candidate(keys_[i], c, 1);
      }
    }
  }

  void pump();

 private:
  bool useful(const KeyState& k, const DhtId& distance) const {
    return k.nearest.size() < options_.beam || distance < std::prev(k.nearest.end())->first;
  }
  void add_candidate(KeyState& k, const Contact& c, int depth) {
    if ((exclude_ && c.id == *exclude_) || failed_.count(c.id) || !k.seen.insert(c.id).second) {
      return;
    }
    const DhtId d = c.id ^ k.key;
    if (useful(k, d)) k.candidates.emplace(d, Candidate{c, depth});
  }
  // Drops failed and useless candidates from the front; true when a useful one is left.
  bool has_useful_candidate(KeyState& k) {
    while (!k.candidates.empty()) {
      auto it = k.candidates.begin();
      if (failed_.count(it->second.contact.id) == 0 && useful(k, it->first)) return true;
      if (!useful(k, it->first)) {
        k.candidates.clear();  // sorted: everything after is farther still
        return false;
      }
      k.candidates.erase(it);
    }
    return false;
  }
  void update_finished(KeyState& k) {
    if (k.finished) return;
    if (k.stopped) {
      k.finished = true;
      return;
    }
    const bool budget_left = requests_ < options_.max_requests;
    if (k.in_flight == 0 && (!budget_left || !has_useful_candidate(k))) k.finished = true;
  }
  bool launch_one();
  void on_reply(const Contact& peer, const std::vector<size_t>& indices, int depth,
                std::optional<std::vector<FindReply>> replies);
  void complete();

  TraverseOptions options_;
  std::optional<DhtId> exclude_;
  FindFn find_;
  TraverseDone done_;
  std::vector<KeyState> keys_;
  std::set<DhtId> failed_;
  size_t in_flight_ = 0;
  size_t requests_ = 0;
  TraverseStats stats_;
  bool pumping_ = false;
  bool again_ = false;
  bool completed_ = false;
};

void Traversal::pump() {
  if (pumping_) {
    again_ = true;
    return;
  }
  pumping_ = true;
  auto keep_alive = shared_from_this();
  do {
    again_ = false;
    if (completed_) break;
    while (in_flight_ < options_.max_in_flight && requests_ < options_.max_requests) {
      if (!launch_one()) break;
      if (completed_) break;
    }
    bool all_finished = true;
    for (KeyState& k : keys_) {
      update_finished(k);
      all_finished = all_finished && k.finished;
    }
    if (all_finished && !completed_) complete();
  } while (again_ && !completed_);
  pumping_ = false;
}

bool Traversal::launch_one() {
  // The unfinished key with the fewest requests in flight (ties: the first) that has a candidate.
  KeyState* pick = nullptr;
  size_t pick_index = 0;
  for (size_t i = 0; i < keys_.size(); ++i) {
    KeyState& k = keys_[i];
    if (k.finished || k.stopped || k.in_flight >= options_.alpha) continue;
    if (!has_useful_candidate(k)) continue;
    if (!pick || k.in_flight < pick->in_flight) {
      pick = &k;
      pick_index = i;
    }
  }
  if (!pick) return false;
  const Candidate c = pick->candidates.begin()->second;
  pick->candidates.erase(pick->candidates.begin());
  std::vector<size_t> indices{pick_index};
  // Other keys that would ask this peer too ride along in the same request.
  for (size_t i = 0; i < keys_.size() && indices.size() < options_.max_keys_per_call; ++i) {
    KeyState& k = keys_[i];
    if (i == pick_index || k.finished || k.stopped || k.in_flight >= options_.alpha) continue;
    auto it = k.candidates.find(c.contact.id ^ k.key);
    if (it == k.candidates.end() || !useful(k, it->first)) continue;
    k.candidates.erase(it);
    indices.push_back(i);
  }
  std::vector<DhtId> ids;
  ids.reserve(indices.size());
  for (size_t i : indices) {
    ids.push_back(keys_[i].key);
    ++keys_[i].in_flight;
    stats_.max_key_in_flight = std::max(stats_.max_key_in_flight, keys_[i].in_flight);
  }
  ++in_flight_;
  ++requests_;
  stats_.requests = requests_;
  stats_.max_in_flight = std::max(stats_.max_in_flight, in_flight_);
  auto self = shared_from_this();
  auto answered = std::make_shared<bool>(false);
  find_(c.contact, ids,
        [self, answered, peer = c.contact, indices,
         depth = c.depth](std::optional<std::vector<FindReply>> replies) {
          if (*answered) return;  // a second call is a bug in `find`; ignore it
          *answered = true;
          self->on_reply(peer, indices, depth, std::move(replies));
        });
  return true;
}

void Traversal::on_reply(const Contact& peer, const std::vector<size_t>& indices, int depth,
                         std::optional<std::vector<FindReply>> replies) {
  CT_CHECK(in_flight_ > 0);
  --in_flight_;
  for (size_t i : indices) --keys_[i].in_flight;
  if (completed_) return;
  if (!replies || replies->size() != indices.size()) {
    ++stats_.failures;
    failed_.insert(peer.id);
  } else {
    for (size_t j = 0; j < indices.size(); ++j) {
      KeyState& k = keys_[indices[j]];
      FindReply& r = (*replies)[j];
      if (k.finished) continue;
      k.nearest.emplace(peer.id ^ k.key, Candidate{peer, depth});
      if (k.nearest.size() > options_.beam) k.nearest.erase(std::prev(k.nearest.end()));
      for (const Contact& n : r.nearest) add_candidate(k, n, depth + 1);
      if (r.stop) k.stopped = true;
    }
  }
  pump();
}

void Traversal::complete() {
  completed_ = true;
  std::vector<TraverseResult> results(keys_.size());
  for (size_t i = 0; i < keys_.size(); ++i) {
    const KeyState& k = keys_[i];
    results[i].stopped = k.stopped;
    for (const auto& [d, c] : k.nearest) results[i].nearest.push_back(c.contact);
    if (!k.nearest.empty()) results[i].hops = k.nearest.begin()->second.depth;
  }
  TraverseDone done = std::move(done_);
  find_ = nullptr;  // drop whatever `find` holds; in-flight callbacks only do bookkeeping now
  done(std::move(results), stats_);
}

}  // namespace

void traverse(TraverseInput input, TraverseOptions options, FindFn find, TraverseDone done) {
  if (input.initial.empty()) input.initial.emplace_back();
  auto t = std::make_shared<Traversal>(std::move(input), options, std::move(find), std::move(done));
  t->pump();
}

}  // namespace crowdtrain::dht
