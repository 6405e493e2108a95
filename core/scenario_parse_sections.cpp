// The per-section readers of the scenario JSON: every key, its type and its range. Cross-section
// checks (fault peers against peers.count, region names, CSV files) are in scenario.cpp; each
// workload kind reads and checks its own subtree (core/workload.h).

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/scenario_parse.h"
#include "core/workload.h"

namespace crowdtrain::scenario_detail {

using nlohmann::json;

namespace {

constexpr double kMaxPeers = 10'000'000;
constexpr double kMaxMessageBytes = 4294967296.0;  // 4 GiB

// A non-empty string (names, region names).
void read_name(JsonReader& r, const std::string& key, std::string& out) {
  r.read(key, out);
  if (r.ok() && r.has(key) && out.empty()) r.fail(r.path_of(key), "must not be empty");
}

}  // namespace

// peers.clients: a fraction of the peers or a list of peer ids.
void read_clients(JsonReader& r, PeersSpec& out) {
  if (!r.has("clients")) return (void)r.take("clients");
  const nlohmann::json* v = r.take("clients");
  if (v == nullptr) return;
  const std::string path = r.path_of("clients");
  if (v->is_number()) {
    auto f = json_to_double(*v, path, NumberRange::fraction());
    return f.ok() ? (void)(out.client_fraction = f.value()) : r.absorb(f.status());
  }
  if (!v->is_array()) {
    return r.fail(path,
                  "expected a fraction of the peers (a number in [0, 1]) or an array of "
                  "peer ids");
  }
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < v->size() && r.ok(); ++i) {
    auto id =
        json_to_uint((*v)[i], json_index_path(path, i), NumberRange::closed(0, kMaxPeers - 1));
    id.ok() ? ids.push_back(static_cast<uint32_t>(id.value())) : r.absorb(id.status());
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  out.client_ids = std::move(ids);
}

void read_peers(JsonReader& r, PeersSpec& out, std::vector<bool>& class_sets_upload,
                std::vector<bool>& class_sets_download) {
  r.read("count", out.count, NumberRange::closed(1, kMaxPeers));
  read_clients(r, out);
  if (!r.has("classes")) return (void)r.take("classes");
  std::vector<PeerClassSpec> classes;
  std::set<std::string> names;
  r.objects("classes", [&](JsonReader& c, size_t index) {
    PeerClassSpec spec;
    spec.name = "class" + std::to_string(index);
    read_name(c, "name", spec.name);
    if (c.ok() && !names.insert(spec.name).second) {
      c.fail(c.path_of("name"), "duplicate class name \"" + spec.name + "\"");
    }
    c.read("fraction", spec.fraction, NumberRange::fraction());
    c.read("flops_per_s", spec.flops_per_s, NumberRange::positive());
    class_sets_upload.push_back(c.has("upload_mbps"));
    class_sets_download.push_back(c.has("download_mbps"));
    spec.has_bandwidth = c.has("upload_mbps") || c.has("download_mbps");
    read_dist(c, "upload_mbps", spec.upload_mbps, /*positive=*/true);
    read_dist(c, "download_mbps", spec.download_mbps, /*positive=*/true);
    classes.push_back(std::move(spec));
  });
  if (!r.ok()) return;
  if (classes.empty()) return r.fail(r.path_of("classes"), "must list at least one class");
  double total = 0.0;
  for (const auto& c : classes) total += c.fraction;
  if (total <= 0.0) return r.fail(r.path_of("classes"), "the fractions must not all be 0");
  out.classes = std::move(classes);
}

void read_network(JsonReader& r, NetworkSpec& out) {
  r.read_enum("fidelity", out.fidelity, fidelity_names());
  read_dist(r, "access_latency_ms", out.access_latency_ms, /*positive=*/false);
  read_dist(r, "delay_ms", out.delay_ms, /*positive=*/false);
  read_dist(r, "upload_mbps", out.upload_mbps, /*positive=*/true);
  read_dist(r, "download_mbps", out.download_mbps, /*positive=*/true);
  r.object("regions", [&](JsonReader& g) {
    g.read("rtt_csv", out.regions.rtt_csv);
    if (const json* w = g.take("weights")) {
      const std::string path = g.path_of("weights");
      if (!w->is_object()) return g.fail(path, "expected an object, got " + json_type_name(*w));
      double total = 0.0;
      for (auto it = w->begin(); it != w->end() && g.ok(); ++it) {
        auto v = json_to_double(*it, json_child_path(path, it.key()), NumberRange::non_negative());
        if (!v.ok()) return g.absorb(v.status());
        out.regions.weights[it.key()] = v.value();
        total += v.value();
      }
      if (!w->empty() && total <= 0.0) g.fail(path, "the weights must not all be 0");
    }
  });
  r.read("loss_rate", out.loss_rate, NumberRange::half_open(0, 1));
  r.read("tcp_segment_bytes", out.tcp_segment_bytes, NumberRange::closed(536, 65000));
  r.read("core_bandwidth_gbps", out.core_bandwidth_gbps, NumberRange::positive());
  r.read("max_message_bytes", out.max_message_bytes, NumberRange::closed(1, kMaxMessageBytes));
  r.read("serialize", out.serialize);
  r.read("tcp_effects", out.tcp_effects);
  if (r.ok() && out.fidelity == Fidelity::kPacket &&
      (out.delay_ms.kind != DistSpec::Kind::kConstant || out.delay_ms.value > 0)) {
    r.fail(r.path_of("delay_ms"), "is modelled at message fidelity only (network.fidelity)");
  }
}

void read_churn(JsonReader& r, ChurnSpec& out) {
  r.read_enum("model", out.model, churn_model_names());
  read_dist(r, "session_s", out.session_s, /*positive=*/true);
  read_dist(r, "downtime_s", out.downtime_s, /*positive=*/false);
  r.read("initial_online_fraction", out.initial_online_fraction, NumberRange::fraction());
  bool trace_given = false;
  read_trace_spec(r, out.trace, trace_given);
  r.read("lifetime_s_max", out.lifetime_s_max, NumberRange::non_negative());
  r.read("preemption_notice_s", out.preemption_notice_s, NumberRange::non_negative());
  if (r.ok() && out.model == ChurnModel::kTrace && !trace_given) {
    r.fail(r.path_of("trace"),
           "required when churn.model is \"trace\" (or its shorthand trace_csv)");
  }
}

namespace {

// kill, clog, loss: which peers, by share or by id. `required`: one of the two must be given.
void read_fault_peers(JsonReader& f, FaultSpec& spec, bool required, const char* kind) {
  if (f.has("peers")) {
    f.read_uint_list("peers", spec.peers, NumberRange::closed(0, kMaxPeers - 1));
    if (f.has("fraction")) f.fail(f.path_of("fraction"), "give either fraction or peers");
  } else if (!required || f.require("fraction", std::string("(or peers) for a ") + kind)) {
    f.read("fraction", spec.fraction, NumberRange::fraction());
  }
}

void read_fault_duration(JsonReader& f, FaultSpec& spec, const char* kind) {
  if (f.require("duration_s", std::string("for a ") + kind)) {
    f.read("duration_s", spec.duration_s, NumberRange::positive());
  }
}

void read_partition(JsonReader& f, FaultSpec& spec) {
  if (f.require("regions", "for a partition")) {
    f.array("regions", [&](const json& item, const std::string& path) {
      auto name = json_to_string(item, path);
      if (!name.ok()) return f.absorb(name.status());
      if (name.value().empty()) return f.fail(path, "must not be empty");
      spec.regions.push_back(name.value());
    });
    if (f.ok() && spec.regions.empty()) {
      f.fail(f.path_of("regions"), "must name at least one region");
    }
  }
  read_fault_duration(f, spec, "partition");
}

void read_fault(JsonReader& f, FaultSpec& spec) {
  switch (spec.kind) {
    case FaultKind::kKill:
      read_fault_peers(f, spec, /*required=*/true, "kill");
      f.read("restart_after_s", spec.restart_after_s);
      f.read("notice_s", spec.notice_s, NumberRange::non_negative());
      break;
    case FaultKind::kPartition:
      read_partition(f, spec);
      break;
    case FaultKind::kClog:
      read_fault_peers(f, spec, /*required=*/true, "clog");
      read_fault_duration(f, spec, "clog");
      if (f.require("delay_ms", "for a clog")) {
        f.read("delay_ms", spec.delay_ms, NumberRange::positive());
      }
      break;
    case FaultKind::kLoss:
      read_fault_peers(f, spec, /*required=*/false, "loss");
      read_fault_duration(f, spec, "loss");
      if (f.require("loss_rate", "for a loss")) {
        f.read("loss_rate", spec.loss_rate, NumberRange{0.0, 1.0, true, false});  // (0, 1]
      }
      break;
  }
}

}  // namespace

void read_faults(JsonReader& r, std::vector<FaultSpec>& out) {
  r.objects("faults", [&](JsonReader& f, size_t) {
    FaultSpec spec;
    f.read("at_s", spec.at_s, NumberRange::non_negative());
    if (!f.require("kind", "(\"kill\", \"partition\", \"clog\" or \"loss\")")) return;
    f.read_enum("kind", spec.kind, fault_kind_names());
    if (!f.ok()) return;
    read_fault(f, spec);
    out.push_back(std::move(spec));
  });
}

void read_compute(JsonReader& r, ComputeSpec& out) {
  r.read_enum("mode", out.mode, compute_mode_names());
}

void read_workload(JsonReader& r, WorkloadSpec& out) {
  std::vector<std::string> kinds;
  for (const auto& k : workload_kinds()) kinds.push_back(k.name);
  r.read_choice("kind", out.kind, kinds);
  // The kinds that own their readers (core/workload.h) read their own subtree.
  for (const auto& k : workload_kinds()) {
    if (!k.read) continue;
    r.object(k.name, [&](JsonReader& w) { out.options[k.name] = k.read(w); });
  }
}

void read_output(JsonReader& r, OutputSpec& out) {
  r.read("dir", out.dir);
  r.read("metrics_interval_s", out.metrics_interval_s, NumberRange::positive());
  r.read_enum("events", out.events, event_level_names());
  r.read("progress", out.progress);
}

}  // namespace crowdtrain::scenario_detail
