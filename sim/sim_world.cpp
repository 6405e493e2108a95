// The simulated world's run: see sim_world.h.
#include "sim/sim_world.h"

#include <algorithm>

#include <ns3/core-module.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include "core/dht/record_signing.h"
#include "core/run_output.h"
#include "core/workload.h"
#include "sim/churn.h"
#include "sim/network.h"
#include "sim/sim_runtime.h"
#include "sim/topology.h"

namespace crowdtrain::sim {
namespace {

// Peak resident memory of this process in MiB (VmHWM), or 0 where /proc is missing.
double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      double kb = 0;
      in >> kb;
      return kb / 1024.0;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0.0;
}

const std::vector<std::string> kCsvColumns = {
    "time_s",     "alive_peers", "messages_sent", "messages_delivered", "messages_dropped",
    "bytes_sent", "probes_sent", "probes_ok",     "probes_failed",      "events_processed"};

class World final : public SimHost {
 public:
  World(const Scenario& s, const SimOptions& o, Topology topology, ChurnPlan churn)
      : s_(s),
        o_(o),
        topology_(std::move(topology)),
        churn_(std::move(churn)),
        peers_(s.peers.count) {
    for (PeerId p = 0; p < s.peers.count; ++p) {
      if (s.peers.is_client(p)) peers_[p].reached = std::make_unique<std::unordered_set<PeerId>>();
    }
  }

  ~World() override {
    for (auto& slot : peers_) {
      slot.app.reset();
      slot.rt.reset();
    }
    network_.reset();
    ns3::Simulator::Destroy();
  }

  Result<nlohmann::json> run();

  void host_send(PeerId from, PeerId to, Message msg) override;
  double compute_seconds(PeerId p, const ComputeCost& cost, double measured_s) const override {
    if (s_.compute.mode == ComputeMode::kMeasured) return measured_s;
    const double fps = s_.peers.classes[topology_.peer(p).peer_class].flops_per_s;
    return cost.flops / fps;
  }
  MetricsSink& sink() override { return sink_; }

 private:
  struct Slot {
    std::unique_ptr<SimRuntime> rt;
    std::unique_ptr<PeerApp> app;
    uint32_t incarnation = 0;
    bool alive = false;
    // A client's (peers.clients; null for other peers): the peers its current incarnation has
    // sent to, the only ones whose messages reach it (as over the connections a peer behind NAT
    // opened).
    std::unique_ptr<std::unordered_set<PeerId>> reached;
  };

  void join(PeerId p, const char* reason);
  void leave(PeerId p, const char* reason);
  void after_leave(PeerId p, double restart_after_s);
  void deliver(PeerId from, PeerId to, Message msg);
  void schedule_faults();
  // The fault verbs (as FoundationDB's killProcess / clogPair): the scenario's faults[] call them
  // at their times; each logs its world event. `fault` is the index in faults[].
  void kill(const std::vector<PeerId>& victims, double restart_after_s, size_t fault);
  // A kill with a notice: the victims get a preemption notice now and die notice_s later (those
  // that have not left or restarted meanwhile).
  void kill_after_notice(const std::vector<PeerId>& victims, const FaultSpec& f, size_t fault);
  void partition(const std::vector<std::string>& regions, double duration_s, size_t fault);
  // Clog and loss: the peers' messages are slowed or dropped for duration_s (Topology::add_clog,
  // add_loss), then the fault takes back what it added.
  void clog(const std::vector<PeerId>& peers, const FaultSpec& f, size_t fault);
  void loss(const std::vector<PeerId>& peers, const FaultSpec& f, size_t fault);
  // A kill's victims: the named live peers, or a `fraction` of the live ones drawn from the
  // faults stream.
  std::vector<PeerId> fault_victims(const FaultSpec& f);
  void sample_metrics();
  void progress_tick();
  Status open_outputs();
  void start_network();
  void schedule_joins();
  nlohmann::json summary();
  Time now() const { return Time(ns3::Simulator::Now().GetNanoSeconds()); }
  void world_event(std::string_view kind, std::initializer_list<EventField> f) {
    sink_.event(now(), kNoPeer, kind, EventDetail::kLifecycle, f);
  }

