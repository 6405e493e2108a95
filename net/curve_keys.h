// CURVE keys of a live peer (ZeroMQ's CurveZMQ: Curve25519 keys, Z85 text of 40 characters). A
// peer keeps its keypair in a file ("public=<z85>" and "secret=<z85>" lines, mode 0600), created
// on first use; others know it by its public key.
#pragma once

#include <string>

#include "core/dht/record_signing.h"
#include "core/status.h"

namespace crowdtrain::net {

struct CurveKeypair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// Whether `key` is a Z85 text of a 32-byte key (40 characters of the Z85 alphabet).
bool valid_curve_key(const std::string& key);
// Reads the keypair at `path`, or creates one there (mode 0600) when the file does not exist.
// Errors name the file and what is wrong (unreadable, malformed, a public key that is not the
// secret key's).
Result<CurveKeypair> load_or_create_keypair(const std::string& path);
// The swarm key at `path` (a line "swarm=<64 hex digits>", mode 0600), or a fresh random one
// written there when the file does not exist: the shared secret whose holders may join an open
// swarm (copy the file to every host). Errors name the file and what is wrong.
Result<std::string> load_or_create_swarm_key(const std::string& path);
// The Ed25519 identity at `path` (a line "ed25519=<128 hex digits>": libsodium's 64-byte secret
// key, mode 0600) that signs the DHT records this peer owns (core/dht/record_signing.h), or a fresh
// one written there when the file does not exist. Errors name the file and what is wrong.
Result<dht::SigningKey> load_or_create_identity(const std::string& path);
// Whether this libzmq can do CURVE (built with libsodium or its own tweetnacl).
bool curve_available();

}  // namespace crowdtrain::net
