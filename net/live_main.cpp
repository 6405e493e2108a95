// `crowdtrain live`'s command line: parses the flags after the verb, loads the scenario and hands
// both to run_live() (net/live.cpp). Strict: every number is checked, unknown flags are errors
// (exit 2, with the usage text).
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "net/curve_keys.h"
#include "net/live.h"

namespace crowdtrain::net {

namespace {

constexpr int kMaxParentsSearched = 16;

const char* kLiveUsage =
    "usage: crowdtrain live [SCENARIO] --id N (--listen ADDR | --client)\n"
    "                       [--initial-peers ADDR,ADDR,...]\n"
    "                       [--swarm-key-file PATH] [--key-file PATH] [--identity-file PATH]\n"
    "                       [--duration S]\n"
    "                       [--epoch UNIX_SECONDS] [--out DIR] [--seed N] [--set key=value]...\n"
    "                       [--quiet]\n"
    "       crowdtrain live [SCENARIO] --id N --peers ID=ADDR,ID=ADDR,... [...]\n"
    "       crowdtrain live --key-file PATH --show-key\n"
    "  Open membership (no --peers): a peer knows only its own address (--listen, which others\n"
    "    must be able to reach) and a few peers' (--initial-peers; none for the first peer);\n"
    "    it learns the others' from the swarm, and peers join and leave as they please.\n"
    "  --client: a peer behind NAT or a firewall, which nobody can call (open membership only;\n"
    "    no --listen): it calls out and hears the answers on its own connections. Workloads run\n"
    "    it as a caller: a DHT node in client mode, an expert trainer (not a server); averaging\n"
    "    and training refuse it.\n"
    "    --id is the peer's place in the scenario (roles and data follow it), 0..peers.count-1.\n"
    "  --peers: a fixed peer list instead (every peer's id and address).\n"
    "  --swarm-key-file: the swarm's shared secret (created, mode 0600, when missing; copy it to\n"
    "    every host): only peers that prove they hold it may join.\n"
    "  --key-file: this peer's CurveZMQ keypair (created, mode 0600, when missing): every socket\n"
    "    is encrypted and authenticated. With --peers only the peers listed may connect, each\n"
    "    given with its public key, ID=ADDR#KEY; in open mode the swarm key decides (required)\n"
    "    and each initial peer is given with its public key, ADDR#KEY (--show-key prints this\n"
    "    peer's and exits). Without it the peer runs in plain mode (unencrypted,\n"
    "    unauthenticated) and says so.\n"
    "  --identity-file: this peer's Ed25519 identity (created, mode 0600, when missing), which\n"
    "    signs the DHT records it owns (keys or subkeys with its [owner:...] marker, e.g. expert\n"
    "    declarations with workload.moe.server.sign_declarations); default: a fresh one per run.\n"
    "  SCENARIO defaults to scenarios/probe_world.json, looked up from the current folder "
    "upwards.\n"
    "  --listen defaults to this peer's own entry in --peers (required in open mode).\n"
    "  --epoch: the run's time 0 as Unix time in seconds (fractions allowed), the same for every\n"
    "    peer of the run, so that they share one timeline: scenario times (warmup_s, the\n"
    "    duration) and DHT expirations then agree across peers to within their clocks' skew\n"
    "    (one host, or hosts synchronised by NTP). A peer started early waits for the epoch; the\n"
    "    run ends at epoch + duration. Default: this process's start (fine for a single peer).\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "crowdtrain live: %s\n%s", why.c_str(), kLiveUsage);
  return 2;
}

// Strict unsigned decimal: digits only, no sign, fits below `limit`.
bool parse_uint(const std::string& text, uint64_t limit, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (limit - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

bool parse_positive_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !(v > 0) || !std::isfinite(v))
    return false;
  out = v;
  return true;
}

// "0=tcp://127.0.0.1:5500,1=tcp://...#KEY" into `peers` (and the public keys given into `keys`);
// an error message, or "".
std::string parse_peers(const std::string& text, std::map<PeerId, std::string>& peers,
                        std::map<PeerId, std::string>& keys) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    const size_t eq = item.find('=');
    uint64_t id = 0;
    if (eq == std::string::npos || !parse_uint(item.substr(0, eq), kNoPeer - 1, id)) {
      return "--peers: '" + item + "' is not ID=ADDRESS";
    }
    std::string addr = item.substr(eq + 1);
    std::string key;
    if (const size_t hash = addr.find('#'); hash != std::string::npos) {  // Z85 may hold '#'
      key = addr.substr(hash + 1);
      addr = addr.substr(0, hash);
      if (!valid_curve_key(key)) {
        return "--peers: peer " + std::to_string(id) + ": '" + key +
               "' is not a public key (40 Z85 characters)";
      }
      keys[static_cast<PeerId>(id)] = key;
    }
    if (addr.find("://") == std::string::npos) {
      return "--peers: peer " + std::to_string(id) + ": '" + addr +
             "' is not an address like tcp://host:port";
    }
    if (!peers.emplace(static_cast<PeerId>(id), addr).second) {
      return "--peers: peer " + std::to_string(id) + " given twice";
    }
    if (peers.size() > kMaxLivePeers)
      return "--peers: more than " + std::to_string(kMaxLivePeers) + " peers";
    pos = comma + 1;
  }
  return "";
}

