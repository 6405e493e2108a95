// The scenario reader: defaults, every key, error messages that name the JSON path, overrides,
// distribution forms, and loading files with relative CSV paths.

#include "core/scenario.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/probe.h"
#include "core/transfers_options.h"

namespace crowdtrain {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The error of parsing `text` (which must fail).
std::string error_of(const std::string& text) {
  auto r = parse_scenario(json::parse(text));
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.error();
}

// A fresh temporary folder, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "ct_scenario_XXXXXX").string();
    path_ = mkdtemp(templ.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path write(const std::string& name, const std::string& text) const {
    fs::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

const char* kMatrix =
    ",a,b,c\n"
    "a,0,20,80\n"
    "b,20,0,70\n"
    "c,80,70,0\n";

TEST(ScenarioTest, EmptyObjectGivesDefaults) {
  auto r = parse_scenario(json::object());
  ASSERT_TRUE(r.ok()) << r.error();
  const Scenario& s = r.value();
  const Scenario d;
  EXPECT_EQ(s.name, "unnamed");
  EXPECT_EQ(s.seed, 1u);
  EXPECT_EQ(s.duration_s, 30.0);
  EXPECT_EQ(s.peers.count, 100u);
  ASSERT_EQ(s.peers.classes.size(), 1u);
  EXPECT_EQ(s.peers.classes[0].name, "default");
  EXPECT_FALSE(s.peers.classes[0].has_bandwidth);
  EXPECT_EQ(s.network.fidelity, Fidelity::kMessage);
  EXPECT_EQ(s.network.upload_mbps.kind, DistSpec::Kind::kConstant);
  EXPECT_EQ(s.network.upload_mbps.value, 100.0);
  EXPECT_EQ(s.network.access_latency_ms.value, 5.0);
  EXPECT_EQ(s.network.tcp_segment_bytes, 1448u);
  EXPECT_EQ(s.network.max_message_bytes, d.network.max_message_bytes);
  EXPECT_TRUE(s.network.regions.rtt_csv.empty());
  EXPECT_EQ(s.churn.model, ChurnModel::kNone);
  EXPECT_TRUE(s.faults.empty());
  EXPECT_EQ(s.compute.mode, ComputeMode::kModel);
  EXPECT_EQ(s.workload.kind, "probe");
  EXPECT_EQ(transfers_options_of(s).sizes_bytes, TransfersOptions{}.sizes_bytes);
  EXPECT_EQ(s.output.events, EventLevel::kAuto);
  EXPECT_TRUE(s.output.progress);
  EXPECT_EQ(s.resolved, json::object());
  EXPECT_EQ(s.source_path, "");
}

TEST(ScenarioTest, ReadsEveryKey) {
  TempDir dir;
  const std::string matrix = dir.write("m.csv", kMatrix).string();
  const std::string trace = dir.write("t.csv", "peer,join_s,leave_s\n0,0,10\n").string();
  json doc = json::parse(R"({
    "name": "full", "description": "every key", "seed": 42, "duration_s": 120.5,
    "peers": {"count": 5000, "classes": [
      {"name": "gpu", "fraction": 0.25, "flops_per_s": 2e13, "upload_mbps": 500},
      {"name": "cpu", "fraction": 0.75, "flops_per_s": 1e11}]},
    "network": {"fidelity": "packet", "access_latency_ms": {"dist": "uniform", "min": 1, "max": 9},
      "upload_mbps": 20, "download_mbps": 80,
      "regions": {"rtt_csv": "", "weights": {"a": 2, "b": 1}},
      "loss_rate": 0.01, "tcp_segment_bytes": 1400, "core_bandwidth_gbps": 40,
      "max_message_bytes": 1000000, "serialize": true},
    "churn": {"model": "trace", "session_s": {"dist": "exponential", "mean": 600},
      "downtime_s": 60, "initial_online_fraction": 0.5, "trace_csv": "",
      "lifetime_s_max": 3600, "preemption_notice_s": 10},
    "faults": [{"at_s": 5, "kind": "kill", "fraction": 0.3, "restart_after_s": 20},
               {"at_s": 8, "kind": "partition", "regions": ["a"], "duration_s": 4}],
    "compute": {"mode": "measured"},
    "workload": {"kind": "transfers",
      "probe": {"rate_hz": 2, "request_bytes": 10, "response_bytes": 20, "timeout_s": 3,
                "retries": 2},
      "transfers": {"sizes_bytes": [100, 1e5], "concurrency": [2], "pairs": 3}},
    "output": {"dir": "out/x", "metrics_interval_s": 0.5, "events": "lifecycle",
               "progress": false}})");
  doc["network"]["regions"]["rtt_csv"] = matrix;
  doc["churn"]["trace_csv"] = trace;
  auto r = parse_scenario(doc);
  ASSERT_TRUE(r.ok()) << r.error();
  const Scenario& s = r.value();
  EXPECT_EQ(s.name, "full");
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(s.duration_s, 120.5);
  EXPECT_EQ(s.peers.count, 5000u);
  ASSERT_EQ(s.peers.classes.size(), 2u);
  EXPECT_EQ(s.peers.classes[0].name, "gpu");
  EXPECT_EQ(s.peers.classes[0].fraction, 0.25);
  EXPECT_EQ(s.peers.classes[0].flops_per_s, 2e13);
  EXPECT_TRUE(s.peers.classes[0].has_bandwidth);
  EXPECT_EQ(s.peers.classes[0].upload_mbps.value, 500.0);
  EXPECT_EQ(s.peers.classes[0].download_mbps.value, 80.0);  // network's, as the class sets none
  EXPECT_FALSE(s.peers.classes[1].has_bandwidth);
  EXPECT_EQ(s.network.fidelity, Fidelity::kPacket);
  EXPECT_EQ(s.network.access_latency_ms.kind, DistSpec::Kind::kUniform);
  EXPECT_EQ(s.network.access_latency_ms.max, 9.0);
  EXPECT_EQ(s.network.upload_mbps.value, 20.0);
  EXPECT_EQ(s.network.download_mbps.value, 80.0);
  EXPECT_EQ(s.network.regions.rtt_csv, matrix);
  EXPECT_EQ(s.network.regions.weights.at("a"), 2.0);
  EXPECT_EQ(s.network.loss_rate, 0.01);
  EXPECT_EQ(s.network.tcp_segment_bytes, 1400u);
  EXPECT_EQ(s.network.core_bandwidth_gbps, 40.0);
  EXPECT_EQ(s.network.max_message_bytes, 1000000u);
  EXPECT_TRUE(s.network.serialize);
  EXPECT_EQ(s.churn.model, ChurnModel::kTrace);
  EXPECT_EQ(s.churn.session_s.kind, DistSpec::Kind::kExponential);
  EXPECT_EQ(s.churn.session_s.mean, 600.0);
  EXPECT_EQ(s.churn.downtime_s.value, 60.0);
  EXPECT_EQ(s.churn.initial_online_fraction, 0.5);
  EXPECT_EQ(s.churn.trace.path, trace);
  EXPECT_EQ(s.churn.lifetime_s_max, 3600.0);
  EXPECT_EQ(s.churn.preemption_notice_s, 10.0);
  ASSERT_EQ(s.faults.size(), 2u);
  EXPECT_EQ(s.faults[0].kind, FaultKind::kKill);
  EXPECT_EQ(s.faults[0].at_s, 5.0);
  EXPECT_EQ(s.faults[0].fraction, 0.3);
  EXPECT_EQ(s.faults[0].restart_after_s, 20.0);
  EXPECT_EQ(s.faults[1].kind, FaultKind::kPartition);
  EXPECT_EQ(s.faults[1].regions, std::vector<std::string>{"a"});
  EXPECT_EQ(s.faults[1].duration_s, 4.0);
  EXPECT_EQ(s.compute.mode, ComputeMode::kMeasured);
  EXPECT_EQ(s.workload.kind, "transfers");
  EXPECT_EQ(probe_options_of(s).rate_hz, 2.0);
  EXPECT_EQ(probe_options_of(s).request_bytes, 10u);
  EXPECT_EQ(probe_options_of(s).response_bytes, 20u);
  EXPECT_EQ(probe_options_of(s).timeout_s, 3.0);
  EXPECT_EQ(probe_options_of(s).retries, 2);
  EXPECT_EQ(transfers_options_of(s).sizes_bytes, (std::vector<uint64_t>{100, 100000}));
  EXPECT_EQ(transfers_options_of(s).concurrency, std::vector<uint32_t>{2});
  EXPECT_EQ(transfers_options_of(s).pairs, 3u);
  EXPECT_EQ(s.output.dir, "out/x");
  EXPECT_EQ(s.output.metrics_interval_s, 0.5);
  EXPECT_EQ(s.output.events, EventLevel::kLifecycle);
  EXPECT_FALSE(s.output.progress);
  EXPECT_EQ(s.resolved, doc);
}

TEST(ScenarioTest, UnknownKeysNameTheirPath) {
  EXPECT_EQ(error_of(R"({"network": {"bandwidth": 5}})")
                .rfind("network.bandwidth: unknown key (known: fidelity, access_latency_ms, "
                       "delay_ms, upload_mbps",
                       0),
            0u);
  EXPECT_EQ(
      error_of(R"({"sead": 5})").rfind("sead: unknown key (known: name, description, seed", 0), 0u);
  EXPECT_EQ(
      error_of(
          R"({"faults": [{"kind": "kill", "fraction": 1}, {"kind": "kill", "fraction": 0.5, "regions": ["a"]}]})")
          .rfind("faults[1].regions: unknown key (known: at_s, kind, fraction, restart_after_s, "
                 "notice_s)",
                 0),
      0u);
  EXPECT_EQ(error_of(R"({"network": {"regions": {"csv": "x"}}})")
                .rfind("network.regions.csv: unknown key", 0),
            0u);
  EXPECT_EQ(
      error_of(R"({"network": {"upload_mbps": {"dist": "exponential", "mean": 5, "max": 9}}})"),
      "network.upload_mbps.max: unknown key (known: dist, mean)");
}

TEST(ScenarioTest, WrongTypesNameTheirPath) {
  EXPECT_EQ(error_of(R"({"peers": {"count": "many"}})"),
            "peers.count: expected an unsigned integer, got a string");
  EXPECT_EQ(error_of(R"({"peers": {"count": 1.5}})"),
            "peers.count: expected an unsigned integer, got 1.5");
  EXPECT_EQ(error_of(R"({"seed": -1})"), "seed: expected an unsigned integer, got -1");
  EXPECT_EQ(error_of(R"({"duration_s": "10"})"), "duration_s: expected a number, got a string");
  EXPECT_EQ(error_of(R"({"network": 5})"), "network: expected an object, got 5");
  EXPECT_EQ(error_of(R"({"network": {"serialize": 1}})"),
            "network.serialize: expected true or false, got 1");
  EXPECT_EQ(error_of(R"({"faults": {}})"), "faults: expected an array, got an object");
  EXPECT_EQ(error_of(R"({"faults": [3]})"), "faults[0]: expected an object, got 3");
  EXPECT_EQ(error_of(R"({"workload": {"transfers": {"sizes_bytes": [1, "x"]}}})"),
            "workload.transfers.sizes_bytes[1]: expected an unsigned integer, got a string");
  EXPECT_EQ(error_of("[1]"), "scenario: expected an object, got an array");
  auto thousand = parse_scenario(json::parse(R"({"peers": {"count": 1e3}})"));
  ASSERT_TRUE(thousand.ok()) << thousand.error();  // integral floats are integers
  EXPECT_EQ(thousand->peers.count, 1000u);
}

TEST(ScenarioTest, OutOfRangeValues) {
  EXPECT_EQ(error_of(R"({"network": {"upload_mbps": -3}})"),
            "network.upload_mbps: must be > 0, got -3");
  EXPECT_EQ(error_of(R"({"network": {"download_mbps": 0}})"),
            "network.download_mbps: must be > 0, got 0");
  EXPECT_EQ(error_of(R"({"network": {"access_latency_ms": -1}})"),
            "network.access_latency_ms: must be >= 0, got -1");
  EXPECT_EQ(error_of(R"({"network": {"loss_rate": 1}})"),
            "network.loss_rate: must be in [0, 1), got 1");
  EXPECT_EQ(error_of(R"({"network": {"tcp_segment_bytes": 100}})"),
            "network.tcp_segment_bytes: must be in [536, 65000], got 100");
  EXPECT_EQ(error_of(R"({"network": {"fidelity": "flow"}})"),
            "network.fidelity: must be one of \"message\", \"packet\", got \"flow\"");
  EXPECT_EQ(error_of(R"({"peers": {"count": 0}})"), "peers.count: must be in [1, 10000000], got 0");
  EXPECT_EQ(error_of(R"({"peers": {"count": 10000001}})"),
            "peers.count: must be in [1, 10000000], got 10000001");
  EXPECT_EQ(error_of(R"({"duration_s": 0})"), "duration_s: must be > 0, got 0");
  EXPECT_EQ(error_of(R"({"churn": {"initial_online_fraction": 1.5}})"),
            "churn.initial_online_fraction: must be in [0, 1], got 1.5");
  EXPECT_EQ(error_of(R"({"churn": {"model": "trace"}})"),
            "churn.trace: required when churn.model is \"trace\" (or its shorthand trace_csv)");
  EXPECT_EQ(error_of(R"({"faults": [{"at_s": 1}]})"),
            "faults[0].kind: required (\"kill\", \"partition\", \"clog\" or \"loss\")");
  EXPECT_EQ(error_of(R"({"faults": [{"kind": "kill"}]})"),
            "faults[0].fraction: required (or peers) for a kill");
  EXPECT_EQ(error_of(R"({"faults": [{"kind": "kill", "fraction": 2}]})"),
            "faults[0].fraction: must be in [0, 1], got 2");
  EXPECT_EQ(error_of(R"({"faults": [{"kind": "partition", "regions": ["a"]}]})"),
            "faults[0].duration_s: required for a partition");
  EXPECT_EQ(error_of(R"({"faults": [{"kind": "partition", "regions": ["a"], "duration_s": 1}]})"),
            "faults[0]: a partition needs regions: set network.regions.rtt_csv");
  EXPECT_EQ(
      error_of(R"({"faults": [{"kind": "crash"}]})"),
      "faults[0].kind: must be one of \"kill\", \"partition\", \"clog\", \"loss\", got \"crash\"");
  EXPECT_EQ(error_of(R"({"workload": {"kind": "train"}})"),
            "workload.kind: must be one of \"probe\", \"transfers\", \"dht\", \"averaging\", "
            "\"training\", \"moe\", got \"train\"");
  EXPECT_EQ(error_of(R"({"workload": {"probe": {"rate_hz": -1}}})"),
            "workload.probe.rate_hz: must be >= 0, got -1");
  EXPECT_EQ(error_of(R"({"workload": {"probe": {"timeout_s": 0}}})"),
            "workload.probe.timeout_s: must be > 0, got 0");
  EXPECT_EQ(error_of(R"({"workload": {"probe": {"retries": 101}}})"),
            "workload.probe.retries: must be in [0, 100], got 101");
  EXPECT_EQ(error_of(R"({"workload": {"probe": {"request_bytes": 2000}},
                         "network": {"max_message_bytes": 1000}})"),
            "workload.probe.request_bytes: must be <= network.max_message_bytes (1000), got 2000");
  EXPECT_EQ(
      error_of(R"({"workload": {"kind": "transfers", "transfers": {"pairs": 51}}})"),
      "workload.transfers.pairs: needs 2 peers per pair, more than peers.count (100), got 51");
  EXPECT_EQ(error_of(R"({"workload": {"transfers": {"concurrency": []}}})"),
            "workload.transfers.concurrency: must not be empty");
  EXPECT_EQ(error_of(R"({"output": {"events": "some"}})"),
            "output.events: must be one of \"all\", \"lifecycle\", \"auto\", got \"some\"");
  EXPECT_EQ(error_of(R"({"output": {"metrics_interval_s": 0}})"),
            "output.metrics_interval_s: must be > 0, got 0");
  EXPECT_EQ(error_of(R"({"compute": {"mode": "guess"}})"),
            "compute.mode: must be one of \"model\", \"measured\", got \"guess\"");
  EXPECT_EQ(error_of(R"({"peers": {"classes": []}})"),
            "peers.classes: must list at least one class");
  EXPECT_EQ(error_of(R"({"peers": {"classes": [{"name": "x"}, {"name": "x"}]}})"),
            "peers.classes[1].name: duplicate class name \"x\"");
  EXPECT_EQ(error_of(R"({"peers": {"classes": [{"flops_per_s": 0}]}})"),
            "peers.classes[0].flops_per_s: must be > 0, got 0");
  EXPECT_EQ(error_of(R"({"name": "a/b"})").rfind("name: must be a non-empty name", 0), 0u);
  EXPECT_EQ(error_of(R"({"network": {"regions": {"weights": {"a": 1}}}})"),
            "network.regions.weights: needs network.regions.rtt_csv (one region)");
}

TEST(ScenarioTest, DistributionForms) {
  auto dist = [](const std::string& text, bool positive = false) {
    return parse_dist(json::parse(text), "x", positive);
  };
  auto c = dist("7");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, DistSpec::Kind::kConstant);
  EXPECT_EQ(c->value, 7.0);
  EXPECT_EQ(dist(R"({"dist": "constant", "value": 3})")->value, 3.0);
  auto u = dist(R"({"dist": "uniform", "min": 1, "max": 4})");
  EXPECT_EQ(u->min, 1.0);
  EXPECT_EQ(u->max, 4.0);
  EXPECT_EQ(dist(R"({"dist": "exponential", "mean": 2})")->mean, 2.0);
  auto n = dist(R"({"dist": "normal", "mean": 10, "stddev": 2})");
  EXPECT_EQ(n->kind, DistSpec::Kind::kNormal);
  EXPECT_EQ(n->stddev, 2.0);
  auto l = dist(R"({"dist": "lognormal", "median": 50, "sigma": 0.5})");
  EXPECT_EQ(l->median, 50.0);
  EXPECT_EQ(l->sigma, 0.5);
  auto w = dist(R"({"dist": "weibull", "shape": 0.5, "scale": 100})");
  EXPECT_EQ(w->shape, 0.5);
  EXPECT_EQ(w->scale, 100.0);
  auto wm = dist(R"({"dist": "weibull", "shape": 2, "median": 10})");
  ASSERT_TRUE(wm.ok()) << wm.error();
  EXPECT_NEAR(wm->scale, 10.0 / std::sqrt(std::log(2.0)), 1e-9);
  // The median of weibull(k, s) is s * ln(2)^(1/k).
  EXPECT_NEAR(wm->scale * std::pow(std::log(2.0), 0.5), 10.0, 1e-9);
  auto p = dist(R"({"dist": "percentiles", "table": [[0, 1], [0.5, 10], [1, 100]]})");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->table.size(), 3u);
  EXPECT_EQ(p->table[1], std::make_pair(0.5, 10.0));

  EXPECT_EQ(dist("-3").error(), "x: must be >= 0, got -3");
  EXPECT_EQ(dist("0", true).error(), "x: must be > 0, got 0");
  EXPECT_EQ(dist("\"5\"").error(),
            "x: expected a number or a distribution object ({\"dist\": ...}), got a string");
  EXPECT_EQ(dist(R"({"mean": 5})").error().rfind("x.dist: required", 0), 0u);
  EXPECT_EQ(dist(R"({"dist": "gamma"})").error().rfind("x.dist: must be one of \"constant\"", 0),
            0u);
  EXPECT_EQ(dist(R"({"dist": "uniform", "min": 5, "max": 3})").error(),
            "x.max: must be >= min (5), got 3");
  EXPECT_EQ(dist(R"({"dist": "exponential"})").error(), "x.mean: required for \"exponential\"");
  EXPECT_EQ(dist(R"({"dist": "exponential", "mean": 0})").error(), "x.mean: must be > 0, got 0");
  EXPECT_EQ(dist(R"({"dist": "normal", "mean": 1, "stddev": -1})").error(),
            "x.stddev: must be >= 0, got -1");
  EXPECT_EQ(dist(R"({"dist": "lognormal", "median": 0, "sigma": 1})").error(),
            "x.median: must be > 0, got 0");
  EXPECT_EQ(dist(R"({"dist": "weibull", "shape": 0, "scale": 1})").error(),
            "x.shape: must be > 0, got 0");
  EXPECT_EQ(dist(R"({"dist": "weibull", "shape": 1})").error(),
            "x.scale: required for \"weibull\" (or give \"median\")");
  EXPECT_EQ(dist(R"({"dist": "weibull", "shape": 1, "scale": 1, "median": 1})").error(),
            "x: weibull takes \"scale\" or \"median\", not both");
  EXPECT_EQ(
      dist(R"({"dist": "percentiles", "table": [[0, 1], [0.5, 3], [0.4, 5], [1, 6]]})").error(),
      "x.table[2][0]: q must rise from row to row, got 0.4 after 0.5");
  EXPECT_EQ(dist(R"({"dist": "percentiles", "table": [[0, 1], [1, -2]]})").error(),
            "x.table[1][1]: must be >= 0, got -2");
  EXPECT_EQ(dist(R"({"dist": "percentiles", "table": [[0, 5], [1, 2]]})").error(),
            "x.table[1][1]: values must not fall as q rises, got 2 after 5");
  EXPECT_EQ(dist(R"({"dist": "percentiles", "table": [[0.1, 1], [1, 2]]})").error(),
            "x.table[0][0]: the first q must be 0, got 0.1");
  EXPECT_EQ(dist(R"({"dist": "percentiles", "table": [[0, 1], [0.9, 2]]})").error(),
            "x.table[1][0]: the last q must be 1, got 0.9");
  EXPECT_EQ(dist(R"({"dist": "percentiles", "table": [[0, 1], [1.5, 2]]})").error(),
            "x.table[1][0]: must be in [0, 1], got 1.5");
  EXPECT_EQ(dist(R"({"dist": "percentiles", "table": [[0, 1, 2]]})").error(),
            "x.table[0]: expected a [q, value] pair, got an array of 3");
  // Through a scenario, the path is the key's.
  EXPECT_EQ(
      error_of(R"({"network": {"upload_mbps": {"dist": "lognormal", "median": -3, "sigma": 1}}})"),
      "network.upload_mbps.median: must be > 0, got -3");
}

