// `crowdtrain live`: one peer process of the live world. It builds a ZmqRuntime, runs the
// scenario's workload on it (the PeerApp the simulator runs) in wall-clock time, and writes the
// same output folder as a simulated run (summary.json, metrics.csv, events.jsonl).
//
// Timeline: the runtime's time is wall-clock time since the run's epoch (LiveOptions::epoch_unix_s,
// the same on every peer; unset: this process's start), so scenario times (warmup_s, duration_s)
// and DHT expirations mean the same on every peer. A peer started before the epoch waits for it; a
// bounded warm-up then waits until the other peers are reachable, so that start-up skew loses no
// requests; the workload runs until time duration_s of the timeline. Single-threaded: everything
// runs on the caller's thread.
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
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/run_output.h"
#include "core/workload.h"
#include "net/curve_keys.h"
#include "net/zmq_runtime.h"

namespace crowdtrain::net {

namespace {

constexpr double kMaxWarmupS = 5.0;        // the longest wait for peers before the workload starts
constexpr double kMaxEpochWaitS = 3600.0;  // an epoch further ahead is a mistake, not a plan

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

// The flags that make this run again, each value shell-quoted (keys hold characters such as $,
// ( and #).
std::string join_live_flags(const LiveOptions& o) {
  std::string peers;
  for (const auto& [id, addr] : o.peers) {
    if (!peers.empty()) peers += ",";
    auto key = o.peer_keys.find(id);
    peers += std::to_string(id) + "=" + addr + (key == o.peer_keys.end() ? "" : "#" + key->second);
  }
  std::string s = " --id " + std::to_string(o.id);
  if (!o.listen.empty()) s += " --listen " + shell_quote(o.listen);
  if (!peers.empty()) s += " --peers " + shell_quote(peers);
  std::string initial;
  for (const auto& [addr, key] : o.initial_peers) {
    initial += (initial.empty() ? "" : ",") + addr + (key.empty() ? "" : "#" + key);
  }
  if (!initial.empty()) s += " --initial-peers " + shell_quote(initial);
  if (!o.swarm_key_file.empty()) s += " --swarm-key-file " + shell_quote(o.swarm_key_file);
  if (!o.key_file.empty()) s += " --key-file " + shell_quote(o.key_file);
  if (!o.identity_file.empty()) s += " --identity-file " + shell_quote(o.identity_file);
  if (o.client) s += " --client";
  if (o.duration_s > 0) {  // 0: the scenario's duration_s
    char duration[32];
    std::snprintf(duration, sizeof(duration), "%g", o.duration_s);
    s += std::string(" --duration ") + duration;
  }
  if (!o.out_dir.empty()) s += " --out " + shell_quote(o.out_dir);
  if (o.epoch_unix_s) {
    char epoch[40];
    std::snprintf(epoch, sizeof(epoch), "%.3f", *o.epoch_unix_s);
    s += std::string(" --epoch ") + epoch;
  }
  return s;
}

}  // namespace

std::vector<std::string> live_not_honoured(const Scenario& s) {
  std::vector<std::string> out;
  if (s.churn.model != ChurnModel::kNone) {
    out.push_back("churn.model \"" + enum_name(churn_model_names(), s.churn.model) +
                  "\": peers join and leave when their processes start and stop");
  }
  if (s.churn.lifetime_s_max > 0) {
    out.push_back("churn.lifetime_s_max: no peer is preempted but by its process ending");
  }
  if (!s.faults.empty()) {
    out.push_back("faults (" + std::to_string(s.faults.size()) +
                  "): no fault is injected; kill processes to rehearse crashes");
  }
  if (!s.network.regions.rtt_csv.empty()) {
    out.push_back("network.regions: the latency between peers is the real network's");
  }
  out.push_back(
      "network.access_latency_ms, upload_mbps, download_mbps, loss_rate: the real links' apply "
      "(network.delay_ms is honoured: the transport holds each message back)");
  if (s.network.fidelity == Fidelity::kPacket) {
    out.push_back("network.fidelity \"packet\": live peers use real TCP");
  }
  out.push_back(
      "compute (the cost model, peers.classes[].flops_per_s): live peers compute for real");
  return out;
}

namespace {

// Exit code 2, after saying why, for a scenario or flags a live peer cannot run; 0 otherwise.
int check_live_run(const Scenario& s, const LiveOptions& o) {
  if (!is_peer_workload(s.workload.kind)) {
    std::fprintf(stderr,
                 "crowdtrain live: workload.kind is \"%s\", which does not run as a live peer\n",
                 s.workload.kind.c_str());
    return 2;
  }
  if (o.peers.size() > kMaxLivePeers) {
    std::fprintf(stderr, "crowdtrain live: %zu peers given, limit %zu\n", o.peers.size(),
                 kMaxLivePeers);
    return 2;
  }
  if (s.output.progress) {
    for (const std::string& line : live_not_honoured(s)) {
      std::fprintf(stderr, "[live %u] not honoured here: %s\n", o.id, line.c_str());
    }
  }
  return 0;
}

// The peer's runtime, knowing every peer of --peers (listed in `targets`); null after saying why,
// with the exit code in `code`.
std::unique_ptr<ZmqRuntime> open_runtime(const Scenario& s, const LiveOptions& o, MetricsSink& sink,
                                         std::vector<PeerId>& targets, int& code) {
  std::optional<int64_t> epoch_ns;
  if (o.epoch_unix_s) epoch_ns = static_cast<int64_t>(std::llround(*o.epoch_unix_s * 1e9));
  ZmqRuntimeOptions options = ZmqRuntimeOptions()
                                  .id(o.id)
                                  .listen(o.listen)
                                  .seed(s.seed)
                                  .max_message_bytes(s.network.max_message_bytes)
                                  .delay_ms(s.network.delay_ms)
                                  .max_peers(kMaxLivePeers)
                                  .epoch_unix_ns(epoch_ns);
  const bool open = o.peers.empty();
  options.open_membership(open).client_mode(o.client);
  if (!o.swarm_key_file.empty()) {
    auto swarm = load_or_create_swarm_key(o.swarm_key_file);
    if (!swarm.ok()) {
      std::fprintf(stderr, "crowdtrain live: --swarm-key-file: %s\n", swarm.error().c_str());
      code = 2;
      return nullptr;
    }
    options.swarm_key(swarm.value());
  } else if (open && s.output.progress) {
    std::fprintf(stderr,
                 "[live %u] open membership without a swarm key: any peer that reaches this one "
                 "may join (--swarm-key-file restricts it)\n",
                 o.id);
  }
  if (!o.key_file.empty()) {
    auto keys = load_or_create_keypair(o.key_file);
    if (!keys.ok()) {
      std::fprintf(stderr, "crowdtrain live: --key-file: %s\n", keys.error().c_str());
      code = 2;
      return nullptr;
    }
    options.curve_public_key(keys->public_key).curve_secret_key(keys->secret_key);
  } else if (s.output.progress) {
    std::fprintf(stderr,
                 "[live %u] plain mode: messages are neither encrypted nor authenticated "
                 "(--key-file turns CurveZMQ on)\n",
                 o.id);
  }
  auto created = ZmqRuntime::create(options, sink);
  if (!created.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", created.error().c_str());
    code = 1;
    return nullptr;
  }
  std::unique_ptr<ZmqRuntime> rt = std::move(created.value());
  for (const auto& [id, addr] : o.peers) {
    auto key = o.peer_keys.find(id);
    const std::string own = id == o.id ? options.curve_public_key() : "";
    Status st = rt->add_peer(id, addr, key != o.peer_keys.end() ? key->second : own);
    if (!st.ok()) {
      std::fprintf(stderr, "crowdtrain live: --peers: %s\n", st.message().c_str());
      code = 2;
      return nullptr;
    }
    targets.push_back(id);
  }
  if (open) targets.push_back(o.id);
  return rt;
}

struct StartFacts {
  size_t connected = 0;        // peers reachable when the workload started
  double warmup_s = 0;         // wall seconds spent waiting for them
  std::vector<PeerId> joined;  // open membership: the initial peers that answered
};

// Open membership: says hello to the initial peers and waits (bounded) for their answers.
int join_swarm(ZmqRuntime& rt, Time limit, const LiveOptions& o, StartFacts& out,
               std::chrono::steady_clock::time_point warmup_start) {
  std::vector<InitialPeer> initial;
  for (const auto& [addr, key] : o.initial_peers) initial.push_back(InitialPeer{addr, key});
  auto joined = rt.join(initial, limit);
  if (!joined.ok()) {
    std::fprintf(stderr, "crowdtrain live: --initial-peers: %s\n", joined.error().c_str());
    return 2;
  }
  out.joined = joined.value();
  out.connected = out.joined.size();
  out.warmup_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - warmup_start).count();
  if (out.joined.size() < initial.size()) {
    std::fprintf(stderr,
                 "[live %u] %zu of %zu initial peers answered after %.1f s; starting anyway\n",
                 o.id, out.joined.size(), initial.size(), out.warmup_s);
  }
  return 0;
}

// Waits for the epoch, then (bounded) until the other peers are up, so that the first requests
// are not lost to peers still starting; messages that arrive meanwhile wait in ZeroMQ's queue.
// 0, or the exit code after saying why.
int await_start(ZmqRuntime& rt, Time end, const LiveOptions& o, StartFacts& out) {
  if (rt.now() < -from_seconds(kMaxEpochWaitS)) {
    std::fprintf(stderr,
                 "crowdtrain live: --epoch is %.0f s ahead of this host's clock (limit %.0f s)\n",
                 -to_seconds(rt.now()), kMaxEpochWaitS);
    return 2;
  }
  while (!rt.stopped() && rt.now() < Time(0)) {
    std::this_thread::sleep_for(std::min<Time>(-rt.now(), std::chrono::milliseconds(100)));
  }
  const auto warmup_start = std::chrono::steady_clock::now();
  const double left_s = to_seconds(end - rt.now());
  const Time limit = from_seconds(std::clamp(left_s / 4, 0.0, kMaxWarmupS));
  if (o.peers.empty()) return join_swarm(rt, limit, o, out, warmup_start);
  auto connected = rt.await_connections(limit);
  if (!connected.ok()) {
    std::fprintf(stderr, "crowdtrain live: --peers: %s\n", connected.error().c_str());
    return 2;
  }
  out.connected = connected.value();
  out.warmup_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - warmup_start).count();
  if (out.connected < rt.known_peers()) {
    std::fprintf(stderr, "[live %u] %zu of %zu peers reachable after %.1f s; starting anyway\n",
                 o.id, out.connected, rt.known_peers(), out.warmup_s);
  }
  return 0;
}