  const Scenario& s_;
  const SimOptions& o_;
  Topology topology_;
  ChurnPlan churn_;
  MetricsSink sink_;
  std::unique_ptr<NetworkModel> network_;
  std::unique_ptr<RunOutput> out_;
  std::vector<Slot> peers_;
  WorkloadContext context_;
  uint32_t alive_ = 0;
  Rng fault_rng_{0};
  std::chrono::steady_clock::time_point wall_start_, last_progress_;
  std::string last_progress_line_;
  std::string state_root_;  // <run folder>/state when the run writes files
  std::string app_error_;   // why a peer's app could not be made (the run stops)
};

void World::host_send(PeerId from, PeerId to, Message msg) {
  if (to >= peers_.size()) {
    sink_.count("messages_to_unknown_peer");
    return;
  }
  const uint64_t wire = msg.wire_size();
  if (wire > s_.network.max_message_bytes) {
    sink_.count("messages_oversized");
    return;
  }
  if (s_.network.serialize) {
    // Real serialisation, so the codec is exercised: what arrives is what was decoded.
    auto decoded = decode(Bytes::adopt(encode(msg)), CodecLimits{s_.network.max_message_bytes});
    if (!decoded.ok()) {
      sink_.count("messages_codec_errors");
      return;
    }
    msg = std::move(decoded.value());
  }
  if (peers_[from].reached) peers_[from].reached->insert(to);
  if (peers_[to].reached && !peers_[to].reached->count(from)) {
    sink_.count("messages_to_unreached_client");  // nobody can call a peer behind NAT
    sink_.event(now(), from, "message_to_unreached_client", EventDetail::kOperation,
                {{"to", to}, {"type", static_cast<uint64_t>(msg.type)}});
    return;
  }
  network_->send(from, to, std::move(msg), wire);
}

void World::deliver(PeerId from, PeerId to, Message msg) {
  Slot& slot = peers_[to];
  if (!slot.alive) {
    sink_.count("messages_to_dead_peer");
    return;
  }
  slot.app->on_message(from, std::move(msg));
}

void World::join(PeerId p, const char* reason) {
  Slot& slot = peers_[p];
  if (slot.alive) return;
  slot.alive = true;
  ++slot.incarnation;
  ++alive_;
  network_->peer_up(p);
  slot.rt =
      std::make_unique<SimRuntime>(*this, p, derive_seed(s_.seed, "peer", p, slot.incarnation));
  if (slot.reached) slot.reached->clear();  // a new incarnation has opened no connection yet
  WorkloadContext context = context_;
  context.client = slot.reached != nullptr;
  context.upload_mbps = topology_.peer(p).up_bps / 1e6;
  context.download_mbps = topology_.peer(p).down_bps / 1e6;
  if (!state_root_.empty()) context.state_dir = state_root_ + "/peer-" + std::to_string(p);
  Rng identity_rng(derive_seed(s_.seed, "identity", p));  // the same key in every incarnation
  context.identity =
      std::make_shared<const dht::SigningKey>(dht::SigningKey::from_rng(identity_rng));
  auto app = make_workload_app(s_, *slot.rt, context);
  if (!app.ok()) {  // e.g. its data is missing: the run ends with that error, nothing crashes
    if (app_error_.empty()) {
      app_error_ = "peer " + std::to_string(p) + " could not start: " + app.error();
    }
    slot.alive = false;
    --alive_;
    slot.rt.reset();
    ns3::Simulator::Stop();
    return;
  }
  slot.app = std::move(app.value());
  sink_.count("joins");
  sink_.event(now(), p, "join", EventDetail::kLifecycle,
              {{"incarnation", slot.incarnation}, {"reason", reason}});
  const uint32_t inc = slot.incarnation;
  // When this session ends: churn, trace, or the preemption cap.
  double session_s = -1.0;
  if (churn_.sessions()) session_s = churn_.next_session_s(p);
  if (churn_.trace()) {
    for (const auto& t : *churn_.trace_sessions(p)) {
      if (t.start_s * 1e9 <= now().count() + 1 && (t.end_s < 0 || t.end_s * 1e9 > now().count())) {
        session_s = t.end_s < 0 ? -1.0 : t.end_s - to_seconds(now());
      }
    }
  }
  if (session_s >= 0.0) {
    ns3::Simulator::Schedule(ns3::Seconds(session_s), [this, p, inc] {
      if (peers_[p].alive && peers_[p].incarnation == inc) leave(p, "churn");
    });
  }
  if (s_.churn.lifetime_s_max > 0.0) {
    const double life = s_.churn.lifetime_s_max;
    const double notice_at = std::max(0.0, life - s_.churn.preemption_notice_s);
    ns3::Simulator::Schedule(ns3::Seconds(notice_at), [this, p, inc, life, notice_at] {
      Slot& sl = peers_[p];
      if (!sl.alive || sl.incarnation != inc) return;
      sink_.event(now(), p, "preemption_notice", EventDetail::kLifecycle,
                  {{"remaining_s", life - notice_at}});
      sl.app->on_preemption_notice(from_seconds(life - notice_at));
    });
    ns3::Simulator::Schedule(ns3::Seconds(life), [this, p, inc] {
      if (peers_[p].alive && peers_[p].incarnation == inc) leave(p, "preempted");
    });
  }
  slot.app->start();
}

void World::leave(PeerId p, const char* reason) {
  Slot& slot = peers_[p];
  if (!slot.alive) return;
  slot.alive = false;
  --alive_;
  slot.rt->shutdown();
  slot.app.reset();
  slot.rt.reset();
  network_->peer_down(p);
  sink_.count("leaves");
  sink_.event(now(), p, "leave", EventDetail::kLifecycle, {{"reason", reason}});
  if (churn_.sessions()) after_leave(p, churn_.next_downtime_s(p));
}

void World::after_leave(PeerId p, double restart_after_s) {
  if (restart_after_s < 0.0) return;
  const uint32_t inc = peers_[p].incarnation;
  ns3::Simulator::Schedule(ns3::Seconds(restart_after_s), [this, p, inc] {
    // Only if nothing else restarted it meanwhile.
    if (!peers_[p].alive && peers_[p].incarnation == inc) join(p, "restart");
  });
}

void World::schedule_faults() {
  for (size_t i = 0; i < s_.faults.size(); ++i) {
    const FaultSpec& f = s_.faults[i];
    ns3::Simulator::Schedule(ns3::Seconds(f.at_s), [this, &f, i] {
      switch (f.kind) {
        case FaultKind::kKill:
          if (f.notice_s > 0.0) {
            kill_after_notice(fault_victims(f), f, i);
          } else {
            kill(fault_victims(f), f.restart_after_s, i);
          }
          break;
        case FaultKind::kPartition:
          partition(f.regions, f.duration_s, i);
          break;
        case FaultKind::kClog:
          clog(fault_victims(f), f, i);
          break;
        case FaultKind::kLoss:
          loss(fault_victims(f), f, i);
          break;
      }
    });
  }
}

std::vector<PeerId> World::fault_victims(const FaultSpec& f) {
  std::vector<PeerId> live;
  for (PeerId p = 0; p < peers_.size(); ++p) {
    const bool named = std::find(f.peers.begin(), f.peers.end(), p) != f.peers.end();
    if (peers_[p].alive && (f.peers.empty() || named)) live.push_back(p);
  }
  // A loss fault that names no peers hits every one.
  if (f.kind == FaultKind::kLoss && f.peers.empty() && f.fraction == 0.0) return live;
  if (f.peers.empty()) {
    const size_t k = static_cast<size_t>(std::llround(f.fraction * live.size()));
    for (size_t j = 0; j < k; ++j) {  // partial Fisher-Yates from the faults stream
      std::swap(live[j], live[j + fault_rng_.uniform_int(live.size() - j)]);
    }
    live.resize(k);
  }
  return live;
}

void World::kill(const std::vector<PeerId>& victims, double restart_after_s, size_t fault) {
  world_event("fault_kill", {{"fault", fault}, {"peers", victims.size()}});
  for (PeerId p : victims) {
    const bool churn_restarts = churn_.sessions();
    leave(p, "fault_kill");
    // A fault's own restart time wins over the churn model's downtime.
    if (restart_after_s >= 0.0 && !churn_restarts) after_leave(p, restart_after_s);
  }
}

void World::kill_after_notice(const std::vector<PeerId>& victims, const FaultSpec& f,
                              size_t fault) {
  world_event("fault_notice",
              {{"fault", fault}, {"peers", victims.size()}, {"notice_s", f.notice_s}});
  std::vector<std::pair<PeerId, uint32_t>> marked;
  for (PeerId p : victims) {
    Slot& sl = peers_[p];
    marked.emplace_back(p, sl.incarnation);
    sink_.event(now(), p, "preemption_notice", EventDetail::kLifecycle,
                {{"remaining_s", f.notice_s}});
    sl.app->on_preemption_notice(from_seconds(f.notice_s));
  }
  ns3::Simulator::Schedule(ns3::Seconds(f.notice_s), [this, marked, &f, fault] {
    std::vector<PeerId> still;
    for (const auto& [p, inc] : marked) {
      if (peers_[p].alive && peers_[p].incarnation == inc) still.push_back(p);
    }
    kill(still, f.restart_after_s, fault);
  });
}

void World::clog(const std::vector<PeerId>& peers, const FaultSpec& f, size_t fault) {
  const int64_t extra_ns = std::llround(f.delay_ms * 1e6);
  for (PeerId p : peers) topology_.add_clog(p, extra_ns);
  world_event("clog_start", {{"fault", fault}, {"peers", peers.size()}, {"delay_ms", f.delay_ms}});
  ns3::Simulator::Schedule(ns3::Seconds(f.duration_s), [this, peers, extra_ns, fault] {
    for (PeerId p : peers) topology_.add_clog(p, -extra_ns);
    world_event("clog_end", {{"fault", fault}});
  });
}

void World::loss(const std::vector<PeerId>& peers, const FaultSpec& f, size_t fault) {
  const int64_t ppm = std::llround(f.loss_rate * 1e6);
  for (PeerId p : peers) topology_.add_loss(p, ppm);
  world_event("loss_start",
              {{"fault", fault}, {"peers", peers.size()}, {"loss_rate", f.loss_rate}});
  ns3::Simulator::Schedule(ns3::Seconds(f.duration_s), [this, peers, ppm, fault] {
    for (PeerId p : peers) topology_.add_loss(p, -ppm);
    world_event("loss_end", {{"fault", fault}});
  });
}

void World::partition(const std::vector<std::string>& regions, double duration_s, size_t fault) {
  std::vector<bool> side(topology_.region_count(), false);
  for (const auto& r : regions) side[topology_.region_index(r)] = true;
  topology_.set_partition(side);
  world_event("partition_start", {{"fault", fault}, {"duration_s", duration_s}});
  ns3::Simulator::Schedule(ns3::Seconds(duration_s), [this, fault] {
    topology_.clear_partition();
    world_event("partition_end", {{"fault", fault}});
  });
}

void World::sample_metrics() {
  if (out_) {
    const NetworkStats& n = network_->stats();
    const uint64_t dropped =
        n.messages_dropped_loss + n.messages_dropped_partition + n.messages_dropped_down;
    out_->metrics_row({to_seconds(now()), double(alive_), double(n.messages_sent),
                       double(n.messages_delivered), double(dropped), double(n.bytes_sent),
                       double(sink_.counter("probes_sent")), double(sink_.counter("probes_ok")),
                       double(sink_.counter("probes_failed")),
                       double(ns3::Simulator::GetEventCount())});
  }
  ns3::Simulator::Schedule(ns3::Seconds(s_.output.metrics_interval_s), &World::sample_metrics,
                           this);
}

void World::progress_tick() {
  const auto wall = std::chrono::steady_clock::now();
  if (wall - last_progress_ > std::chrono::seconds(2)) {
    last_progress_ = wall;
    const double el = std::chrono::duration<double>(wall - wall_start_).count();
    const double t = to_seconds(now());
    const double eta = t > 0 ? el * (s_.duration_s - t) / t : 0.0;
    const std::string line = workload_progress(s_, sink_);
    if (!line.empty() && line != last_progress_line_) {  // the workload's news on a line of its own
      last_progress_line_ = line;
      std::fprintf(stderr, "\r[sim] %s%40s\n", line.c_str(), "");
    }
    std::fprintf(stderr, "\r[sim] t=%.0f/%.0f s  peers=%u  events/s=%.3g  eta=%.0f s   ", t,
                 s_.duration_s, alive_, double(ns3::Simulator::GetEventCount()) / el, eta);
    std::fflush(stderr);
  }
  ns3::Simulator::Schedule(ns3::Seconds(1), &World::progress_tick, this);
}

// The run folder (when the run writes files), its peers' disks emptied first.
Status World::open_outputs() {
  if (!o_.write_files) return Status();
  const std::string dir = o_.out_dir.empty() ? output_dir_for(s_) : o_.out_dir;
  auto out = RunOutput::open(dir, kCsvColumns, sink_);
  if (!out.ok()) return out.status();
  out_ = std::move(out.value());
  // The peers' disks: nothing of an earlier run in this folder may leak into this one.
  state_root_ = dir + "/state";
  std::error_code ec;
  std::filesystem::remove_all(state_root_, ec);
  return Status();
}

// A fresh ns-3 simulator seeded from the scenario, the network model of network.fidelity, and
// the context every app gets.
void World::start_network() {
  ns3::Simulator::Destroy();
  if (s_.peers.count > 20000) {
    ns3::ObjectFactory f;
    f.SetTypeId("ns3::HeapScheduler");
    ns3::Simulator::SetScheduler(f);
  }
  ns3::RngSeedManager::SetSeed(static_cast<uint32_t>(derive_seed(s_.seed, "ns3") % 0x7FFFFFFF) + 1);
  ns3::RngSeedManager::SetRun(1);
  fault_rng_ = Rng(derive_seed(s_.seed, "faults"));
  auto on_deliver = [this](PeerId f, PeerId t, Message m) { deliver(f, t, std::move(m)); };
  const uint64_t loss_seed = derive_seed(s_.seed, "loss");
  network_ = s_.network.fidelity == Fidelity::kPacket
                 ? make_packet_network(topology_, s_.network, loss_seed, on_deliver)
                 : make_message_network(topology_, s_.network, loss_seed, on_deliver);
  auto ids = std::make_shared<std::vector<PeerId>>(s_.peers.count);
  for (PeerId p = 0; p < s_.peers.count; ++p) (*ids)[p] = p;
  context_.peers = ids;
  context_.shared = make_workload_shared(s_);
  if (s_.peers.has_clients()) {
    context_.is_client = [this](PeerId p) { return peers_[p].reached != nullptr; };
  }
}

// Every peer online at the start joins now; the others when churn or their trace says.
void World::schedule_joins() {
  for (PeerId p = 0; p < s_.peers.count; ++p) {
    if (churn_.initially_online(p)) {
      join(p, "start");
    } else if (churn_.sessions()) {
      const uint32_t inc = peers_[p].incarnation;
      ns3::Simulator::Schedule(ns3::Seconds(churn_.next_downtime_s(p)), [this, p, inc] {
        if (!peers_[p].alive && peers_[p].incarnation == inc) join(p, "churn");
      });
    }
    if (!churn_.trace()) continue;
    if (const auto* sessions = churn_.trace_sessions(p)) {
      for (const auto& t : *sessions) {
        if (t.start_s > 0.0) {
          ns3::Simulator::Schedule(ns3::Seconds(t.start_s), [this, p] { join(p, "trace"); });
        }
      }
    }
  }
}

// summary.json: the shared run summary plus the simulated world's network figures.
nlohmann::json World::summary() {
  RunFacts facts;
  facts.world = "sim";
  facts.peers = s_.peers.count;
  facts.sim_time_s = to_seconds(now());
  facts.wall_time_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start_).count();
  facts.reproduce = reproduce_command(s_, o_.overrides, "run");
  nlohmann::json sum = run_summary(s_, sink_, facts);
  const NetworkStats& n = network_->stats();
  sum["fidelity"] = enum_name(fidelity_names(), s_.network.fidelity);
  sum["events_processed"] = ns3::Simulator::GetEventCount();
  sum["messages_sent"] = n.messages_sent;
  sum["messages_delivered"] = n.messages_delivered;
  sum["messages_dropped_loss"] = n.messages_dropped_loss;
  sum["messages_dropped_partition"] = n.messages_dropped_partition;
  sum["messages_dropped_down"] = n.messages_dropped_down;
  sum["bytes_sent"] = n.bytes_sent;
  sum["bytes_delivered"] = n.bytes_delivered;
  sum["connections_opened"] = n.connections_opened;
  sum["alive_peers_at_end"] = alive_;
  sum["peak_rss_mib"] = peak_rss_mib();
  if (churn_.trace()) sum["churn_trace"] = churn_.trace_summary();
  return sum;
}

