// `crowdtrain live`: one peer process of the live world. It builds a ZmqRuntime, runs the
// scenario's probe workload on it (the PeerApp the simulator runs) for the run's duration in
// wall-clock time, and writes the same output folder as a simulated run (summary.json, metrics.csv,
// events.jsonl). A bounded warm-up first waits until the other peers are reachable, so that
// start-up skew between processes loses no probes. Single-threaded: everything runs on the caller's
// thread.
#include "net/live.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/run_output.h"
#include "core/workload.h"
#include "net/zmq_runtime.h"

namespace crowdtrain::net {

namespace {

constexpr size_t kMaxPeers = 1000;
constexpr int kMaxParentsSearched = 16;
constexpr double kMaxWarmupS = 5.0;  // the longest wait for peers before the workload starts

const char* kLiveUsage =
    "usage: crowdtrain live [SCENARIO] --id N --listen ADDR --peers ID=ADDR,ID=ADDR,...\n"
    "                       [--duration S] [--out DIR] [--seed N] [--set key=value]... [--quiet]\n"
    "  SCENARIO defaults to scenarios/quickstart.json, looked up from the current folder upwards.\n"
    "  --listen defaults to this peer's own entry in --peers.\n";

const std::vector<std::string> kCsvColumns = {
    "time_s",        "messages_sent",    "messages_delivered",   "probes_ok",
    "probes_failed", "net_send_dropped", "net_rejected_messages"};

// The runtime a SIGINT/SIGTERM stops (the run then ends normally and writes its outputs).
std::atomic<ZmqRuntime*> g_signal_target{nullptr};

void on_signal(int /*sig*/) {
  if (ZmqRuntime* rt = g_signal_target.load()) rt->stop();
}

// Routes SIGINT and SIGTERM to `rt` for its lifetime; restores the previous handlers after.
class SignalScope {
 public:
  explicit SignalScope(ZmqRuntime* rt) {
    g_signal_target.store(rt);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: zmq_poll returns EINTR and the loop sees stop()
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_signal_target.store(nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

int usage_error(const std::string& why) {
  std::fprintf(stderr, "crowdtrain live: %s\n%s", why.c_str(), kLiveUsage);
  return 2;
}

std::string join_live_flags(const LiveOptions& o) {
  std::string peers;
  for (const auto& [id, addr] : o.peers) {
    if (!peers.empty()) peers += ",";
    peers += std::to_string(id) + "=" + addr;
  }
  char duration[32];
  std::snprintf(duration, sizeof(duration), "%g", o.duration_s);
  std::string s = " --id " + std::to_string(o.id) + " --listen " + o.listen;
  if (!peers.empty()) s += " --peers " + peers;
  s += std::string(" --duration ") + duration;
  if (!o.out_dir.empty()) s += " --out " + o.out_dir;
  return s;
}

int run_live_impl(const Scenario& s, const LiveOptions& o,
                  const std::vector<std::string>& overrides) {
  if (!is_peer_workload(s.workload.kind)) {
    std::fprintf(stderr,
                 "crowdtrain live: workload.kind is \"%s\", which does not run as a live peer\n",
                 s.workload.kind.c_str());
    return 2;
  }
  if (o.peers.size() > kMaxPeers) {
    std::fprintf(stderr, "crowdtrain live: %zu peers given, limit %zu\n", o.peers.size(),
                 kMaxPeers);
    return 2;
  }
  const double duration_s = o.duration_s > 0 ? o.duration_s : s.duration_s;
  const std::string reproduce = reproduce_command(s, overrides, "live") + join_live_flags(o);
  std::fprintf(stderr, "[live %u] reproduce: %s\n", o.id, reproduce.c_str());
  if (s.churn.model != "none" || !s.faults.empty()) {
    std::fprintf(stderr,
                 "[live %u] note: churn and faults are simulated-world only; ignored here\n", o.id);
  }

  MetricsSink sink;
  sink.set_detail(s.output.events == "lifecycle" ? EventDetail::kLifecycle
                                                 : EventDetail::kOperation);
  auto created = ZmqRuntime::create(ZmqRuntimeOptions()
                                        .id(o.id)
                                        .listen(o.listen)
                                        .seed(s.seed)
                                        .max_message_bytes(s.network.max_message_bytes)
                                        .max_peers(kMaxPeers),
                                    sink);
  if (!created.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", created.error().c_str());
    return 1;
  }
  ZmqRuntime& rt = *created.value();
  SignalScope signals(&rt);  // Ctrl-C ends the run early; the outputs are still written
  auto targets = std::make_shared<std::vector<PeerId>>();
  for (const auto& [id, addr] : o.peers) {
    Status st = rt.add_peer(id, addr);
    if (!st.ok()) {
      std::fprintf(stderr, "crowdtrain live: --peers: %s\n", st.message().c_str());
      return 2;
    }
    targets->push_back(id);
  }
  // Warm-up: wait (bounded) until the other peers are up, so that the first probes are not lost to
  // peers that are still starting. Messages that arrive meanwhile wait in ZeroMQ's queue.
  const auto warmup_start = std::chrono::steady_clock::now();
  auto connected = rt.await_connections(from_seconds(std::min(kMaxWarmupS, duration_s / 4)));
  if (!connected.ok()) {
    std::fprintf(stderr, "crowdtrain live: --peers: %s\n", connected.error().c_str());
    return 2;
  }
  const double warmup_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - warmup_start).count();
  if (connected.value() < rt.known_peers()) {
    std::fprintf(stderr, "[live %u] %zu of %zu peers reachable after %.1f s; starting anyway\n",
                 o.id, connected.value(), rt.known_peers(), warmup_s);
  }

  const std::string dir =
      o.out_dir.empty() ? output_dir_for(s) + "/live-" + std::to_string(o.id) : o.out_dir;
  auto out = RunOutput::open(dir, kCsvColumns, sink);
  if (!out.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", out.error().c_str());
    return 1;
  }
  auto sample = [&](double t_s) {
    out.value()->metrics_row(
        {t_s, double(sink.counter("messages_sent")), double(sink.counter("messages_delivered")),
         double(sink.counter("probes_ok")), double(sink.counter("probes_failed")),
         double(sink.counter("net_send_dropped")), double(sink.counter("net_rejected_messages"))});
  };
  const bool progress = s.output.progress;

  WorkloadContext context;
  context.peers = targets;
  auto made = make_workload_app(s, rt, context);
  if (!made.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", made.error().c_str());
    return 2;
  }
  std::unique_ptr<PeerApp> app = std::move(made.value());
  rt.set_handler([&app](PeerId from, Message msg) { app->on_message(from, std::move(msg)); });
  const auto wall_start = std::chrono::steady_clock::now();
  const Time t0 = rt.now();
  const Time end = t0 + from_seconds(duration_s);
  const Time interval = from_seconds(std::max(s.output.metrics_interval_s, 0.01));
  rt.metrics().event("live_start", {{"peers", uint64_t{o.peers.size()}},
                                    {"connected", uint64_t{connected.value()}},
                                    {"listen", std::string_view(rt.endpoint())}});
  {
    app->start();
    sample(0.0);
    Time next_sample = t0 + interval;
    while (!rt.stopped() && rt.now() < end) {
      rt.run_until(std::min(next_sample, end));
      if (rt.stopped() || rt.now() >= end) break;  // the last row is written after app->stop()
      if (rt.now() < next_sample) continue;
      const double t = to_seconds(rt.now() - t0);
      sample(t);
      if (progress) {
        std::fprintf(stderr, "\r[live %u] t=%.0f/%.0f s  sent=%lld  ok=%lld  failed=%lld   ", o.id,
                     t, duration_s, static_cast<long long>(sink.counter("probes_sent")),
                     static_cast<long long>(sink.counter("probes_ok")),
                     static_cast<long long>(sink.counter("probes_failed")));
        std::fflush(stderr);
      }
      while (next_sample <= rt.now()) next_sample += interval;
    }
    if (progress) std::fprintf(stderr, "\n");
    app->stop();
  }
  const double run_s = to_seconds(rt.now() - t0);
  sample(run_s);
  rt.metrics().event("live_end", {{"interrupted", rt.stopped() ? 1 : 0}});
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  nlohmann::json sum;
  sum["scenario"] = s.name;
  sum["seed"] = s.seed;
  sum["peers"] = rt.known_peers();
  sum["world"] = "live";
  sum["peer_id"] = o.id;
  sum["listen"] = rt.endpoint();
  sum["sim_time_s"] = run_s;
  sum["wall_time_s"] = wall_s;
  sum["interrupted"] = rt.stopped();
  sum["warmup_s"] = warmup_s;
  sum["peers_connected_at_start"] = connected.value();
  for (const char* c : {"probes_sent", "probes_ok", "probes_failed", "messages_sent",
                        "messages_delivered", "net_rejected_messages", "net_send_dropped"}) {
    sum[c] = sink.counter(c);
  }
  const auto pct = [&sink](double q) {
    const double v = sink.percentile("probe_rtt_ms", q);
    return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  sum["rtt_ms_p50"] = pct(0.5);
  sum["rtt_ms_p99"] = pct(0.99);
  sum["counters"] = sink.counters();
  sum["events_logged"] = sink.events_logged();
  sum["event_log_sha256"] = sink.event_log_sha256();
  sum["reproduce"] = reproduce;
  sum["scenario_resolved"] = s.resolved;
  app.reset();  // before the runtime it was built on
  sink.close_event_file();
  if (Status st = out.value()->write_summary(sum); !st.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", st.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "[live %u] done: %lld probes ok, %lld failed; outputs in %s\n", o.id,
               static_cast<long long>(sink.counter("probes_ok")),
               static_cast<long long>(sink.counter("probes_failed")), dir.c_str());
  return 0;
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

// "0=tcp://127.0.0.1:5500,1=tcp://..." into `peers`; an error message, or "".
std::string parse_peers(const std::string& text, std::map<PeerId, std::string>& peers) {
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
    const std::string addr = item.substr(eq + 1);
    if (addr.find("://") == std::string::npos) {
      return "--peers: peer " + std::to_string(id) + ": '" + addr +
             "' is not an address like tcp://host:port";
    }
    if (!peers.emplace(static_cast<PeerId>(id), addr).second) {
      return "--peers: peer " + std::to_string(id) + " given twice";
    }
    if (peers.size() > kMaxPeers)
      return "--peers: more than " + std::to_string(kMaxPeers) + " peers";
    pos = comma + 1;
  }
  return "";
}

// scenarios/quickstart.json in the current folder or the nearest parent that has one; "" if none.
std::string find_default_scenario() {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::current_path(ec);
  if (ec) return "";
  for (int i = 0; i < kMaxParentsSearched; ++i) {
    const std::filesystem::path p = dir / "scenarios" / "quickstart.json";
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
    if (!dir.has_parent_path() || dir.parent_path() == dir) break;
    dir = dir.parent_path();
  }
  return "";
}

}  // namespace

int run_live(const Scenario& scenario, const LiveOptions& options) {
  return run_live_impl(scenario, options, {});
}

int live_main(const std::vector<std::string>& args) {
  std::string scenario_path;
  std::vector<std::string> overrides;  // --set, in order (the reproduce line repeats them)
  std::string seed_text;
  bool quiet = false;
  bool have_id = false;
  LiveOptions o;
  o.duration_s = 0;  // 0: the scenario's duration_s
  for (size_t i = 0; i < args.size(); ++i) {
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
    if (flag == "--help" || flag == "-h") {
      std::printf("%s", kLiveUsage);
      return 0;
    } else if (flag == "--quiet") {
      quiet = true;
    } else if (flag == "--id") {
      uint64_t id = 0;
      if (!take() || !parse_uint(value, kNoPeer - 1, id))
        return usage_error("--id needs a peer id");
      o.id = static_cast<PeerId>(id);
      have_id = true;
    } else if (flag == "--listen") {
      if (!take() || value.find("://") == std::string::npos) {
        return usage_error("--listen needs an address like tcp://127.0.0.1:5500");
      }
      o.listen = value;
    } else if (flag == "--peers") {
      if (!take()) return usage_error("--peers needs ID=ADDR,ID=ADDR,...");
      if (std::string e = parse_peers(value, o.peers); !e.empty()) return usage_error(e);
    } else if (flag == "--duration") {
      if (!take() || !parse_positive_double(value, o.duration_s)) {
        return usage_error("--duration needs a number of seconds > 0");
      }
    } else if (flag == "--out") {
      if (!take() || value.empty()) return usage_error("--out needs a folder");
      o.out_dir = value;
    } else if (flag == "--seed") {
      uint64_t seed = 0;
      if (!take() || !parse_uint(value, UINT64_MAX, seed))
        return usage_error("--seed needs a number");
      seed_text = value;
    } else if (flag == "--set") {
      if (!take() || value.find('=') == std::string::npos)
        return usage_error("--set needs key=value");
      overrides.push_back(value);
    } else if (!flag.empty() && flag[0] == '-') {
      return usage_error("unknown option " + args[i]);
    } else if (scenario_path.empty()) {
      scenario_path = args[i];
    } else {
      return usage_error("more than one scenario given (" + scenario_path + ", " + args[i] + ")");
    }
  }
  if (!have_id) return usage_error("--id is required");
  if (o.listen.empty()) {
    auto self = o.peers.find(o.id);
    if (self == o.peers.end()) {
      return usage_error("--listen is required when --peers has no entry for --id " +
                         std::to_string(o.id));
    }
    o.listen = self->second;
  }
  if (scenario_path.empty()) {
    scenario_path = find_default_scenario();
    if (scenario_path.empty()) {
      return usage_error(
          "no SCENARIO given and scenarios/quickstart.json is not in the current "
          "folder or any parent");
    }
  }
  std::vector<std::string> load_overrides = overrides;
  if (!seed_text.empty()) load_overrides.push_back("seed=" + seed_text);
  auto s = load_scenario(scenario_path, load_overrides);
  if (!s.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s: %s\n", scenario_path.c_str(), s.error().c_str());
    return 2;
  }
  if (quiet) s.value().output.progress = false;
  // The reproduce line carries the seed as --seed (reproduce_command adds it), the rest as --set.
  return run_live_impl(s.value(), o, overrides);
}

}  // namespace crowdtrain::net
