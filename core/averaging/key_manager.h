// Group keys of Moshpit All-Reduce on a virtual grid of M^d peers (hivemind's key_manager), as pure
// functions. A key is "<prefix>.0b<bits>": the bits are the chunk indices (log2 M bits each) the
// peer took in its last d-1 rounds, oldest first. Peers with equal keys form a group; after a group
// each member takes a distinct index from a generator seeded by the group id and shifts it into its
// bits, so peers that met in one round land in different groups in the next. d = 1 (no bits) is one
// group of everybody: plain all-reduce. No state, no threads; the DHT side (matchmaking) lives
// elsewhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace crowdtrain {

// The shape of the grid: `group_size` (M, a power of two) peers per group, `dims` (d) axes.
class GridSpec {
 public:
  GridSpec& group_size(uint32_t m) {
    group_size_ = m;
    return *this;
  }
  GridSpec& dims(uint32_t d) {
    dims_ = d;
    return *this;
  }
  uint32_t group_size() const { return group_size_; }
  uint32_t dims() const { return dims_; }
  // log2(group_size) rounded up: the bits one round's index takes.
  uint32_t bits_per_index() const;
  // Bits of a key: (dims - 1) * bits_per_index().
  uint32_t key_bits() const;

 private:
  uint32_t group_size_ = 32;
  uint32_t dims_ = 2;
};

// "<prefix>.0b<bits>". `bits` holds only '0' and '1' (checked).
std::string make_group_key(std::string_view prefix, std::string_view bits);
// True for "<prefix>.0b<bits>" with a nonempty prefix without '.', and bits of 0/1 only.
bool is_valid_group_key(std::string_view key);
// Splits a valid key into prefix and bits; an error names what is wrong.
Result<std::pair<std::string, std::string>> parse_group_key(std::string_view key);

// `index` as `width` binary digits, most significant first (index < 2^width, checked).
std::string index_bits(uint64_t index, uint32_t width);

// The chunk index each member of a group takes after it: `group_size` distinct values in
// [0, num_buckets) drawn from a generator seeded by `group_id` (identical on every member), in
// member order. When the group is larger than num_buckets the draw repeats its permutation
// cyclically, so indices are as balanced as they can be.
std::vector<uint32_t> chunk_indices_after_group(std::string_view group_id, uint32_t group_size,
                                                uint32_t num_buckets);

// The bits after a round: (bits + index_bits(index, width))[-len(bits):]; empty bits stay empty.
std::string shift_in_index(std::string_view bits, uint32_t index, uint32_t width);

// The key of member `member_index` after a group `group_id` of `group_size` members assembled
// under `key`; the grid decides how many buckets (M) and bits per index there are.
Result<std::string> key_after_group(std::string_view key, const GridSpec& grid,
                                    std::string_view group_id, uint32_t member_index,
                                    uint32_t group_size);

// The initial bits of the peer at `cell` (0 <= cell < M^d) of a fully populated grid: its first
// d-1 coordinates. Peers that share them differ only in the last coordinate: they form round 1's
// group.
std::string initial_bits_for_cell(uint64_t cell, const GridSpec& grid);

}  // namespace crowdtrain