Result<nlohmann::json> World::run() {
  wall_start_ = last_progress_ = std::chrono::steady_clock::now();
  const EventLevel events = s_.output.events;
  sink_.set_detail(
      (events == EventLevel::kAll || (events == EventLevel::kAuto && s_.peers.count <= 10000))
          ? EventDetail::kOperation
          : EventDetail::kLifecycle);
  if (s_.liveness.from_s >= 0.0) sink_.set_liveness_from(from_seconds(s_.liveness.from_s));
  if (Status st = open_outputs(); !st.ok()) return st;
  std::fprintf(stderr, "[sim] reproduce: %s\n", reproduce_command(s_, o_.overrides, "run").c_str());
  start_network();
  world_event("run_start", {{"peers", s_.peers.count}, {"seed", s_.seed}});
  schedule_joins();
  schedule_faults();
  ns3::Simulator::Schedule(ns3::Seconds(0), &World::sample_metrics, this);
  const bool progress = o_.progress && s_.output.progress;
  if (progress) ns3::Simulator::Schedule(ns3::Seconds(1), &World::progress_tick, this);
  ns3::Simulator::Stop(ns3::Seconds(s_.duration_s));
  ns3::Simulator::Run();
  if (progress) std::fprintf(stderr, "\n");
  for (PeerId p = 0; p < peers_.size(); ++p) {
    if (peers_[p].alive) peers_[p].app->stop();
  }
  if (!app_error_.empty()) return Status::error(app_error_);
  world_event("run_end", {{"alive_peers", alive_}});
  nlohmann::json sum = summary();
  if (out_) {
    sink_.close_event_file();
    Status st = out_->write_summary(sum);
    if (!st.ok()) return st;
    sum["output_dir"] = out_->dir();
  }
  return sum;
}

}  // namespace

Result<nlohmann::json> run_simulation(const Scenario& scenario, const SimOptions& options) {
  if (!is_peer_workload(scenario.workload.kind)) {
    return Status::error("workload.kind: '" + scenario.workload.kind +
                         "' is not a peer workload the simulated world can run");
  }
  auto topology = Topology::build(scenario);
  if (!topology.ok()) return topology.status();
  auto churn = ChurnPlan::create(scenario);
  if (!churn.ok()) return churn.status();
  for (const FaultSpec& f : scenario.faults) {
    for (const auto& r : f.regions) {
      if (topology->region_index(r) < 0)
        return Status::error("faults: no region named '" + r + "'");
    }
  }
  auto world = std::make_unique<World>(scenario, options, std::move(topology.value()),
                                       std::move(churn.value()));
  return world->run();
}

}  // namespace crowdtrain::sim