// "tcp://host:5500#KEY,tcp://..." into (address, key) pairs; an error message, or "".
std::string parse_initial_peers(const std::string& text,
                                std::vector<std::pair<std::string, std::string>>& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string addr = text.substr(pos, comma - pos), key;
    if (const size_t hash = addr.find('#'); hash != std::string::npos) {
      key = addr.substr(hash + 1);
      addr = addr.substr(0, hash);
      if (!valid_curve_key(key)) {
        return "--initial-peers: '" + key + "' is not a public key (40 Z85 characters)";
      }
    }
    if (addr.find("://") == std::string::npos) {
      return "--initial-peers: '" + addr + "' is not an address like tcp://host:port";
    }
    out.emplace_back(addr, key);
    if (out.size() > kMaxLivePeers)
      return "--initial-peers: more than " + std::to_string(kMaxLivePeers);
    pos = comma + 1;
  }
  return "";
}

// scenarios/probe_world.json in the current folder or the nearest parent that has one; "" if none.
std::string find_default_scenario() {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::current_path(ec);
  if (ec) return "";
  for (int i = 0; i < kMaxParentsSearched; ++i) {
    const std::filesystem::path p = dir / "scenarios" / "probe_world.json";
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
    if (!dir.has_parent_path() || dir.parent_path() == dir) break;
    dir = dir.parent_path();
  }
  return "";
}

// What the command line says.
struct LiveArgs {
  std::string scenario_path;
  std::vector<std::string> overrides;  // --set, in order (the reproduce line repeats them)
  std::string seed_text;
  bool quiet = false;
  bool have_id = false;
  bool have_initial = false;
  bool help = false;
  bool show_key = false;
  LiveOptions o;
};

// One option (`flag`, as given in `arg`) and its value (`take` fetches it: false when it is
// missing); "" or the usage error.
std::string apply_flag(const std::string& flag, const std::string& arg,
                       const std::function<bool()>& take, const std::string& value, LiveArgs& a) {
  LiveOptions& o = a.o;
  if (flag == "--help" || flag == "-h") {
    a.help = true;
  } else if (flag == "--quiet") {
    a.quiet = true;
  } else if (flag == "--client") {
    o.client = true;
  } else if (flag == "--id") {
    uint64_t id = 0;
    if (!take() || !parse_uint(value, kNoPeer - 1, id)) return "--id needs a peer id";
    o.id = static_cast<PeerId>(id);
    a.have_id = true;
  } else if (flag == "--listen") {
    if (!take() || value.find("://") == std::string::npos) {
      return "--listen needs an address like tcp://127.0.0.1:5500";
    }
    o.listen = value;
  } else if (flag == "--peers") {
    if (!take()) return "--peers needs ID=ADDR,ID=ADDR,...";
    return parse_peers(value, o.peers, o.peer_keys);
  } else if (flag == "--initial-peers") {
    if (!take()) return "--initial-peers needs ADDR,ADDR,...";
    a.have_initial = true;
    return parse_initial_peers(value, o.initial_peers);
  } else if (flag == "--swarm-key-file") {
    if (!take() || value.empty()) return "--swarm-key-file needs a path";
    o.swarm_key_file = value;
  } else if (flag == "--key-file") {
    if (!take() || value.empty()) return "--key-file needs a path";
    o.key_file = value;
  } else if (flag == "--identity-file") {
    if (!take() || value.empty()) return "--identity-file needs a path";
    o.identity_file = value;
  } else if (flag == "--show-key") {
    a.show_key = true;
  } else if (flag == "--duration") {
    if (!take() || !parse_positive_double(value, o.duration_s)) {
      return "--duration needs a number of seconds > 0";
    }
  } else if (flag == "--epoch") {
    double epoch = 0;
    if (!take() || !parse_positive_double(value, epoch)) {
      return "--epoch needs a Unix time in seconds > 0 (e.g. $(date +%s))";
    }
    o.epoch_unix_s = epoch;
  } else if (flag == "--out") {
    if (!take() || value.empty()) return "--out needs a folder";
    o.out_dir = value;
  } else if (flag == "--seed") {
    uint64_t seed = 0;
    if (!take() || !parse_uint(value, UINT64_MAX, seed)) return "--seed needs a number";
    a.seed_text = value;
  } else if (flag == "--set") {
    if (!take() || value.find('=') == std::string::npos) return "--set needs key=value";
    a.overrides.push_back(value);
  } else {
    return "unknown option " + arg;
  }
  return "";
}

