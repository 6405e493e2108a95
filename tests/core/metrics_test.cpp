// MetricsSink (counters, nearest-rank percentiles, the exact event-line format, the hash, detail
// filtering) and RunOutput (the run folder's three files, the reproduce line).
#include "core/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/run_output.h"

namespace crowdtrain {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh folder under the system's temp dir, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(fs::temp_directory_path() /
              ("ct_metrics_test_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Logs a sequence of events into `sink` and returns the lines it should produce.
std::string log_one(MetricsSink& sink) {
  sink.event(Time(1500), 3, "probe", EventDetail::kOperation,
             {{"rtt_ms", 12.5}, {"ok", 1}, {"to", 4u}, {"err", "none"}});
  return "{\"t_ns\":1500,\"peer\":3,\"ev\":\"probe\",\"rtt_ms\":12.5,\"ok\":1,\"to\":4,"
         "\"err\":\"none\"}\n";
}

TEST(MetricsSinkTest, Counters) {
  MetricsSink sink;
  EXPECT_EQ(sink.counter("nothing"), 0);
  sink.count("sent");
  sink.count("sent", 4);
  sink.count("lost", -2);
  EXPECT_EQ(sink.counter("sent"), 5);
  EXPECT_EQ(sink.counter("lost"), -2);
  EXPECT_EQ(sink.counters().size(), 2u);
  EXPECT_EQ(sink.counters().begin()->first, "lost");  // sorted by name
}

TEST(MetricsSinkTest, PercentilesNearestRank) {
  MetricsSink sink;
  EXPECT_TRUE(std::isnan(sink.percentile("rtt", 0.5)));
  EXPECT_TRUE(std::isnan(sink.sample_mean("rtt")));
  EXPECT_EQ(sink.sample_count("rtt"), 0u);
  // Inserted out of order: 15, 20, 35, 40, 50.
  for (double x : {50.0, 15.0, 40.0, 20.0, 35.0}) sink.observe("rtt", x);
  EXPECT_EQ(sink.sample_count("rtt"), 5u);
  EXPECT_DOUBLE_EQ(sink.sample_mean("rtt"), 32.0);
  EXPECT_EQ(sink.percentile("rtt", 0.0), 15.0);
  EXPECT_EQ(sink.percentile("rtt", 0.05), 15.0);
  EXPECT_EQ(sink.percentile("rtt", 0.3), 20.0);
  EXPECT_EQ(sink.percentile("rtt", 0.4), 20.0);
  EXPECT_EQ(sink.percentile("rtt", 0.5), 35.0);
  EXPECT_EQ(sink.percentile("rtt", 1.0), 50.0);

  MetricsSink hundred;
  for (int i = 100; i >= 1; --i) hundred.observe("x", i);
  EXPECT_EQ(hundred.percentile("x", 0.07), 7.0);  // 0.07 * 100 is 7.000000000000001 in doubles
  EXPECT_EQ(hundred.percentile("x", 0.5), 50.0);
  EXPECT_EQ(hundred.percentile("x", 0.99), 99.0);
  EXPECT_EQ(hundred.percentile("x", 0.991), 100.0);
  EXPECT_DOUBLE_EQ(hundred.sample_mean("x"), 50.5);

  MetricsSink with_nan;
  with_nan.observe("y", std::nan(""));
  EXPECT_TRUE(std::isnan(with_nan.percentile("y", 0.5)));
  for (double x : {3.0, 1.0, 2.0}) with_nan.observe("y", x);
  EXPECT_EQ(with_nan.percentile("y", 0.5), 2.0);
  EXPECT_EQ(with_nan.percentile("y", 1.0), 3.0);
}

TEST(MetricsSinkTest, EventLineFormat) {
  MetricsSink sink;
  const std::string expected = log_one(sink);
  EXPECT_EQ(sink.events_logged(), 1u);
  EXPECT_EQ(sink.event_log_sha256(), sha256_hex(expected));
}

TEST(MetricsSinkTest, EventValuesAndEscaping) {
  TempDir dir("escape");
  fs::create_directories(dir.path());
  const std::string path = (dir.path() / "events.jsonl").string();
  MetricsSink sink;
  ASSERT_TRUE(sink.open_event_file(path));
  sink.event(Time(-20), 0xFFFFFFFFu, "fault", EventDetail::kLifecycle,
             {{"neg", -7},
              {"big", int64_t{-9000000000}},
              {"third", 1.0 / 3.0},
              {"whole", 2.0},
              {"tiny", 1e-12},
              {"nan", std::nan("")},
              {"inf", HUGE_VAL},
              {"s", std::string_view("a\"b\\c\n\t\x01 \x7f")}});
  sink.event(Time(0), 0, "k\"ind", EventDetail::kLifecycle, {});
  sink.close_event_file();
  const std::string expected =
      "{\"t_ns\":-20,\"peer\":-1,\"ev\":\"fault\",\"neg\":-7,\"big\":-9000000000,"
      "\"third\":0.333333333,\"whole\":2,\"tiny\":1e-12,\"nan\":null,\"inf\":null,"
      "\"s\":\"a\\\"b\\\\c\\n\\t\\u0001 \\u007f\"}\n"
      "{\"t_ns\":0,\"peer\":0,\"ev\":\"k\\\"ind\"}\n";
  EXPECT_EQ(read_file(path), expected);
  EXPECT_EQ(sink.event_log_sha256(), sha256_hex(expected));
}

TEST(MetricsSinkTest, HashEqualsShaOfFileBytes) {
  TempDir dir("hash");
  fs::create_directories(dir.path());
  const std::string path = (dir.path() / "events.jsonl").string();
  MetricsSink sink;
  ASSERT_TRUE(sink.open_event_file(path));
  for (int i = 0; i < 5000; ++i) {
    sink.event(Time(i * 1000), static_cast<uint32_t>(i % 17), i % 3 ? "send" : "recv",
               EventDetail::kOperation, {{"bytes", i * 31}, {"lat_ms", i * 0.001}});
  }
  sink.close_event_file();
  const std::string bytes = read_file(path);
  EXPECT_EQ(sink.events_logged(), 5000u);
  EXPECT_EQ(sink.event_log_sha256(), sha256_hex(bytes));
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), '\n'), 5000);
}