TEST(ScenarioTest, Overrides) {
  json doc = json::parse(R"({"network": {"upload_mbps": 10}, "seed": 3, "faults": [{"at_s": 1}]})");
  ASSERT_TRUE(apply_override(doc, "network.upload_mbps=50").ok());
  EXPECT_EQ(doc["network"]["upload_mbps"], 50);
  ASSERT_TRUE(apply_override(doc, "output.dir=runs/x").ok());  // creates "output", takes a string
  EXPECT_EQ(doc["output"]["dir"], "runs/x");
  ASSERT_TRUE(apply_override(doc, "a.b.c=true").ok());
  EXPECT_EQ(doc["a"]["b"]["c"], true);
  ASSERT_TRUE(apply_override(doc, "name=\"42\"").ok());  // a JSON string stays a string
  EXPECT_EQ(doc["name"], "42");
  ASSERT_TRUE(apply_override(doc, "seed=42").ok());
  EXPECT_EQ(doc["seed"], 42);
  ASSERT_TRUE(
      apply_override(doc, "network.upload_mbps={\"dist\":\"exponential\",\"mean\":8}").ok());
  EXPECT_EQ(doc["network"]["upload_mbps"]["mean"], 8);
  ASSERT_TRUE(apply_override(doc, "faults[0].at_s=7").ok());
  EXPECT_EQ(doc["faults"][0]["at_s"], 7);
  ASSERT_TRUE(apply_override(doc, "x=a=b").ok());  // splits at the first '='
  EXPECT_EQ(doc["x"], "a=b");
  ASSERT_TRUE(apply_override(doc, "y=").ok());
  EXPECT_EQ(doc["y"], "");

  EXPECT_EQ(apply_override(doc, "seed.x=1").message(),
            "seed.x: cannot set a key inside seed: it is an integer, not an object");
  EXPECT_EQ(apply_override(doc, "network.upload_mbps").message(),
            "override \"network.upload_mbps\": expected key.path=value");
  EXPECT_EQ(apply_override(doc, "a..b=1").message(), "override \"a..b=1\": empty key in \"a..b\"");
  EXPECT_EQ(apply_override(doc, "=1").message(), "override \"=1\": empty key in \"\"");
  EXPECT_EQ(apply_override(doc, "faults[3].at_s=1").message(),
            "faults[3].at_s: faults has 1 items, no index 3");

  json empty;
  ASSERT_TRUE(apply_override(empty, "peers.count=7").ok());
  auto s = parse_scenario(empty);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s->peers.count, 7u);
}

