#include "core/dht/dht_id.h"

#include "core/dht/sha1.h"

namespace crowdtrain::dht {

DhtId DhtId::from_key(std::string_view key) { return DhtId(sha1(key)); }

DhtId DhtId::random(Rng& rng) {
  std::array<uint8_t, kIdBytes> b;
  uint64_t word = 0;
  for (size_t i = 0; i < kIdBytes; ++i) {
    if (i % 8 == 0) word = rng.next_u64();
    b[i] = static_cast<uint8_t>(word >> (8 * (i % 8)));
  }
  return DhtId(b);
}

Result<DhtId> DhtId::from_bytes(std::string_view raw, std::string_view what) {
  if (raw.size() != kIdBytes) {
    return Status::error(std::string(what) + ": an id has " + std::to_string(kIdBytes) +
                         " bytes, got " + std::to_string(raw.size()));
  }
  std::array<uint8_t, kIdBytes> b;
  for (size_t i = 0; i < kIdBytes; ++i) b[i] = static_cast<uint8_t>(raw[i]);
  return DhtId(b);
}

DhtId DhtId::with_prefix(const DhtId& prefix, int n) {
  CT_CHECK(n >= 0 && n <= kIdBits);
  DhtId out;
  for (int i = 0; i < n; ++i) out.set_bit(i, prefix.bit(i));
  return out;
}

std::string DhtId::hex() const {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  s.reserve(2 * kIdBytes);
  for (uint8_t b : bytes_) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

void DhtId::set_bit(int i, bool v) {
  CT_CHECK(i >= 0 && i < kIdBits);
  const uint8_t mask = static_cast<uint8_t>(1u << (7 - i % 8));
  if (v) {
    bytes_[i / 8] |= mask;
  } else {
    bytes_[i / 8] &= static_cast<uint8_t>(~mask);
  }
}

int DhtId::common_prefix_bits(const DhtId& other) const {
  for (size_t i = 0; i < kIdBytes; ++i) {
    const uint8_t x = bytes_[i] ^ other.bytes_[i];
    if (x != 0) return static_cast<int>(i) * 8 + __builtin_clz(x) - 24;
  }
  return kIdBits;
}

DhtId DhtId::operator^(const DhtId& o) const {
  std::array<uint8_t, kIdBytes> b;
  for (size_t i = 0; i < kIdBytes; ++i) b[i] = bytes_[i] ^ o.bytes_[i];
  return DhtId(b);
}

}  // namespace crowdtrain::dht
