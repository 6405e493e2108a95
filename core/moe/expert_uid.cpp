// Expert uids and grids: the grammar, the grid helpers, and the assignment of experts to servers.
#include "core/moe/expert_uid.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "core/random.h"

namespace crowdtrain::moe {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `s` in double quotes for an error message: at most 80 characters, non-printables as \xNN.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

// Why `prefix` is not a valid prefix, or an empty string when it is.
std::string prefix_problem(std::string_view prefix) {
  if (prefix.empty()) return "the prefix is empty";
  if (prefix.size() > kMaxPrefixChars) {
    return "the prefix has " + std::to_string(prefix.size()) + " characters (at most " +
           std::to_string(kMaxPrefixChars) + ")";
  }
  if (!is_alpha(prefix[0]) && prefix[0] != '_') {
    return "the prefix starts with " + quoted(prefix.substr(0, 1)) +
           " (a letter or '_' is required)";
  }
  for (size_t i = 1; i < prefix.size(); ++i) {
    const char c = prefix[i];
    if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-') {
      return "the prefix has " + quoted(prefix.substr(i, 1)) + " at character " +
             std::to_string(i + 1) + " (only letters, digits, '_' and '-' are allowed)";
    }
  }
  return "";
}

// Why `text` (coordinate number `n`, 1-based) is not a coordinate, or "" with *value set.
std::string coordinate_problem(std::string_view text, size_t n, int64_t* value) {
  const std::string where = "coordinate " + std::to_string(n);
  if (text.empty()) return where + " is empty";
  for (char c : text) {
    if (!is_digit(c)) return where + " " + quoted(text) + " is not a decimal number";
  }
  if (text.size() > 1 && text[0] == '0') return where + " has a leading zero";
  if (text.size() > 10) return where + " " + quoted(text) + " is not below 2^31";
  int64_t v = 0;
  for (char c : text) v = v * 10 + (c - '0');
  if (v > kMaxCoordinate) return where + " " + quoted(text) + " is not below 2^31";
  *value = v;
  return "";
}

}  // namespace

std::string ExpertUid::str() const {
  std::string out = prefix;
  for (int64_t c : coords) out += "." + std::to_string(c);
  return out;
}

Status check_expert_prefix(std::string_view prefix) {
  const std::string problem = prefix_problem(prefix);
  if (problem.empty()) return Status();
  return Status::error("expert prefix " + quoted(prefix) + ": " + problem);
}

Result<ExpertUid> parse_expert_uid(std::string_view uid) {
  auto fail = [&](const std::string& why) {
    return Status::error("expert uid " + quoted(uid) + ": " + why);
  };
  if (uid.size() > kMaxUidChars) {
    return fail("it has " + std::to_string(uid.size()) + " characters (at most " +
                std::to_string(kMaxUidChars) + ")");
  }
  const size_t dot = uid.find('.');
  if (dot == std::string_view::npos) return fail("no coordinates (expected \"prefix.i.j...\")");
  ExpertUid out;
  out.prefix = std::string(uid.substr(0, dot));
  if (auto problem = prefix_problem(out.prefix); !problem.empty()) return fail(problem);
  size_t start = dot + 1;
  while (true) {
    const size_t end = std::min(uid.find('.', start), uid.size());
    if (out.coords.size() == kMaxGridDims) {
      return fail("more than " + std::to_string(kMaxGridDims) + " coordinates");
    }
    int64_t value = 0;
    const std::string problem =
        coordinate_problem(uid.substr(start, end - start), out.coords.size() + 1, &value);
    if (!problem.empty()) return fail(problem);
    out.coords.push_back(value);
    if (end == uid.size()) break;
    start = end + 1;
  }
  return out;
}

