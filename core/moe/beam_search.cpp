// Beam search over the grid of declared experts, level by level, all samples of a call together.
#include "core/moe/beam_search.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/moe/declare.h"

namespace crowdtrain::moe {
namespace {

// A beam entry: a prefix ("ffn.3.") or, at the last level, an expert with its server.
struct Candidate {
  double score = 0;
  std::string name;  // prefix, or uid at the last level
  PeerId server = kNoPeer;
};

bool better(const Candidate& a, const Candidate& b) {
  return a.score != b.score ? a.score > b.score : a.name < b.name;
}

// Keeps the `n` best of `c`, best first.
void keep_best(std::vector<Candidate>& c, size_t n) {
  n = std::min(n, c.size());
  std::partial_sort(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(n), c.end(), better);
  c.resize(n);
}

// A coordinate as a subkey: decimal, no leading zero, below `size`.
std::optional<int64_t> parse_coordinate(const std::string& s, uint32_t size) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v >= static_cast<int64_t>(size)) return std::nullopt;
  return v;
}

// One directory entry: (coordinate, server) from subkey "<coord>" with the server as the value,
// or, at the last level, "<coord>.<server>"; nullopt for anything malformed.
std::optional<std::pair<int64_t, PeerId>> parse_entry(const std::string& subkey,
                                                      const std::string& value, uint32_t size,
                                                      bool last) {
  const size_t dot = last ? subkey.find('.') : std::string::npos;
  auto coord = parse_coordinate(subkey.substr(0, dot), size);
  auto server =
      parse_server_value(dot == std::string::npos ? value : without_owner(subkey.substr(dot + 1)));
  if (!coord || !server) return std::nullopt;
  return std::make_pair(*coord, *server);
}

}  // namespace

void DhtExpertDirectory::get_many(std::vector<std::string> keys,
                                  std::function<void(std::vector<std::optional<Dict>>)> done) {
  node_.get_many(
      std::move(keys),
      [done = std::move(done)](std::vector<Result<dht::DhtValue>> values) {
        std::vector<std::optional<Dict>> out(values.size());
        for (size_t i = 0; i < values.size(); ++i) {
          if (!values[i].ok() || !values[i]->is_dictionary) continue;
          Dict dict;
          for (const auto& [subkey, entry] : values[i]->dictionary) {
            dict[subkey] = std::string(dht::payload_of(entry.value));  // without a signature
          }
          if (!dict.empty()) out[i] = std::move(dict);
        }
        done(std::move(out));
      },
      latest_);
}

struct BeamSearch::Search {
  std::vector<std::vector<std::vector<double>>> scores;
  size_t k = 0;
  size_t beam = 0;
  size_t level = 0;
  std::vector<std::vector<Candidate>> beams;  // per sample: prefixes at `level`, best first
  Done done;
  Time started{0};
  std::optional<TimerId> timer;
  bool finished = false;
};

BeamSearch::BeamSearch(Runtime& rt, ExpertDirectory& directory, ExpertGrid grid,
                       BeamSearchOptions options)
    : rt_(rt),
      directory_(directory),
      grid_(std::move(grid)),
      options_(options),
      alive_(std::make_shared<bool>(true)) {
  CT_CHECK(grid_.check().ok());
  CT_CHECK(options_.timeout() > Time(0));
}

BeamSearch::~BeamSearch() { *alive_ = false; }

Status BeamSearch::check_scores(const std::vector<std::vector<std::vector<double>>>& scores) const {
  const std::string where = "beam search over \"" + grid_.prefix + "\": ";
  for (size_t s = 0; s < scores.size(); ++s) {
    if (scores[s].size() != grid_.dims()) {
      return Status::error(where + "sample " + std::to_string(s) + " has scores for " +
                           std::to_string(scores[s].size()) + " dimensions, the grid has " +
                           std::to_string(grid_.dims()));
    }
    for (size_t d = 0; d < grid_.dims(); ++d) {
      if (scores[s][d].size() != grid_.sizes[d]) {
        return Status::error(where + "sample " + std::to_string(s) + " dimension " +
                             std::to_string(d) + " has " + std::to_string(scores[s][d].size()) +
                             " scores, the grid has " + std::to_string(grid_.sizes[d]) +
                             " coordinates");
      }
      for (size_t i = 0; i < scores[s][d].size(); ++i) {
        if (!std::isfinite(scores[s][d][i])) {
          return Status::error(where + "sample " + std::to_string(s) + " dimension " +
                               std::to_string(d) + " coordinate " + std::to_string(i) +
                               " has a non-finite score");
        }
      }
    }
  }
  return Status();
}

