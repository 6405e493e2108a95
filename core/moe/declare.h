// How an expert server declares its experts in the DHT (hivemind's declare_experts), and how the
// values read back are parsed. For uid "ffn.3.17" hosted by server 5 the server stores
//   key "ffn."     subkey "3"  value "5"   (first coordinates that have a live expert)
//   key "ffn.3."   subkey "17" value "5"   (the last level: the expert and a server hosting it)
//   key "ffn.3.17" subkey "5"  value ""    (every replica of that expert)
// ExpertDeclarer re-stores them periodically with fresh expirations (hivemind: expire after 60 s,
// re-declare every 30 s). It borrows the Runtime and the DhtNode (both outlive it); callbacks that
// come after it is destroyed are dropped. Single-threaded, on the runtime's loop.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/dht/node.h"
#include "core/options.h"
#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain::moe {

// The DHT records that declare `uids` (each must parse with parse_expert_uid: CT_CHECKed) as
// hosted by `server` until `expiration`: deduplicated (one item per key and subkey) and sorted by
// key, then subkey.
// With an `owner` marker (core/dht/record_signing.h), the entries that name the server (the
// last level's "<coord>.<server>" and the uid's "<server>") end with it, so that the DHT takes them
// only signed by that owner: no other peer can overwrite them.
std::vector<dht::StoreItem> declaration_items(const std::vector<std::string>& uids, PeerId server,
                                              Time expiration, const std::string& owner = "");

// A declaration subkey without its owner marker, when it ends with one.
std::string without_owner(const std::string& subkey);

// A server id as declared: decimal digits only, no sign, no leading zero (except "0"), below
// kNoPeer. nullopt for anything else.
std::optional<PeerId> parse_server_value(const std::string& value);

// Builder style: ExpertDeclarerOptions().period(30s).expiration(60s).
class ExpertDeclarerOptions {
#define CT_DECLARER_OPTION(type, name, init) CT_OPTION(ExpertDeclarerOptions, type, name, init)

  CT_DECLARER_OPTION(Time, period, std::chrono::seconds(30))      // between declarations
  CT_DECLARER_OPTION(Time, expiration, std::chrono::seconds(60))  // records live this long
  CT_DECLARER_OPTION(size_t, max_uids, 4096)                      // uids one server declares
  // Sign the entries that name this server with the DHT node's key (when it has one).
  CT_DECLARER_OPTION(bool, sign, false)
#undef CT_DECLARER_OPTION
};

// Declares this peer's experts now (start()) and every period, counting per stored item
// moe_declare_ok (some replica took it) or moe_declare_failed (none did).
class ExpertDeclarer {
 public:
  // `uids` must parse (CT_CHECKed) and number at most options.max_uids (CT_CHECKed); use add()
  // for uids that come from outside and need a reasoned refusal.
  ExpertDeclarer(Runtime& rt, dht::DhtNode& node, std::vector<std::string> uids,
                 ExpertDeclarerOptions options = ExpertDeclarerOptions());
  ~ExpertDeclarer();
  ExpertDeclarer(const ExpertDeclarer&) = delete;
  ExpertDeclarer& operator=(const ExpertDeclarer&) = delete;

  // Declares every uid now, then every period until destroyed. A second call does nothing.
  void start();
  // Adds uids (a server taking over an orphaned expert) and, once started, declares them at once.
  // An error (naming the uid) when one does not parse or the limit would be passed; nothing is
  // added then.
  Status add(const std::vector<std::string>& uids);
  // Stops declaring `uids`; their records expire on their own within `expiration`.
  void remove(const std::vector<std::string>& uids);

  const std::set<std::string>& uids() const { return uids_; }
  uint64_t rounds() const { return rounds_; }  // declarations sent so far (periodic and add())

 private:
  void declare(const std::vector<std::string>& uids);
  void tick();

  Runtime& rt_;
  dht::DhtNode& node_;
  ExpertDeclarerOptions options_;
  std::set<std::string> uids_;
  bool started_ = false;
  TimerId timer_ = 0;
  uint64_t rounds_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::moe