// Runs `app` from `t0` (now) until `end` (or a signal), calling `sample` at t0 and every
// `interval`, and printing progress when asked; stops the app (the last row is the caller's).
void drive(PeerApp& app, ZmqRuntime& rt, const MetricsSink& sink, Time t0, Time end, Time interval,
           bool progress, uint32_t id, const std::function<void(double)>& sample) {
  app.start();
  sample(to_seconds(t0));
  Time next_sample = t0 + interval;
  while (!rt.stopped() && rt.now() < end) {
    rt.run_until(std::min(next_sample, end));
    if (rt.stopped() || rt.now() >= end) break;
    if (rt.now() < next_sample) continue;
    const double t = to_seconds(rt.now());
    sample(t);
    if (progress) {
      std::fprintf(stderr, "\r[live %u] t=%.0f/%.0f s  sent=%lld  received=%lld   ", id, t,
                   to_seconds(end), static_cast<long long>(sink.counter("messages_sent")),
                   static_cast<long long>(sink.counter("messages_delivered")));
      std::fflush(stderr);
    }
    while (next_sample <= rt.now()) next_sample += interval;
  }
  if (progress) std::fprintf(stderr, "\n");
  app.stop();
}

// summary.json of a live peer: the shared run summary plus this process's own facts.
nlohmann::json live_summary(const Scenario& s, const MetricsSink& sink, const ZmqRuntime& rt,
                            const LiveOptions& o, const StartFacts& start, RunFacts facts,
                            Time t0) {
  facts.world = "live";
  facts.peers = rt.known_peers();
  nlohmann::json sum = run_summary(s, sink, facts);
  sum["peer_id"] = o.id;
  sum["security"] = rt.secure() ? "curve" : "plain";
  sum["not_honoured"] = live_not_honoured(s);
  sum["listen"] = rt.endpoint();
  sum["client"] = o.client;  // could not be called (--client)
  sum["epoch_unix_s"] = static_cast<double>(rt.epoch_unix_ns()) / 1e9;
  sum["app_start_s"] = to_seconds(t0);  // the workload ran from here to sim_time_s
  sum["interrupted"] = rt.stopped();
  sum["warmup_s"] = start.warmup_s;
  sum["peers_connected_at_start"] = start.connected;
  sum["membership"] = o.peers.empty() ? "open" : "list";
  for (const char* c :
       {"net_peers_learned", "net_resolved", "net_unresolved", "net_peers_evicted"}) {
    sum[c] = sink.counter(c);
  }
  for (const char* c :
       {"messages_sent", "messages_delivered", "net_rejected_messages", "net_send_dropped"}) {
    sum[c] = sink.counter(c);
  }
  return sum;
}