// Open membership or a fixed list, and what each needs; "" or the usage error.
std::string check_membership(const LiveArgs& a) {
  const LiveOptions& o = a.o;
  if (!o.peers.empty()) {
    if (a.have_initial) return "--peers and --initial-peers do not go together";
    if (o.client) return "--client needs open membership (--initial-peers, no --peers)";
    return "";
  }
  if (o.client) {
    if (!o.listen.empty()) return "--client and --listen do not go together: a client listens not";
    if (o.initial_peers.empty()) return "--client needs --initial-peers (it cannot be called)";
  } else if (o.listen.empty()) {
    return "--listen (or --client) is required in open mode (no --peers)";
  }
  if (!o.key_file.empty() && o.swarm_key_file.empty()) {
    return "--key-file without --peers needs --swarm-key-file: in an open secure swarm the swarm "
           "key decides who may join";
  }
  for (const auto& [addr, key] : o.initial_peers) {
    if (!o.key_file.empty() && key.empty()) {
      return "--key-file: initial peer " + addr + " has no public key (ADDR#KEY)";
    }
  }
  return "";
}

// The arguments into `a`, with the defaults filled in (--listen from --peers, the scenario found
// upward); "" or the usage error. Stops early at --help.
std::string parse_live_args(const std::vector<std::string>& args, LiveArgs& a) {
  a.o.duration_s = 0;  // 0: the scenario's duration_s
  for (size_t i = 0; i < args.size() && !a.help; ++i) {
    std::string flag = args[i];
    std::string value;
    bool inline_value = false;
    if (flag.rfind("--", 0) == 0 && flag.find('=') != std::string::npos) {
      value = flag.substr(flag.find('=') + 1);
      flag = flag.substr(0, flag.find('='));
      inline_value = true;
    }
    auto take = [&]() {
      if (inline_value) return true;
      if (i + 1 >= args.size()) return false;
      value = args[++i];
      return true;
    };
    if (!flag.empty() && flag[0] == '-') {
      if (std::string e = apply_flag(flag, args[i], take, value, a); !e.empty()) return e;
    } else if (a.scenario_path.empty()) {
      a.scenario_path = args[i];
    } else {
      return "more than one scenario given (" + a.scenario_path + ", " + args[i] + ")";
    }
  }
  if (a.help) return "";
  if (a.show_key) return a.o.key_file.empty() ? "--show-key needs --key-file" : "";
  if (!a.have_id) return "--id is required";
  if (std::string e = check_membership(a); !e.empty()) return e;
  if (!a.o.key_file.empty()) {
    for (const auto& [id, addr] : a.o.peers) {
      if (id != a.o.id && !a.o.peer_keys.count(id)) {
        return "--key-file: peer " + std::to_string(id) +
               " in --peers has no public key (ID=ADDR#KEY)";
      }
    }
  }
  if (a.o.listen.empty() && !a.o.client) {
    auto self = a.o.peers.find(a.o.id);
    if (self == a.o.peers.end()) {
      return "--listen is required when --peers has no entry for --id " + std::to_string(a.o.id);
    }
    a.o.listen = self->second;
  }
  if (a.scenario_path.empty()) a.scenario_path = find_default_scenario();
  if (a.scenario_path.empty()) {
    return "no SCENARIO given and scenarios/probe_world.json is not in the current folder or any "
           "parent";
  }
  return "";
}

}  // namespace

int live_main(const std::vector<std::string>& args) {
  LiveArgs a;
  if (std::string e = parse_live_args(args, a); !e.empty()) return usage_error(e);
  if (a.help) {
    std::printf("%s", kLiveUsage);
    return 0;
  }
  if (a.show_key) {
    auto keys = load_or_create_keypair(a.o.key_file);
    if (!keys.ok()) {
      std::fprintf(stderr, "crowdtrain live: --key-file: %s\n", keys.error().c_str());
      return 2;
    }
    std::printf("%s\n", keys->public_key.c_str());
    return 0;
  }
  std::vector<std::string> load_overrides = a.overrides;
  if (!a.seed_text.empty()) load_overrides.push_back("seed=" + a.seed_text);
  auto s = load_scenario(a.scenario_path, load_overrides);
  if (!s.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s: %s\n", a.scenario_path.c_str(), s.error().c_str());
    return 2;
  }
  if (a.quiet) s.value().output.progress = false;
  if (s.value().peers.is_client(a.o.id) && !a.o.client) {
    return usage_error("the scenario's peers.clients makes peer " + std::to_string(a.o.id) +
                       " a client (behind NAT, never called): run it with --client");
  }
  // The reproduce line carries the seed as --seed (reproduce_command adds it), the rest as --set.
  return run_live(s.value(), a.o, a.overrides);
}

}  // namespace crowdtrain::net