void BeamSearch::find(std::vector<std::vector<std::vector<double>>> scores, size_t k, Done done) {
  rt_.metrics().count("moe_beam_searches");
  auto search = std::make_shared<Search>();
  search->k = k;
  search->beam = options_.beam_size() == 0 ? k : options_.beam_size();
  search->done = std::move(done);
  search->started = rt_.now();
  Status status = check_scores(scores);
  if (status.ok() && scores.size() * search->beam > options_.max_keys_per_level()) {
    status = Status::error("beam search over \"" + grid_.prefix +
                           "\": " + std::to_string(scores.size()) + " samples x beam " +
                           std::to_string(search->beam) + " exceed the limit of " +
                           std::to_string(options_.max_keys_per_level()) + " keys per level");
  }
  const size_t samples = scores.size();
  search->scores = std::move(scores);
  if (!status.ok() || k == 0 || samples == 0) {
    Result<std::vector<std::vector<FoundExpert>>> result =
        status.ok() ? Result<std::vector<std::vector<FoundExpert>>>(
                          std::vector<std::vector<FoundExpert>>(samples))
                    : Result<std::vector<std::vector<FoundExpert>>>(status);
    rt_.schedule(Time(0), [this, alive = alive_, search, result = std::move(result)]() mutable {
      if (*alive) finish(*search, std::move(result));
    });
    return;
  }
  search->beams.assign(samples, {Candidate{0.0, grid_.prefix + ".", kNoPeer}});
  search->timer = rt_.schedule(options_.timeout(), [this, alive = alive_, search] {
    if (!*alive || search->finished) return;
    search->finished = true;
    rt_.metrics().count("moe_beam_timeouts");
    search->done(Status::timed_out("beam search over \"" + grid_.prefix + "\": no result after " +
                                   std::to_string(to_seconds(options_.timeout())) +
                                   " s (at level " + std::to_string(search->level) + " of " +
                                   std::to_string(grid_.dims()) + ")"));
  });
  ask(std::move(search));
}

void BeamSearch::ask(std::shared_ptr<Search> search) {
  std::set<std::string> distinct;
  for (const auto& beam : search->beams) {
    for (const auto& c : beam) {
      if (!negatively_cached(c.name)) distinct.insert(c.name);
    }
  }
  std::vector<std::string> keys(distinct.begin(), distinct.end());
  if (keys.empty()) {  // every prefix is known to be empty: go on without asking
    rt_.schedule(Time(0), [this, alive = alive_, search] {
      if (*alive) on_answers(search, {}, {});
    });
    return;
  }
  rt_.metrics().count("moe_beam_lookups", static_cast<int64_t>(keys.size()));
  directory_.get_many(keys, [this, alive = alive_, search, keys](
                                std::vector<std::optional<ExpertDirectory::Dict>> answers) mutable {
    if (*alive) on_answers(search, std::move(keys), std::move(answers));
  });
}

void BeamSearch::on_answers(std::shared_ptr<Search> search, std::vector<std::string> keys,
                            std::vector<std::optional<ExpertDirectory::Dict>> answers) {
  if (search->finished) return;  // timed out: a late answer
  CT_CHECK(answers.size() == keys.size());
  const size_t level = search->level;
  const bool last = level + 1 == grid_.dims();
  // Each asked prefix's well-formed successors: coordinate -> the servers that declared it (at
  // the last level every replica has its own entry "<coord>.<server>"; a plain "<coord>" entry
  // names its server in the value).
  std::map<std::string, std::map<int64_t, std::vector<PeerId>>> successors;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto& out = successors[keys[i]];
    if (answers[i]) {
      for (const auto& [subkey, value] : *answers[i]) {
        auto entry = parse_entry(subkey, value, grid_.sizes[level], last);
        if (entry) {
          out[entry->first].push_back(entry->second);
        } else {
          rt_.metrics().count("moe_beam_bad_entries");
        }
      }
    }
    if (out.empty()) remember_empty(keys[i]);
  }
  for (size_t s = 0; s < search->beams.size(); ++s) {
    std::vector<Candidate> next;
    for (const auto& prefix : search->beams[s]) {
      auto it = successors.find(prefix.name);
      if (it == successors.end()) continue;  // negatively cached
      for (const auto& [coord, servers] : it->second) {
        const double score = prefix.score + search->scores[s][level][static_cast<size_t>(coord)];
        const std::string c = std::to_string(coord);
        // One replica per expert and search, drawn at random: load spreads over the replicas,
        // and a dead one is only some of the calls until its declaration expires.
        const PeerId server =
            servers.size() == 1 ? servers[0] : servers[rt_.rng().uniform_int(servers.size())];
        next.push_back(Candidate{score, last ? prefix.name + c : prefix.name + c + ".", server});
      }
    }
    keep_best(next, last ? search->k : search->beam);
    search->beams[s] = std::move(next);
  }
  if (!last) {
    ++search->level;
    ask(std::move(search));
    return;
  }
  std::vector<std::vector<FoundExpert>> result(search->beams.size());
  for (size_t s = 0; s < result.size(); ++s) {
    for (auto& c : search->beams[s]) {
      result[s].push_back(FoundExpert{ExpertRef{std::move(c.name), c.server}, c.score});
    }
  }
  rt_.metrics().observe("moe_beam_search_s", to_seconds(rt_.now() - search->started));
  finish(*search, std::move(result));
}

void BeamSearch::finish(Search& search, Result<std::vector<std::vector<FoundExpert>>> result) {
  if (search.finished) return;
  search.finished = true;
  if (search.timer) rt_.cancel(*search.timer);
  search.done(std::move(result));
}

bool BeamSearch::negatively_cached(const std::string& prefix) const {
  auto it = empty_until_.find(prefix);
  return it != empty_until_.end() && it->second > rt_.now();
}

void BeamSearch::remember_empty(const std::string& prefix) {
  if (options_.negative_cache() <= Time(0)) return;
  if (empty_until_.size() >= options_.max_negative_cache()) {
    const Time now = rt_.now();
    for (auto it = empty_until_.begin(); it != empty_until_.end();) {
      it = it->second <= now ? empty_until_.erase(it) : std::next(it);
    }
    if (empty_until_.size() >= options_.max_negative_cache()) return;  // full of live entries
  }
  empty_until_[prefix] = rt_.now() + options_.negative_cache();
}

}  // namespace crowdtrain::moe