TEST(ScenarioTest, ReadsATraceObjectAndRefusesAMalformedTraceNamingKeyAndLine) {
  TempDir dir;
  dir.write("spot.json", R"({"metadata": {"gap_seconds": 60}, "data": [1, 2, 0]})");
  dir.write("bad.csv", "host,join_s,leave_s\na,0,10\na,5,20\n");
  const fs::path ok = dir.write("ok.json", R"({"peers": {"count": 3},
    "churn": {"model": "trace", "trace": {"path": "spot.json", "format": "counts_json",
                                          "time_scale": 4, "start_s": 30}}})");
  auto s = load_scenario(ok.string(), {});
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s->churn.trace.format, TraceFormat::kCountsJson);
  EXPECT_EQ(s->churn.trace.mapping, TraceMapping::kFirst);  // the default for counts
  EXPECT_EQ(s->churn.trace.time_scale, 4.0);
  EXPECT_EQ(s->churn.trace.start_s, 30.0);
  EXPECT_TRUE(fs::equivalent(s->churn.trace.path, dir.path() / "spot.json"));
  const fs::path bad = dir.write("bad.json", R"({"peers": {"count": 3},
    "churn": {"model": "trace", "trace": {"path": "bad.csv", "mapping": "first"}}})");
  auto b = load_scenario(bad.string(), {});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().rfind("churn.trace.path: ", 0), 0u) << b.error();
  EXPECT_NE(b.error().find("bad.csv:3: this session overlaps"), std::string::npos) << b.error();
}

