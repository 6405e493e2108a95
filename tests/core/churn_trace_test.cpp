// The availability-trace readers (sessions, instance counts as JSON and CSV), every malformed-trace
// error with the line or path it names, and the mapping of a trace's hosts and clock onto a
// scenario's peers.
#include "core/churn_trace.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <sstream>

namespace crowdtrain {
namespace {

Result<AvailabilityTrace> sessions(const std::string& text) {
  std::istringstream in(text);
  return read_sessions_trace(in, "t.csv");
}

Result<AvailabilityTrace> counts_json(const std::string& text) {
  std::istringstream in(text);
  return read_counts_json_trace(in, "t.json");
}

Result<AvailabilityTrace> counts_csv(const std::string& text) {
  std::istringstream in(text);
  return read_counts_csv_trace(in, "t.csv");
}

std::vector<std::pair<double, double>> pairs(const std::vector<TraceInterval>& v) {
  std::vector<std::pair<double, double>> out;
  for (const auto& i : v) out.emplace_back(i.start_s, i.end_s);
  return out;
}

using Pairs = std::vector<std::pair<double, double>>;
using ErrorCases = std::vector<std::pair<std::string, std::string>>;

// Every case's text is refused by `read` with an error that starts with its expected text.
void expect_refused(const std::function<Result<AvailabilityTrace>(const std::string&)>& read,
                    const ErrorCases& cases) {
  for (const auto& [text, error] : cases) {
    auto t = read(text);
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_EQ(t.error().rfind(error, 0), 0u) << t.error();
  }
}

TEST(SessionsTrace, ReadsHostsInOrderOfFirstAppearanceAfterCommentsAndAHeader) {
  auto t = sessions("# a comment\n\nhost,join_s,leave_s\nb,0,10\na,5,\nb,20,30\nb,30,-1\n");
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->hosts, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(t->first_line, (std::vector<size_t>{4, 5}));
  // b's sessions 20-30 and 30-end touch: one session.
  EXPECT_EQ(pairs(t->up[0]), (Pairs{{0, 10}, {20, -1}}));
  EXPECT_EQ(pairs(t->up[1]), (Pairs{{5, -1}}));
}

TEST(SessionsTrace, AHostNamedLikeTheHeaderIsDataAfterTheFirstLine) {
  auto t = sessions("peer-7,0,10\n");
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->hosts, (std::vector<std::string>{"peer-7"}));
}

TEST(SessionsTrace, MalformedTracesNameTheLine) {
  expect_refused(
      sessions,
      {
          {"a,0,10\na,5,20\n", "t.csv:2: this session overlaps the host's previous one (0 to 10)"},
          {"a,10,20\na,5,8\n", "t.csv:2: times are not sorted"},
          {"a,0,-1\na,50,60\n",
           "t.csv:2: this session overlaps the host's previous one (0 to the end)"},
          {"peer,join_s,leave_s\na,10,5\n", "t.csv:2: the session ends (5) before it starts (10)"},
          {"a,10,10\n", "t.csv:1: the session ends (10) before it starts (10)"},
          {"a,-3,10\n", "t.csv:1: join_s '-3' is not a non-negative number"},
          {"a,x,10\n", "t.csv:1: join_s 'x' is not a non-negative number"},
          {"a,1,-5\n", "t.csv:1: leave_s '-5' is not a time"},
          {"a,1,2,3\n", "t.csv:1: expected host,join_s,leave_s"},
          {",1,2\n", "t.csv:1: expected host,join_s,leave_s"},
      });
}

TEST(CountsTrace, SlotsFollowTheCountLowestJoinFirstHighestLeaveFirst) {
  auto t = counts_json(R"({"metadata": {"gap_seconds": 300}, "data": [0, 2, 3, 1, 1, 0, 2]})");
  ASSERT_TRUE(t.ok()) << t.error();
  ASSERT_EQ(t->hosts.size(), 3u);
  EXPECT_EQ(t->hosts[2], "slot-2");
  EXPECT_EQ(pairs(t->up[0]), (Pairs{{300, 1500}, {1800, -1}}));
  EXPECT_EQ(pairs(t->up[1]), (Pairs{{300, 900}, {1800, -1}}));
  EXPECT_EQ(pairs(t->up[2]), (Pairs{{600, 900}}));
  auto c = counts_csv("time_s,count\n0,1\n100,2\n250,0\n");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(pairs(c->up[0]), (Pairs{{0, 250}}));
  EXPECT_EQ(pairs(c->up[1]), (Pairs{{100, 250}}));
}

TEST(CountsTrace, MalformedTracesNameThePathOrLine) {
  expect_refused(
      counts_json,
      {
          {R"({"data": [1]})", "t.json: metadata.gap_seconds is missing"},
          {R"({"metadata": {"gap_seconds": 0}, "data": [1]})",
           "t.json: metadata.gap_seconds: must be > 0"},
          {R"({"metadata": {"gap_seconds": 60}, "data": [1, -2]})", "t.json: data[1]"},
          {R"({"metadata": {"gap_seconds": 60}, "data": [1, 2.5]})", "t.json: data[1]"},
          {R"({"metadata": {"gap_seconds": 60}, "data": 3})", "t.json: data: expected an array"},
          {R"({"metadata": {"gap_seconds": 60}, "data": [1, )", "t.json: not valid JSON"},
      });
  expect_refused(counts_csv, {
                                 {"0,1\n10,2\n10,3\n",
                                  "t.csv:3: times are not sorted: 10 does not come after 10"},
                                 {"0,1\n10,-2\n", "t.csv:2: count '-2' is not a whole number"},
                                 {"0,1.5\n", "t.csv:1: count '1.5' is not a whole number"},
                                 {"-1,1\n", "t.csv:1: time_s '-1' is not a non-negative number"},
                                 {"0,1,2\n", "t.csv:1: expected time_s,count"},
                             });
}

TraceSpec spec_with(TraceMapping mapping, double time_scale = 1, double start_s = 0) {
  TraceSpec s;
  s.path = "t.csv";
  s.mapping = mapping;
  s.time_scale = time_scale;
  s.start_s = start_s;
  return s;
}

TEST(MapTrace, IdsAreScenarioPeersAndMustBeBelowTheCount) {
  auto t = sessions("3,0,10\n0,5,-1\n");
  ASSERT_TRUE(t.ok());
  auto m = map_trace(*t, spec_with(TraceMapping::kIds), 4, 1);
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(pairs(m->sessions.at(3)), (Pairs{{0, 10}}));
  EXPECT_EQ(pairs(m->sessions.at(0)), (Pairs{{5, -1}}));
  EXPECT_EQ(m->sessions.count(1), 0u);
  EXPECT_EQ(m->peer_hosts, (std::vector<std::string>{"0", "", "", "3"}));
  auto too_few = map_trace(*t, spec_with(TraceMapping::kIds), 3, 1);
  ASSERT_FALSE(too_few.ok());
  EXPECT_EQ(too_few.error().rfind("t.csv:1: peer '3' is not an id below peers.count (3", 0), 0u)
      << too_few.error();
}

TEST(MapTrace, FirstTakesHostsInOrderAndLeavesExtraPeersOffline) {
  auto t = sessions("x,0,10\ny,5,-1\nz,1,2\n");
  ASSERT_TRUE(t.ok());
  auto two = map_trace(*t, spec_with(TraceMapping::kFirst), 2, 1);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->peer_hosts, (std::vector<std::string>{"x", "y"}));
  auto five = map_trace(*t, spec_with(TraceMapping::kFirst), 5, 1);
  ASSERT_TRUE(five.ok());
  EXPECT_EQ(five->peer_hosts, (std::vector<std::string>{"x", "y", "z", "", ""}));
  EXPECT_EQ(five->sessions.size(), 3u);
}

