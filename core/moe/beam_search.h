// Finding the best alive experts of a grid for each sample (Learning@home's beam search over the
// DHT; hivemind's moe/client/beam_search.py). The search reads declarations (core/moe/declare.h)
// through an ExpertDirectory: level 0 asks "ffn." for the alive first coordinates, each later
// level asks the beam's prefixes "ffn.i." ... for their alive successors, keeping the beam_size
// best prefixes by summed score; the last level's values name the servers. All samples of one
// find() advance together, so each level costs one get_many of the distinct prefixes of every
// sample's beam. Unlike hivemind, the whole search has a time limit (hivemind issue #125).
// BeamSearch borrows the Runtime and the directory (both outlive it); answers that come after it
// is destroyed, or after a search timed out, are dropped. Single-threaded, on the runtime's loop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dht/node.h"
#include "core/moe/expert_uid.h"
#include "core/moe/mixture.h"
#include "core/options.h"

namespace crowdtrain::moe {

// Where declarations are read from: the DHT, or a map in tests.
class ExpertDirectory {
 public:
  using Dict = std::map<std::string, std::string>;  // subkey -> value
  virtual ~ExpertDirectory() = default;
  // For each key, its unexpired dictionary entries (nullopt when it holds none). `done` runs
  // once, later, on the runtime's loop — never inside get_many itself.
  virtual void get_many(std::vector<std::string> keys,
                        std::function<void(std::vector<std::optional<Dict>>)> done) = 0;
};

// The directory over a DHT node. `latest`: ask the whole lookup beam and merge every answer
// instead of taking the first (or a locally held) value (DhtNode::get_many's flag).
class DhtExpertDirectory final : public ExpertDirectory {
 public:
  explicit DhtExpertDirectory(dht::DhtNode& node, bool latest = false)
      : node_(node), latest_(latest) {}
  void get_many(std::vector<std::string> keys,
                std::function<void(std::vector<std::optional<Dict>>)> done) override;

 private:
  dht::DhtNode& node_;
  bool latest_;
};

// Builder style: BeamSearchOptions().beam_size(8).timeout(5s).
class BeamSearchOptions {
#define CT_BEAM_OPTION(type, name, init) CT_OPTION(BeamSearchOptions, type, name, init)

  CT_BEAM_OPTION(size_t, beam_size, 0)                            // 0 = k
  CT_BEAM_OPTION(Time, timeout, std::chrono::seconds(5))          // the whole search
  CT_BEAM_OPTION(Time, negative_cache, std::chrono::seconds(10))  // 0 = no negative cache
  CT_BEAM_OPTION(size_t, max_keys_per_level, 16384)  // samples x beam a find() may ask at once
  CT_BEAM_OPTION(size_t, max_negative_cache, 65536)  // prefixes remembered as empty
#undef CT_BEAM_OPTION
};

// ExpertFinder by beam search. Counters: moe_beam_searches (find() calls), moe_beam_lookups
// (keys asked), moe_beam_timeouts, moe_beam_bad_entries (entries whose subkey is not a coordinate
// inside the grid or whose value is not a server id); sample moe_beam_search_s (seconds per
// finished find()).
class BeamSearch final : public ExpertFinder {
 public:
  // `grid` must pass check() (CT_CHECKed).
  BeamSearch(Runtime& rt, ExpertDirectory& directory, ExpertGrid grid,
             BeamSearchOptions options = BeamSearchOptions());
  ~BeamSearch() override;
  BeamSearch(const BeamSearch&) = delete;
  BeamSearch& operator=(const BeamSearch&) = delete;

  // Per sample, up to k alive experts, best first, ties broken by uid. Scores must have the
  // grid's shape ([samples][dims][size of that dimension]) and be finite; otherwise an error
  // saying where. done(Status::timed_out(...)) once when the search passes options.timeout.
  void find(std::vector<std::vector<std::vector<double>>> scores, size_t k, Done done) override;

  const ExpertGrid& grid() const { return grid_; }
  const BeamSearchOptions& options() const { return options_; }

 private:
  struct Search;
  Status check_scores(const std::vector<std::vector<std::vector<double>>>& scores) const;
  // Asks the directory for the distinct prefixes of every sample's beam at `search`'s level.
  void ask(std::shared_ptr<Search> search);
  void on_answers(std::shared_ptr<Search> search, std::vector<std::string> keys,
                  std::vector<std::optional<ExpertDirectory::Dict>> answers);
  void finish(Search& search, Result<std::vector<std::vector<FoundExpert>>> result);
  bool negatively_cached(const std::string& prefix) const;
  void remember_empty(const std::string& prefix);

  Runtime& rt_;
  ExpertDirectory& directory_;
  ExpertGrid grid_;
  BeamSearchOptions options_;
  std::map<std::string, Time> empty_until_;  // the negative cache: prefix -> until when
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::moe