TEST(MetricsSinkTest, DetailFilteringDropsAndDoesNotHash) {
  MetricsSink all, lifecycle, reference;
  lifecycle.set_detail(EventDetail::kLifecycle);
  EXPECT_TRUE(lifecycle.logs(EventDetail::kLifecycle));
  EXPECT_FALSE(lifecycle.logs(EventDetail::kOperation));
  EXPECT_TRUE(all.logs(EventDetail::kOperation));
  for (MetricsSink* s : {&all, &lifecycle}) {
    s->event(Time(1), 1, "join", EventDetail::kLifecycle, {});
    s->event(Time(2), 1, "probe", EventDetail::kOperation, {{"ok", 1}});
    s->event(Time(3), 1, "leave", EventDetail::kLifecycle, {});
  }
  reference.event(Time(1), 1, "join", EventDetail::kLifecycle, {});
  reference.event(Time(3), 1, "leave", EventDetail::kLifecycle, {});
  EXPECT_EQ(all.events_logged(), 3u);
  EXPECT_EQ(lifecycle.events_logged(), 2u);
  EXPECT_EQ(lifecycle.event_log_sha256(), reference.event_log_sha256());
  EXPECT_NE(all.event_log_sha256(), reference.event_log_sha256());
}

TEST(MetricsTest, HandleAddsPeerAndTime) {
  MetricsSink sink;
  Time now(42);
  Metrics m(&sink, 9, [&] { return now; });
  m.count("x", 2);
  m.observe("y", 1.5);
  m.event("join");
  now = Time(43);
  m.event("probe", {{"ok", 0}}, EventDetail::kOperation);
  EXPECT_EQ(sink.counter("x"), 2);
  EXPECT_EQ(sink.sample_count("y"), 1u);
  EXPECT_EQ(sink.event_log_sha256(),
            sha256_hex("{\"t_ns\":42,\"peer\":9,\"ev\":\"join\"}\n"
                       "{\"t_ns\":43,\"peer\":9,\"ev\":\"probe\",\"ok\":0}\n"));
}

