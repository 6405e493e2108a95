// Expert uids: the grammar (accepts, and refusals with their reasons), the grid helpers against
// hand-computed values and a brute-force enumeration, and assign_experts' coverage and balance.
#include "core/moe/expert_uid.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace crowdtrain::moe {
namespace {

TEST(ExpertUid, AcceptsWellFormedUids) {
  struct Case {
    const char* text;
    const char* prefix;
    std::vector<int64_t> coords;
  };
  const Case cases[] = {
      {"ffn.3.17", "ffn", {3, 17}},
      {"ffn.0", "ffn", {0}},
      {"_x.0.0.0", "_x", {0, 0, 0}},
      {"Expert-layer_2.2147483647", "Expert-layer_2", {2147483647}},
      {"a.1.2.3.4.5.6.7.8", "a", {1, 2, 3, 4, 5, 6, 7, 8}},
      {"Z9-.10", "Z9-", {10}},
  };
  for (const auto& c : cases) {
    auto uid = parse_expert_uid(c.text);
    ASSERT_TRUE(uid.ok()) << c.text << ": " << uid.error();
    EXPECT_EQ(uid->prefix, c.prefix);
    EXPECT_EQ(uid->coords, c.coords);
    EXPECT_EQ(uid->str(), c.text);
  }
  const std::string long_prefix(64, 'p');
  EXPECT_TRUE(parse_expert_uid(long_prefix + ".1").ok());
}

// Each refusal, and the words its message must contain.
TEST(ExpertUid, RefusesWithTheReason) {
  struct Case {
    std::string text;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"ffn.03", "expert uid \"ffn.03\": coordinate 1 has a leading zero"},
      {"ffn.3.017", "coordinate 2 has a leading zero"},
      {"ffn", "no coordinates"},
      {"", "no coordinates"},
      {".3", "the prefix is empty"},
      {"3ffn.1", "the prefix starts with \"3\""},
      {"-ffn.1", "the prefix starts with \"-\""},
      {"ff n.1", "the prefix has \" \" at character 3"},
      {"ffn.", "coordinate 1 is empty"},
      {"ffn.3.", "coordinate 2 is empty"},
      {"ffn..3", "coordinate 1 is empty"},
      {"ffn.-1", "coordinate 1 \"-1\" is not a decimal number"},
      {"ffn.+1", "coordinate 1 \"+1\" is not a decimal number"},
      {"ffn.1x", "coordinate 1 \"1x\" is not a decimal number"},
      {"ffn. 1", "coordinate 1 \" 1\" is not a decimal number"},
      {"ffn.2147483648", "coordinate 1 \"2147483648\" is not below 2^31"},
      {"ffn.1.99999999999", "coordinate 2 \"99999999999\" is not below 2^31"},
      {"a.1.2.3.4.5.6.7.8.9", "more than 8 coordinates"},
      {std::string(65, 'p') + ".1", "the prefix has 65 characters (at most 64)"},
      {"ffn." + std::string(300, '1'), "it has 304 characters (at most 256)"},
      {std::string("ff\x01.1"), "the prefix has \"\\x01\" at character 3"},
  };
  for (const auto& c : cases) {
    auto uid = parse_expert_uid(c.text);
    ASSERT_FALSE(uid.ok()) << c.text;
    EXPECT_NE(uid.error().find(c.reason), std::string::npos)
        << "uid " << c.text << " refused with: " << uid.error();
    EXPECT_EQ(uid.error().rfind("expert uid \"", 0), 0u) << uid.error();
  }
}

TEST(ExpertGrid, CheckRefusesBadGrids) {
  EXPECT_TRUE((ExpertGrid{"ffn", {16, 16}}.check().ok()));
  EXPECT_TRUE((ExpertGrid{"ffn", {65536, 65536}}.check().ok()));  // exactly 2^32
  EXPECT_TRUE((ExpertGrid{"ffn", {1, 1, 1, 1, 1, 1, 1, 1}}.check().ok()));
  struct Case {
    ExpertGrid grid;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{"", {4}}, "the prefix is empty"},
      {{"f.x", {4}}, "the prefix has \".\" at character 2"},
      {{"ffn", {}}, "0 dimensions"},
      {{"ffn", {1, 1, 1, 1, 1, 1, 1, 1, 1}}, "9 dimensions"},
      {{"ffn", {4, 0}}, "dimension 1 has size 0"},
      {{"ffn", {65537}}, "dimension 0 has size 65537"},
      {{"ffn", {65536, 65536, 2}}, "more than 2^32 experts"},
  };
  for (const auto& c : cases) {
    Status s = c.grid.check();
    ASSERT_FALSE(s.ok()) << c.reason;
    EXPECT_NE(s.message().find(c.reason), std::string::npos) << s.message();
  }
}