TEST(ScenarioTest, LoadsFileWithRelativeCsvAndOverrides) {
  TempDir dir;
  dir.write("data/m.csv", kMatrix);
  dir.write("data/trace.csv", "peer,join_s,leave_s\n0,0,5\n");
  const fs::path file = dir.write("my_run.json", R"({
    "network": {"regions": {"rtt_csv": "data/m.csv", "weights": {"a": 1}}},
    "churn": {"model": "trace", "trace_csv": "data/trace.csv"},
    "faults": [{"kind": "partition", "regions": ["b", "c"], "duration_s": 5}]
  })");
  auto s = load_scenario(file.string(), {"peers.count=12", "network.upload_mbps=50"});
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s->name, "my_run");  // the file's stem
  EXPECT_EQ(s->source_path, file.string());
  EXPECT_EQ(s->peers.count, 12u);
  EXPECT_EQ(s->network.upload_mbps.value, 50.0);
  EXPECT_TRUE(fs::equivalent(s->network.regions.rtt_csv, dir.path() / "data/m.csv"));
  EXPECT_TRUE(fs::equivalent(s->churn.trace.path, dir.path() / "data/trace.csv"));
  EXPECT_EQ(s->resolved["peers"]["count"], 12);
  EXPECT_EQ(s->resolved["network"]["regions"]["rtt_csv"], "data/m.csv");  // as written

  auto named = load_scenario(file.string(), {"name=other"});
  ASSERT_TRUE(named.ok()) << named.error();
  EXPECT_EQ(named->name, "other");

  auto missing = load_scenario(file.string(), {"network.regions.rtt_csv=data/nope.csv"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().rfind("network.regions.rtt_csv: file not found: \"data/nope.csv\"", 0),
            0u);
  auto bad_region = load_scenario(file.string(), {"faults[0].regions=[\"mars\"]"});
  ASSERT_FALSE(bad_region.ok());
  EXPECT_EQ(bad_region.error(),
            "faults[0].regions[0]: unknown region \"mars\" (regions in the matrix: a, b, c)");
  auto bad_weight = load_scenario(file.string(), {"network.regions.weights.z=1"});
  ASSERT_FALSE(bad_weight.ok());
  EXPECT_EQ(bad_weight.error().rfind("network.regions.weights.z: unknown region", 0), 0u);
  auto bad_override = load_scenario(file.string(), {"seed"});
  EXPECT_FALSE(bad_override.ok());
}