TEST(RunOutputTest, WritesTheThreeFiles) {
  TempDir dir("run");
  const std::string out_dir = (dir.path() / "nested" / "run1").string();
  MetricsSink sink;
  std::string expected_events;
  {
    auto out = RunOutput::open(out_dir, {"time_s", "alive_peers", "messages_sent"}, sink);
    ASSERT_TRUE(out.ok()) << out.error();
    EXPECT_EQ((*out)->dir(), out_dir);
    (*out)->metrics_row({0.0, 100, 0});
    (*out)->metrics_row({1.5, 99, 123456789012.0});  // counters stay exact
    (*out)->metrics_row({2.0 / 3.0, std::nan(""), -5});
    expected_events = log_one(sink);
    nlohmann::json summary = {{"zeta", 1}, {"alpha", {{"b", 2.5}, {"a", "x"}}}};
    ASSERT_TRUE((*out)->write_summary(summary).ok());
    sink.close_event_file();
  }
  EXPECT_EQ(read_file(fs::path(out_dir) / "metrics.csv"),
            "time_s,alive_peers,messages_sent\n0,100,0\n1.5,99,123456789012\n0.666666667,nan,-5\n");
  EXPECT_EQ(read_file(fs::path(out_dir) / "events.jsonl"), expected_events);
  const std::string summary = read_file(fs::path(out_dir) / "summary.json");
  EXPECT_EQ(summary,
            "{\n  \"alpha\": {\n    \"a\": \"x\",\n    \"b\": 2.5\n  },\n  \"zeta\": 1\n}\n");
  EXPECT_FALSE(fs::exists(fs::path(out_dir) / "summary.json.tmp"));
}

TEST(RunOutputTest, OpenFailsOnAFile) {
  TempDir dir("file");
  fs::create_directories(dir.path());
  const fs::path blocker = dir.path() / "blocker";
  std::ofstream(blocker) << "x";
  MetricsSink sink;
  auto out = RunOutput::open((blocker / "run").string(), {"time_s"}, sink);
  EXPECT_FALSE(out.ok());
  EXPECT_NE(out.error().find("blocker"), std::string::npos) << out.error();
}

TEST(RunOutputTest, OutputDirAndReproduceCommand) {
  Scenario s;
  s.name = "quickstart";
  s.seed = 42;
  s.source_path = "scenarios/quickstart.json";
  EXPECT_EQ(output_dir_for(s), "runs/quickstart");
  s.output.dir = "/tmp/elsewhere";
  EXPECT_EQ(output_dir_for(s), "/tmp/elsewhere");
  EXPECT_EQ(reproduce_command(s, {"peers.count=100000"}, "run"),
            "./crowdtrain run scenarios/quickstart.json --seed 42 --set peers.count=100000");
  EXPECT_EQ(reproduce_command(s, {}, "live"),
            "./crowdtrain live scenarios/quickstart.json --seed 42");
  EXPECT_EQ(reproduce_command(s, {"name=a b", "x=it's", "faults=[1,2]"}, "run"),
            "./crowdtrain run scenarios/quickstart.json --seed 42 --set 'name=a b' "
            "--set 'x=it'\\''s' --set 'faults=[1,2]'");
}

}  // namespace
}  // namespace crowdtrain

namespace crowdtrain {
namespace {

// A series keeps its count and mean exactly however long it runs, and its percentiles from a
// bounded reservoir past kMaxKeptSamples: close to the truth, and the same in every run.
TEST(MetricsSinkSamples, ALongSeriesStaysBoundedWithExactMeanAndCloseQuantiles) {
  MetricsSink a, b;
  const size_t n = 4 * MetricsSink::kMaxKeptSamples;
  for (size_t i = 0; i < n; ++i) {
    const double v = static_cast<double>((i * 7919) % n);  // every value 0..n-1, shuffled
    a.observe("latency", v);
    b.observe("latency", v);
  }
  EXPECT_EQ(a.sample_count("latency"), n);
  EXPECT_DOUBLE_EQ(a.sample_mean("latency"), (static_cast<double>(n) - 1) / 2);
  for (double q : {0.1, 0.5, 0.9, 0.99}) {
    EXPECT_NEAR(a.percentile("latency", q), q * static_cast<double>(n), 0.01 * n) << q;
    EXPECT_EQ(a.percentile("latency", q), b.percentile("latency", q)) << q;
  }
  MetricsSink small;  // below the cap, every value is kept: exact quantiles
  for (int i = 1; i <= 100; ++i) small.observe("x", i);
  EXPECT_EQ(small.percentile("x", 0.5), 50);
  EXPECT_EQ(small.percentile("x", 0.99), 99);
}

}  // namespace
}  // namespace crowdtrain
