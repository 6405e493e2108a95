// SHA-1 (FIPS 180-4), one-shot. Used only to turn DHT key strings into 160-bit ids (as Kademlia and
// hivemind do); it is not used for anything that needs collision resistance. No OpenSSL dependency.
// Pure functions, no state: safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace crowdtrain::dht {

using Sha1Digest = std::array<uint8_t, 20>;

Sha1Digest sha1(std::string_view data);

}  // namespace crowdtrain::dht
