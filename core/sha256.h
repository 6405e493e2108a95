// SHA-256 (FIPS 180-4), incremental. Used for the event-log fingerprint; no dependency on OpenSSL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace crowdtrain {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Hex digest of everything so far; the object can keep absorbing afterwards.
  std::string hex_digest() const;
  // The same digest as 32 bytes.
  std::array<uint8_t, 32> digest() const;

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);

// HMAC-SHA256 (RFC 2104) of `data` under `key`: live peers prove a shared swarm key with it.
std::array<uint8_t, 32> hmac_sha256(std::string_view key, std::string_view data);

}  // namespace crowdtrain