void print_done(const Scenario& s, const MetricsSink& sink, uint32_t id, const std::string& dir) {
  if (s.workload.kind == "probe") {
    std::fprintf(stderr, "[live %u] done: %lld probes ok, %lld failed; outputs in %s\n", id,
                 static_cast<long long>(sink.counter("probes_ok")),
                 static_cast<long long>(sink.counter("probes_failed")), dir.c_str());
    return;
  }
  std::fprintf(stderr,
               "[live %u] done: %s workload, %lld messages sent, %lld received; outputs in %s\n",
               id, s.workload.kind.c_str(), static_cast<long long>(sink.counter("messages_sent")),
               static_cast<long long>(sink.counter("messages_delivered")), dir.c_str());
}

int run_live_impl(const Scenario& s, const LiveOptions& o,
                  const std::vector<std::string>& overrides) {
  if (int code = check_live_run(s, o); code != 0) return code;
  const double duration_s = o.duration_s > 0 ? o.duration_s : s.duration_s;
  const std::string reproduce = reproduce_command(s, overrides, "live") + join_live_flags(o);
  std::fprintf(stderr, "[live %u] reproduce: %s\n", o.id, reproduce.c_str());
  MetricsSink sink;
  sink.set_detail(s.output.events == EventLevel::kLifecycle ? EventDetail::kLifecycle
                                                            : EventDetail::kOperation);
  if (s.liveness.from_s >= 0.0) sink.set_liveness_from(from_seconds(s.liveness.from_s));
  auto targets = std::make_shared<std::vector<PeerId>>();
  int code = 0;
  std::unique_ptr<ZmqRuntime> runtime = open_runtime(s, o, sink, *targets, code);
  if (!runtime) return code;
  ZmqRuntime& rt = *runtime;
  SignalScope signals(&rt);  // Ctrl-C ends the run early; the outputs are still written
  const Time end = from_seconds(duration_s);  // the run covers [0, duration_s) of the timeline
  StartFacts start;
  if (int c = await_start(rt, end, o, start); c != 0) return c;
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
  for (PeerId p : start.joined) {
    if (std::find(targets->begin(), targets->end(), p) == targets->end()) targets->push_back(p);
  }
  WorkloadContext context;
  context.peers = targets;
  if (o.peers.empty()) {  // open membership: the workload starts from the peers that answered
    context.bootstrap = std::make_shared<const std::vector<PeerId>>(start.joined);
  }
  context.state_dir = dir + "/state";
  context.client = o.client;
  const PeersSpec& roles = s.peers;
  context.is_client = [&roles](PeerId p) { return p < roles.count && roles.is_client(p); };
  if (o.identity_file.empty()) {
    context.identity = std::make_shared<const dht::SigningKey>(dht::SigningKey::generate());
  } else {
    auto identity = load_or_create_identity(o.identity_file);
    if (!identity.ok()) {
      std::fprintf(stderr, "crowdtrain live: --identity-file: %s\n", identity.error().c_str());
      return 2;
    }
    context.identity = std::make_shared<const dht::SigningKey>(std::move(identity.value()));
  }
  auto made = make_workload_app(s, rt, context);
  if (!made.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", made.error().c_str());
    return 2;
  }
  std::unique_ptr<PeerApp> app = std::move(made.value());
  rt.set_handler([&app](PeerId from, Message msg) { app->on_message(from, std::move(msg)); });
  const auto wall_start = std::chrono::steady_clock::now();
  const Time t0 = rt.now();
  if (t0 >= end) {
    std::fprintf(stderr,
                 "crowdtrain live: the run's end (epoch + %g s) has passed: this host's clock is "
                 "%.1f s past the epoch\n",
                 duration_s, to_seconds(t0));
    return 2;
  }
  rt.metrics().event("live_start", {{"peers", uint64_t{o.peers.size()}},
                                    {"epoch_unix_ns", rt.epoch_unix_ns()},
                                    {"connected", uint64_t{start.connected}},
                                    {"listen", std::string_view(rt.endpoint())}});
  const Time interval = from_seconds(std::max(s.output.metrics_interval_s, 0.01));
  drive(*app, rt, sink, t0, end, interval, s.output.progress, o.id, sample);
  RunFacts facts;
  facts.sim_time_s = to_seconds(rt.now());  // the timeline's time at the end (about duration_s)
  sample(facts.sim_time_s);
  rt.metrics().event("live_end", {{"interrupted", rt.stopped() ? 1 : 0}});
  facts.wall_time_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  facts.reproduce = reproduce;
  const nlohmann::json sum = live_summary(s, sink, rt, o, start, facts, t0);
  app.reset();  // before the runtime it was built on
  sink.close_event_file();
  if (Status st = out.value()->write_summary(sum); !st.ok()) {
    std::fprintf(stderr, "crowdtrain live: %s\n", st.message().c_str());
    return 1;
  }
  print_done(s, sink, o.id, dir);
  return 0;
}

}  // namespace

int run_live(const Scenario& scenario, const LiveOptions& options,
             const std::vector<std::string>& overrides) {
  return run_live_impl(scenario, options, overrides);
}

}  // namespace crowdtrain::net