TEST(ScenarioTest, RelativeCsvFallsBackToCurrentDirectory) {
  TempDir dir;
  const fs::path file =
      dir.write("sc/run.json", R"({"network": {"regions": {"rtt_csv": "m.csv"}}})");
  dir.write("m.csv", kMatrix);
  const fs::path old = fs::current_path();
  fs::current_path(dir.path());
  auto s = load_scenario(file.string(), {});
  fs::current_path(old);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s->network.regions.rtt_csv, "m.csv");
}

TEST(ScenarioTest, ShippedWorldMatrixIsSquareSymmetricAndUsable) {
  const fs::path csv = fs::path(CROWDTRAIN_SOURCE_DIR) / "scenarios/data/world_regions_rtt.csv";
  std::ifstream in(csv);
  ASSERT_TRUE(in) << csv;
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;  // the provenance header
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    rows.push_back(cells);
  }
  const size_t n = rows.size() - 1;
  ASSERT_GE(n, 10u);
  for (size_t i = 1; i <= n; ++i) {
    ASSERT_EQ(rows[i].size(), n + 1);
    EXPECT_EQ(rows[i][0], rows[0][i]);
    for (size_t j = 1; j <= n; ++j) {
      const int v = std::stoi(rows[i][j]);
      EXPECT_EQ(v, std::stoi(rows[j][i])) << rows[i][0] << " " << rows[0][j];
      EXPECT_EQ(v == 0, i == j);
      EXPECT_LE(v, 400) << "a round trip on Earth's backbone";
    }
  }
  json doc = {{"network", {{"regions", {{"rtt_csv", csv.string()}, {"weights", {{"india", 2}}}}}}}};
  auto s = parse_scenario(doc);
  ASSERT_TRUE(s.ok()) << s.error();
}

TEST(ScenarioTest, MatrixHeaderAfterCommentLines) {
  TempDir dir;
  const std::string m = dir.write("m.csv", std::string("# measured 2024\n\n") + kMatrix).string();
  json doc = {{"network", {{"regions", {{"rtt_csv", m}, {"weights", {{"c", 1}}}}}}}};
  auto s = parse_scenario(doc);
  ASSERT_TRUE(s.ok()) << s.error();
}

TEST(ScenarioTest, MalformedJsonNamesFileLineAndColumn) {
  TempDir dir;
  const fs::path truncated = dir.write("t.json", "{\n  \"seed\": 4,\n  \"peers\": {\"count\": 3");
  auto r = load_scenario(truncated.string(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind(truncated.string() + ":3:23: malformed JSON: ", 0), 0u) << r.error();

  const fs::path bad = dir.write("b.json", "{\n  \"seed\": 4,,\n}");
  r = load_scenario(bad.string(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind(bad.string() + ":2:13: malformed JSON: ", 0), 0u) << r.error();

  r = load_scenario((dir.path() / "absent.json").string(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("absent.json: cannot open"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace crowdtrain
