// Owner-signed DHT records (libsodium's Ed25519), so that no peer can overwrite another's keys or
// expert declarations (hivemind's RSASignatureValidator is the model; hivemind #93).
//
// A key name or a subkey *names an owner* when it contains the marker "[owner:<64 hex digits>]",
// the owner's Ed25519 public key (at most one marker per name). The owner signs the value of such a
// record: the stored value is the payload followed by a trailer that holds the key name (so that
// any peer, which sees only the key's SHA-1 id, can tell who owns the key), the 64-byte signature
// over (key id, subkey, expiration, payload), the name's length and a 6-byte magic. The rules,
// checked by every DhtNode on every store it serves and on every answer it accepts:
//   - a subkey that names an owner carries a value signed by that owner, or is refused;
//   - a signed value's key name hashes to the record's key id, names the owner whose signature it
//     carries (or its subkey does, the same one), and the signature verifies, or it is refused;
//   - a key whose stored records were signed by the owner its name names changes only by that
//     owner's signed records (an unsigned record that got there first is replaced by the owner's,
//     whatever their expirations);
//   - records that name no owner and carry no trailer are untouched by all this.
// A replayed record is an old signed one: it expires no later than what is held, and storage keeps
// the later expiration, so it changes nothing. Plain functions and a small value type; libsodium
// stays inside record_signing.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/dht/dht_id.h"
#include "core/status.h"
#include "core/time.h"

namespace crowdtrain::dht {

struct StoreRecord;

using OwnerKey = std::array<uint8_t, 32>;  // an Ed25519 public key

// An Ed25519 key pair. The secret stays in the object; copies are plain copies.
class SigningKey {
 public:
  // From a 32-byte seed (the simulator draws it from the run's seed: deterministic runs).
  static SigningKey from_seed(const std::array<uint8_t, 32>& seed);
  // From 32 bytes drawn from `rng` (the simulated world: a peer's identity from the run's seed).
  static SigningKey from_rng(Rng& rng);
  // From the operating system's randomness (live peers).
  static SigningKey generate();
  // A 64-byte libsodium secret key (seed followed by the public key), as kept in a file; an error
  // when it is not 64 bytes or its halves do not match.
  static Result<SigningKey> from_secret(std::string_view secret);

  const OwnerKey& public_key() const { return public_; }
  std::string secret() const { return std::string(secret_.begin(), secret_.end()); }
  // This key's owner marker, "[owner:<hex>]", to put into a key name or a subkey.
  const std::string& marker() const { return marker_; }
  // `payload` with the owner's trailer for the record (key_name, subkey, expiration).
  std::string sign(std::string_view key_name, const std::optional<std::string>& subkey,
                   std::string_view payload, Time expiration) const;

 private:
  OwnerKey public_{};
  std::array<uint8_t, 64> secret_{};
  std::string marker_;
};

// The marker "[owner:<hex>]" of `key`.
std::string owner_marker(const OwnerKey& key);
// The owner that `name` names: nullopt when none, an error when the marker is malformed or there
// are two.
Result<std::optional<OwnerKey>> owner_named_by(std::string_view name);

// A signed value taken apart (views into the value).
struct SignedValue {
  std::string_view payload;
  std::string_view key_name;
  std::string_view signature;  // 64 bytes
};
// The parts of `value` when it ends with a signature trailer; nullopt otherwise.
std::optional<SignedValue> split_signed(std::string_view value);
// What the application stored: the payload of a signed value, else the value itself.
std::string_view payload_of(std::string_view value);

// The owner whose valid signature `record` carries (nullopt for an unsigned record that names no
// owner), or an error that says why the record is forged or malformed.
Result<std::optional<OwnerKey>> check_record_signature(const StoreRecord& record);

// The owner of a value that is already held (a signed value whose key name names its signer);
// nullopt for anything else. Does not verify again: held values were checked when stored.
std::optional<OwnerKey> held_owner(std::string_view value);

// Bytes as lowercase hex digits, and back (nullopt for an odd length or a non-hex digit; upper
// case accepted).
std::string hex_encode(std::string_view bytes);
std::optional<std::string> hex_decode(std::string_view hex);

// A short printable form of an owner key (the first 8 hex digits), for reasons and logs.
std::string owner_short(const OwnerKey& key);

}  // namespace crowdtrain::dht
