// Owner-signed DHT records: Ed25519 through libsodium, the trailer's layout, the checks.
#include "core/dht/record_signing.h"

#include <sodium.h>

#include <cctype>
#include <cstring>
#include <mutex>

#include "core/dht/protocol.h"

namespace crowdtrain::dht {

namespace {

// The trailer: key name, signature (64), name length (u16, little-endian), magic (6).
constexpr std::string_view kMagic{"\0ctsg1", 6};
constexpr size_t kSigBytes = crypto_sign_BYTES;
constexpr size_t kTrailerFixed = kSigBytes + 2 + kMagic.size();
constexpr std::string_view kMarkerOpen = "[owner:";
constexpr size_t kMarkerHex = 64;

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { CT_CHECK(sodium_init() >= 0); });
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// What the owner signs: a domain tag, the key id, the subkey (or its absence), the expiration and
// the payload, each length-prefixed so that no two records sign the same bytes.
std::string signed_message(const DhtId& key, const std::optional<std::string_view>& subkey,
                           Time expiration, std::string_view payload) {
  std::string m = "crowdtrain-dht-record-v1";
  m += key.to_bytes();
  auto put_u64 = [&m](uint64_t v) {
    for (int i = 0; i < 8; ++i) m += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put_u64(subkey ? 1 : 0);
  put_u64(subkey ? subkey->size() : 0);
  if (subkey) m += *subkey;
  put_u64(static_cast<uint64_t>(expiration.count()));
  put_u64(payload.size());
  m += payload;
  return m;
}

}  // namespace

SigningKey SigningKey::from_seed(const std::array<uint8_t, 32>& seed) {
  init_sodium();
  SigningKey k;
  crypto_sign_seed_keypair(k.public_.data(), k.secret_.data(), seed.data());
  k.marker_ = owner_marker(k.public_);
  return k;
}

SigningKey SigningKey::from_rng(Rng& rng) {
  std::array<uint8_t, 32> seed{};
  for (size_t i = 0; i < seed.size(); i += 8) {
    const uint64_t v = rng.next_u64();
    for (size_t b = 0; b < 8; ++b) seed[i + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  return from_seed(seed);
}

SigningKey SigningKey::generate() {
  init_sodium();
  SigningKey k;
  crypto_sign_keypair(k.public_.data(), k.secret_.data());
  k.marker_ = owner_marker(k.public_);
  return k;
}

Result<SigningKey> SigningKey::from_secret(std::string_view secret) {
  init_sodium();
  if (secret.size() != crypto_sign_SECRETKEYBYTES) {
    return Status::error("an Ed25519 secret key has " + std::to_string(crypto_sign_SECRETKEYBYTES) +
                         " bytes, not " + std::to_string(secret.size()));
  }
  std::array<uint8_t, 32> seed{};
  std::memcpy(seed.data(), secret.data(), seed.size());
  SigningKey k = from_seed(seed);
  if (std::memcmp(k.secret_.data(), secret.data(), secret.size()) != 0) {
    return Status::error("the Ed25519 secret key's public half does not match its seed");
  }
  return k;
}

std::string SigningKey::sign(std::string_view key_name, const std::optional<std::string>& subkey,
                             std::string_view payload, Time expiration) const {
  CT_CHECK(key_name.size() <= 0xffff);
  std::optional<std::string_view> sub;
  if (subkey) sub = *subkey;
  const std::string m = signed_message(DhtId::from_key(key_name), sub, expiration, payload);
  std::array<uint8_t, kSigBytes> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(m.data()), m.size(),
                       secret_.data());
  std::string out(payload);
  out += key_name;
  out.append(reinterpret_cast<const char*>(sig.data()), sig.size());
  out += static_cast<char>(key_name.size() & 0xff);
  out += static_cast<char>(key_name.size() >> 8);
  out += kMagic;
  return out;
}

std::string hex_encode(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(static_cast<char>(std::tolower(static_cast<unsigned char>(hex[i]))));
    const int lo =
        hex_digit(static_cast<char>(std::tolower(static_cast<unsigned char>(hex[i + 1]))));
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string owner_marker(const OwnerKey& key) {
  return std::string(kMarkerOpen) +
         hex_encode({reinterpret_cast<const char*>(key.data()), key.size()}) + "]";
}

std::string owner_short(const OwnerKey& key) {
  return hex_encode({reinterpret_cast<const char*>(key.data()), 4});
}

Result<std::optional<OwnerKey>> owner_named_by(std::string_view name) {
  const size_t at = name.find(kMarkerOpen);
  if (at == std::string_view::npos) return std::optional<OwnerKey>();
  const size_t hex_at = at + kMarkerOpen.size();
  if (name.size() < hex_at + kMarkerHex + 1 || name[hex_at + kMarkerHex] != ']') {
    return Status::error("malformed owner marker (want [owner:<64 lowercase hex digits>])");
  }
  OwnerKey key{};
  for (size_t i = 0; i < key.size(); ++i) {
    const int hi = hex_digit(name[hex_at + 2 * i]), lo = hex_digit(name[hex_at + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::error("malformed owner marker (want [owner:<64 lowercase hex digits>])");
    }
    key[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (name.find(kMarkerOpen, hex_at) != std::string_view::npos) {
    return Status::error("names two owners");
  }
  return std::optional<OwnerKey>(key);
}

std::optional<SignedValue> split_signed(std::string_view value) {
  if (value.size() < kTrailerFixed || value.substr(value.size() - kMagic.size()) != kMagic) {
    return std::nullopt;
  }
  const size_t len_at = value.size() - kMagic.size() - 2;
  const size_t name_len = static_cast<uint8_t>(value[len_at]) |
                          (static_cast<size_t>(static_cast<uint8_t>(value[len_at + 1])) << 8);
  if (value.size() < kTrailerFixed + name_len) return std::nullopt;
  const size_t sig_at = len_at - kSigBytes;
  const size_t name_at = sig_at - name_len;
  return SignedValue{value.substr(0, name_at), value.substr(name_at, name_len),
                     value.substr(sig_at, kSigBytes)};
}

std::string_view payload_of(std::string_view value) {
  auto s = split_signed(value);
  return s ? s->payload : value;
}

Result<std::optional<OwnerKey>> check_record_signature(const StoreRecord& record) {
  std::optional<OwnerKey> sub_owner;
  if (record.has_subkey) {
    auto o = owner_named_by(record.subkey);
    if (!o.ok()) return Status::error("subkey: " + o.error());
    sub_owner = *o;
  }
  const auto sv = split_signed(record.value);
  if (!sv) {
    if (sub_owner) {
      return Status::error("forged: the subkey names owner " + owner_short(*sub_owner) +
                           " but the value is not signed");
    }
    return std::optional<OwnerKey>();
  }
  if (DhtId::from_key(sv->key_name) != record.key) {
    return Status::error("forged: the signed key name does not hash to the record's key");
  }
  auto name_owner = owner_named_by(sv->key_name);
  if (!name_owner.ok()) return Status::error("key name: " + name_owner.error());
  if (*name_owner && sub_owner && **name_owner != *sub_owner) {
    return Status::error("the key name and the subkey name different owners");
  }
  const std::optional<OwnerKey> owner = sub_owner ? sub_owner : *name_owner;
  if (!owner) return Status::error("a signed value whose key and subkey name no owner");
  std::optional<std::string_view> sub;
  if (record.has_subkey) sub = record.subkey;
  init_sodium();
  const std::string m = signed_message(record.key, sub, record.expiration, sv->payload);
  if (crypto_sign_verify_detached(reinterpret_cast<const uint8_t*>(sv->signature.data()),
                                  reinterpret_cast<const uint8_t*>(m.data()), m.size(),
                                  owner->data()) != 0) {
    return Status::error("forged: the signature of owner " + owner_short(*owner) +
                         " does not verify");
  }
  return owner;
}

std::optional<OwnerKey> held_owner(std::string_view value) {
  auto sv = split_signed(value);
  if (!sv) return std::nullopt;
  auto o = owner_named_by(sv->key_name);
  if (!o.ok() || !*o) return std::nullopt;
  return **o;
}

}  // namespace crowdtrain::dht