Status ExpertGrid::check() const {
  auto fail = [&](const std::string& why) {
    return Status::error("expert grid " + quoted(prefix) + ": " + why);
  };
  if (auto problem = prefix_problem(prefix); !problem.empty()) return fail(problem);
  if (sizes.empty() || sizes.size() > kMaxGridDims) {
    return fail(std::to_string(sizes.size()) + " dimensions (1 to " + std::to_string(kMaxGridDims) +
                " are allowed)");
  }
  uint64_t total = 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] < 1 || sizes[d] > kMaxGridSize) {
      return fail("dimension " + std::to_string(d) + " has size " + std::to_string(sizes[d]) +
                  " (1 to " + std::to_string(kMaxGridSize) + " are allowed)");
    }
    total *= sizes[d];  // at most 65536 * 2^32 before the check below fails: no overflow
    if (total > kMaxGridCount) {
      return fail("more than 2^32 experts in all");
    }
  }
  return Status();
}

uint64_t ExpertGrid::count() const {
  uint64_t total = 1;
  for (uint32_t s : sizes) total *= s;
  return total;
}

bool ExpertGrid::contains(const ExpertUid& uid) const {
  if (uid.prefix != prefix || uid.coords.size() != sizes.size()) return false;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (uid.coords[d] < 0 || uid.coords[d] >= static_cast<int64_t>(sizes[d])) return false;
  }
  return true;
}

std::string ExpertGrid::uid_at(uint64_t index) const {
  CT_CHECK(index < count());
  std::vector<int64_t> coords(sizes.size());
  for (size_t d = sizes.size(); d-- > 0;) {
    coords[d] = static_cast<int64_t>(index % sizes[d]);
    index /= sizes[d];
  }
  return uid_of(coords);
}

std::string ExpertGrid::uid_of(const std::vector<int64_t>& coords) const {
  ExpertUid uid{prefix, coords};
  CT_CHECK(contains(uid));
  return uid.str();
}

std::string uid_prefix(const ExpertUid& uid, size_t depth) {
  CT_CHECK(depth <= uid.coords.size());
  std::string out = uid.prefix + ".";
  for (size_t d = 0; d < depth; ++d) out += std::to_string(uid.coords[d]) + ".";
  return out;
}

Result<std::vector<std::vector<std::string>>> assign_experts(const ExpertGrid& grid,
                                                             uint64_t num_experts,
                                                             uint32_t num_servers,
                                                             uint32_t replicas, uint64_t seed) {
  if (Status s = grid.check(); !s.ok()) return Status::error("assign_experts: " + s.message());
  const uint64_t total = grid.count();
  if (num_servers == 0) return Status::error("assign_experts: no servers");
  if (replicas == 0) return Status::error("assign_experts: replicas must be at least 1");
  if (num_experts > total) {
    return Status::error("assign_experts: " + std::to_string(num_experts) +
                         " experts requested but grid \"" + grid.prefix + "\" holds " +
                         std::to_string(total));
  }
  const uint64_t n = num_experts == 0 ? total : num_experts;
  const uint64_t per_expert = std::min(replicas, num_servers);
  if (n > kMaxAssignments / per_expert) {
    return Status::error("assign_experts: " + std::to_string(n) + " experts x " +
                         std::to_string(per_expert) + " replicas exceed the limit of " +
                         std::to_string(kMaxAssignments) + " placements");
  }
  std::vector<uint64_t> chosen;
  if (n == total) {
    chosen.resize(n);
    for (uint64_t i = 0; i < n; ++i) chosen[i] = i;
  } else {
    // Floyd's sampling: n distinct indices of [0, total) with n draws.
    Rng rng(derive_seed(seed, "moe-assign-experts"));
    std::set<uint64_t> picked;
    for (uint64_t j = total - n; j < total; ++j) {
      const uint64_t t = rng.uniform_int(j + 1);
      if (!picked.insert(t).second) picked.insert(j);
    }
    chosen.assign(picked.begin(), picked.end());
  }
  std::vector<std::vector<std::string>> out(num_servers);
  uint64_t slot = 0;  // placement t goes to server t % num_servers: loads differ by at most one
  for (uint64_t index : chosen) {
    const std::string uid = grid.uid_at(index);
    for (uint64_t r = 0; r < per_expert; ++r) out[slot++ % num_servers].push_back(uid);
  }
  return out;
}

}  // namespace crowdtrain::moe
