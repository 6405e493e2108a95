#include "core/averaging/key_manager.h"

#include <algorithm>

#include "core/random.h"

namespace crowdtrain {
namespace {

constexpr std::string_view kBitsMarker = ".0b";

bool all_bits(std::string_view s) {
  for (char c : s) {
    if (c != '0' && c != '1') return false;
  }
  return true;
}

}  // namespace

uint32_t GridSpec::bits_per_index() const {
  CT_CHECK(group_size_ >= 1);
  uint32_t bits = 0;
  while ((uint64_t{1} << bits) < group_size_) ++bits;
  return bits;
}

uint32_t GridSpec::key_bits() const {
  CT_CHECK(dims_ >= 1);
  return (dims_ - 1) * bits_per_index();
}

std::string make_group_key(std::string_view prefix, std::string_view bits) {
  CT_CHECK(all_bits(bits));
  std::string key(prefix);
  key += kBitsMarker;
  key += bits;
  return key;
}

Result<std::pair<std::string, std::string>> parse_group_key(std::string_view key) {
  const size_t at = key.rfind(kBitsMarker);
  if (at == std::string_view::npos) {
    return Status::error("group key '" + std::string(key) + "': no '.0b' before the bits");
  }
  const std::string_view prefix = key.substr(0, at);
  const std::string_view bits = key.substr(at + kBitsMarker.size());
  if (prefix.empty()) return Status::error("group key '" + std::string(key) + "': empty prefix");
  if (prefix.find('.') != std::string_view::npos) {
    return Status::error("group key '" + std::string(key) + "': '.' in the prefix");
  }
  if (!all_bits(bits)) {
    return Status::error("group key '" + std::string(key) + "': bits other than 0 and 1");
  }
  return std::make_pair(std::string(prefix), std::string(bits));
}

bool is_valid_group_key(std::string_view key) { return parse_group_key(key).ok(); }

std::string index_bits(uint64_t index, uint32_t width) {
  CT_CHECK(width <= 63 && index < (uint64_t{1} << width));
  std::string s(width, '0');
  for (uint32_t i = 0; i < width; ++i) {
    if (index & (uint64_t{1} << i)) s[width - 1 - i] = '1';
  }
  return s;
}

std::vector<uint32_t> chunk_indices_after_group(std::string_view group_id, uint32_t group_size,
                                                uint32_t num_buckets) {
  CT_CHECK(num_buckets >= 1);
  // A seeded permutation of the buckets (Fisher-Yates from our own Rng), read cyclically.
  Rng rng(derive_seed(0x6d6f7368, group_id));
  std::vector<uint32_t> perm(num_buckets);
  for (uint32_t i = 0; i < num_buckets; ++i) perm[i] = i;
  const uint32_t draws = std::min(group_size, num_buckets);
  for (uint32_t i = 0; i < draws && i + 1 < num_buckets; ++i) {
    const uint32_t j = i + static_cast<uint32_t>(rng.uniform_int(num_buckets - i));
    std::swap(perm[i], perm[j]);
  }
  std::vector<uint32_t> out(group_size);
  for (uint32_t i = 0; i < group_size; ++i) out[i] = perm[i % num_buckets];
  return out;
}

std::string shift_in_index(std::string_view bits, uint32_t index, uint32_t width) {
  if (bits.empty()) return std::string();
  std::string joined(bits);
  joined += index_bits(index, width);
  return joined.substr(joined.size() - bits.size());
}

Result<std::string> key_after_group(std::string_view key, const GridSpec& grid,
                                    std::string_view group_id, uint32_t member_index,
                                    uint32_t group_size) {
  auto parsed = parse_group_key(key);
  if (!parsed.ok()) return parsed.status();
  if (member_index >= group_size) {
    return Status::error("key_after_group: member " + std::to_string(member_index) +
                         " of a group of " + std::to_string(group_size));
  }
  const uint32_t width = grid.bits_per_index();
  const uint32_t buckets = uint32_t{1} << width;
  const auto indices = chunk_indices_after_group(group_id, group_size, buckets);
  return make_group_key(parsed->first,
                        shift_in_index(parsed->second, indices[member_index], width));
}

std::string initial_bits_for_cell(uint64_t cell, const GridSpec& grid) {
  const uint32_t width = grid.bits_per_index();
  const uint64_t m = uint64_t{1} << width;
  std::string bits;
  // Coordinates c_1..c_{d-1}, most significant first; c_d (cell % m) is not part of the key.
  uint64_t rest = cell / m;
  std::vector<uint64_t> coords;
  for (uint32_t k = 0; k + 1 < grid.dims(); ++k) {
    coords.push_back(rest % m);
    rest /= m;
  }
  for (auto it = coords.rbegin(); it != coords.rend(); ++it) bits += index_bits(*it, width);
  return bits;
}

}  // namespace crowdtrain