TEST(MapTrace, SampleDrawsDistinctHostsFromTheSeed) {
  std::string text;
  for (int h = 0; h < 50; ++h) text += "h" + std::to_string(h) + "," + std::to_string(h) + ",-1\n";
  auto t = sessions(text);
  ASSERT_TRUE(t.ok());
  auto a = map_trace(*t, spec_with(TraceMapping::kSample), 10, 7);
  auto b = map_trace(*t, spec_with(TraceMapping::kSample), 10, 7);
  auto c = map_trace(*t, spec_with(TraceMapping::kSample), 10, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->peer_hosts, b->peer_hosts);
  EXPECT_NE(a->peer_hosts, c->peer_hosts);
  std::set<std::string> distinct(a->peer_hosts.begin(), a->peer_hosts.end());
  EXPECT_EQ(distinct.size(), 10u);
  auto too_many = map_trace(*t, spec_with(TraceMapping::kSample), 51, 7);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().find("the trace has 50 hosts, fewer than peers.count (51)"),
            std::string::npos);
}

TEST(MapTrace, StartAndTimeScaleMoveAndCompressTheClock) {
  auto t = sessions("a,0,100\na,200,400\nb,500,-1\nc,0,50\n");
  ASSERT_TRUE(t.ok());
  // From trace time 100 on, 10 trace seconds per simulated second.
  auto m = map_trace(*t, spec_with(TraceMapping::kFirst, 10, 100), 3, 1);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(pairs(m->sessions.at(0)), (Pairs{{10, 30}}));  // 0-100 ended at the start
  EXPECT_EQ(pairs(m->sessions.at(1)), (Pairs{{40, -1}}));
  EXPECT_EQ(m->sessions.count(2), 0u);  // c was over before trace time 100
  auto clipped = map_trace(*t, spec_with(TraceMapping::kFirst, 1, 50), 1, 1);
  ASSERT_TRUE(clipped.ok());
  EXPECT_EQ(pairs(clipped->sessions.at(0)), (Pairs{{0, 50}, {150, 350}}));
}

}  // namespace
}  // namespace crowdtrain
