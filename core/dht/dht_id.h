// A 160-bit Kademlia id (a node's id, or a key's: the SHA-1 of the key string), the XOR metric, and
// a contact: the (DhtId, PeerId) pair that DHT messages carry. Ids compare as big-endian 160-bit
// numbers, so sorting by XOR distance is sorting by `a ^ target`. Plain values: no ownership, no
// threading.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/random.h"
#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain::dht {

constexpr int kIdBits = 160;
constexpr size_t kIdBytes = 20;

class DhtId {
 public:
  DhtId() : bytes_{} {}
  explicit DhtId(const std::array<uint8_t, kIdBytes>& bytes) : bytes_(bytes) {}

  // The id of a key string: SHA-1 of its bytes.
  static DhtId from_key(std::string_view key);
  // A uniformly random id drawn from `rng` (node ids, refresh targets).
  static DhtId random(Rng& rng);
  // Exactly kIdBytes raw bytes, as carried in messages; anything else is an error naming `what`.
  static Result<DhtId> from_bytes(std::string_view raw, std::string_view what);
  // The id that keeps the first `n` bits of `prefix` and has zeros after them (bucket bounds).
  static DhtId with_prefix(const DhtId& prefix, int n);

  std::string to_bytes() const { return std::string(bytes_.begin(), bytes_.end()); }
  std::string hex() const;
  std::string short_hex() const { return hex().substr(0, 8); }
  const std::array<uint8_t, kIdBytes>& bytes() const { return bytes_; }

  // Bit `i` counted from the most significant (0) to the least (159).
  bool bit(int i) const { return (bytes_[i / 8] >> (7 - i % 8)) & 1; }
  void set_bit(int i, bool v);
  // The number of leading bits `*this` and `other` share (160 when equal).
  int common_prefix_bits(const DhtId& other) const;

  DhtId operator^(const DhtId& o) const;
  // Compared as three big-endian words, inline: lookups compare ids millions of times, and the
  // byte-array comparison went through a libc memcmp call each time.
  bool operator==(const DhtId& o) const { return compare(o) == 0; }
  bool operator!=(const DhtId& o) const { return compare(o) != 0; }
  bool operator<(const DhtId& o) const { return compare(o) < 0; }
  bool operator<=(const DhtId& o) const { return compare(o) <= 0; }
  // -1, 0 or 1, as big-endian 160-bit numbers.
  int compare(const DhtId& o) const {
    for (size_t at : {size_t{0}, size_t{8}}) {
      const uint64_t a = word64(at), b = o.word64(at);
      if (a != b) return a < b ? -1 : 1;
    }
    const uint32_t a = word32(16), b = o.word32(16);
    return a == b ? 0 : (a < b ? -1 : 1);
  }

 private:
  uint64_t word64(size_t at) const {
    uint64_t v;
    std::memcpy(&v, bytes_.data() + at, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return v;
#else
    return __builtin_bswap64(v);  // the first byte is the most significant
#endif
  }
  uint32_t word32(size_t at) const {
    uint32_t v;
    std::memcpy(&v, bytes_.data() + at, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return v;
#else
    return __builtin_bswap32(v);
#endif
  }

  std::array<uint8_t, kIdBytes> bytes_;
};

// True when `a` is strictly closer to `target` than `b` in the XOR metric.
inline bool closer(const DhtId& a, const DhtId& b, const DhtId& target) {
  return (a ^ target) < (b ^ target);
}

// A peer as the DHT knows it: its 160-bit id and its runtime address.
struct Contact {
  DhtId id;
  PeerId peer = kNoPeer;
  bool operator==(const Contact& o) const { return id == o.id && peer == o.peer; }
};

}  // namespace crowdtrain::dht