TEST(ExpertGrid, RowMajorIndexingMatchesNestedLoops) {
  const ExpertGrid grid{"ffn", {3, 4, 5}};
  ASSERT_EQ(grid.count(), 60u);
  uint64_t index = 0;
  std::set<std::string> all;
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t l = 0; l < 5; ++l, ++index) {
        const std::string expect =
            "ffn." + std::to_string(i) + "." + std::to_string(j) + "." + std::to_string(l);
        EXPECT_EQ(grid.uid_at(index), expect);
        EXPECT_EQ(grid.uid_of({i, j, l}), expect);
        auto uid = parse_expert_uid(expect);
        ASSERT_TRUE(uid.ok());
        EXPECT_TRUE(grid.contains(*uid));
        all.insert(expect);
      }
    }
  }
  EXPECT_EQ(all.size(), 60u);
  EXPECT_EQ(grid.uid_at(59), "ffn.2.3.4");
  EXPECT_FALSE(grid.contains(*parse_expert_uid("ffn.3.0.0")));    // out of dimension 0
  EXPECT_FALSE(grid.contains(*parse_expert_uid("ffn.0.4.0")));    // out of dimension 1
  EXPECT_FALSE(grid.contains(*parse_expert_uid("ffn.0.0")));      // too few coordinates
  EXPECT_FALSE(grid.contains(*parse_expert_uid("ffn.0.0.0.0")));  // too many
  EXPECT_FALSE(grid.contains(*parse_expert_uid("attn.0.0.0")));   // another prefix
}

TEST(ExpertUid, PrefixesByDepth) {
  auto uid = parse_expert_uid("ffn.3.17.2");
  ASSERT_TRUE(uid.ok());
  EXPECT_EQ(uid_prefix(*uid, 0), "ffn.");
  EXPECT_EQ(uid_prefix(*uid, 1), "ffn.3.");
  EXPECT_EQ(uid_prefix(*uid, 2), "ffn.3.17.");
  EXPECT_EQ(uid_prefix(*uid, 3), "ffn.3.17.2.");
}

// Every expert `replicas` times on distinct servers, loads within one of each other.
void check_assignment(const ExpertGrid& grid, uint64_t num_experts, uint32_t servers,
                      uint32_t replicas, uint64_t seed) {
  SCOPED_TRACE(std::to_string(num_experts) + " experts, " + std::to_string(servers) + " servers, " +
               std::to_string(replicas) + " replicas");
  auto got = assign_experts(grid, num_experts, servers, replicas, seed);
  ASSERT_TRUE(got.ok()) << got.error();
  ASSERT_EQ(got->size(), servers);
  const uint64_t expected_experts = num_experts == 0 ? grid.count() : num_experts;
  const uint32_t per_expert = std::min(replicas, servers);
  std::map<std::string, std::set<size_t>> hosts;
  size_t lo = SIZE_MAX, hi = 0;
  for (size_t s = 0; s < servers; ++s) {
    const auto& uids = (*got)[s];
    lo = std::min(lo, uids.size());
    hi = std::max(hi, uids.size());
    for (const auto& uid : uids) {
      auto parsed = parse_expert_uid(uid);
      ASSERT_TRUE(parsed.ok()) << parsed.error();
      EXPECT_TRUE(grid.contains(*parsed)) << uid;
      EXPECT_TRUE(hosts[uid].insert(s).second) << uid << " twice on server " << s;
    }
  }
  EXPECT_EQ(hosts.size(), expected_experts);
  for (const auto& [uid, on] : hosts) EXPECT_EQ(on.size(), per_expert) << uid;
  EXPECT_LE(hi - lo, 1u);
}

TEST(AssignExperts, CoversEveryExpertOnDistinctServersWithBalancedLoads) {
  const ExpertGrid grid{"ffn", {8, 8}};
  check_assignment(grid, 0, 7, 1, 1);
  check_assignment(grid, 0, 7, 3, 1);
  check_assignment(grid, 0, 64, 1, 1);
  check_assignment(grid, 0, 100, 2, 1);  // more servers than placements: some host nothing
  check_assignment(grid, 10, 4, 10, 1);  // replicas capped at the number of servers
  check_assignment(grid, 37, 5, 2, 2);
  check_assignment(ExpertGrid{"big", {4096, 4096}}, 1000, 13, 3, 3);
  check_assignment(ExpertGrid{"t", {3, 2, 2}}, 0, 1, 5, 0);
}

TEST(AssignExperts, SampleIsSeededDistinctAndSpread) {
  const ExpertGrid grid{"ffn", {32, 32}};
  auto a = assign_experts(grid, 100, 1, 1, 7);
  auto b = assign_experts(grid, 100, 1, 1, 7);
  auto c = assign_experts(grid, 100, 1, 1, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  const auto& uids = (*a)[0];
  EXPECT_EQ(std::set<std::string>(uids.begin(), uids.end()).size(), 100u);
  // A uniform sample of 100 of 1024 touches most of the 32 first coordinates (not a prefix run).
  std::set<int64_t> first;
  for (const auto& uid : uids) first.insert(parse_expert_uid(uid)->coords[0]);
  EXPECT_GE(first.size(), 20u);
}

TEST(AssignExperts, RefusesImpossibleRequests) {
  const ExpertGrid grid{"ffn", {4, 4}};
  struct Case {
    Result<std::vector<std::vector<std::string>>> got;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {assign_experts(grid, 17, 2, 1, 0), "17 experts requested but grid \"ffn\" holds 16"},
      {assign_experts(grid, 4, 0, 1, 0), "no servers"},
      {assign_experts(grid, 4, 2, 0, 0), "replicas must be at least 1"},
      {assign_experts(ExpertGrid{"ffn", {0}}, 0, 2, 1, 0), "dimension 0 has size 0"},
      {assign_experts(ExpertGrid{"ffn", {65536, 65536}}, 0, 2, 1, 0), "placements"},
  };
  for (const auto& c : cases) {
    ASSERT_FALSE(c.got.ok()) << c.reason;
    EXPECT_NE(c.got.error().find(c.reason), std::string::npos) << c.got.error();
  }
}

}  // namespace
}  // namespace crowdtrain::moe
