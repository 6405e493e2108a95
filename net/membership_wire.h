// The live runtime's membership messages (open membership, net/zmq_runtime.h): how a peer that
// knows only a few addresses joins, and how peers learn each other's addresses.
//
//   hello  "I am the peer of this connection, reachable at ADDRESS" (the first message on every
//          connection; with a swarm key, a MAC that proves the sender holds it). Flags: kAnswerMe
//          (a newcomer contacting an address whose peer id it does not know yet: answer with your
//          own hello), kAnswer (such an answer; it names the answerer's peer id, since a client
//          hears it on a connection that carries no routing identity), kClient (the sender cannot
//          be called, behind NAT or a firewall: no address; reach it over the connection it
//          opened).
//   who    "where is peer ID?", asked of peers this one has heard from.
//   is     "peer ID is at ADDRESS (with this public key)", the answer of a peer that knows.
//
// On the wire a membership message is two frames: kControlTag, then the body (little-endian):
//   hello: 'H', u8 flags, [u32 peer id: kAnswer only], u16 address length, address (empty
//          exactly when kClient), u8 MAC length (0 or 32), MAC
//   who:   'W', u32 peer id
//   is:    'I', u32 peer id, u16 address length, address, u8 key length (0 or 40), Z85 key
// Decoders refuse anything else (unknown kinds or flags, lengths past the end, trailing bytes, a
// malformed address or key, the reserved peer id) with a reason; bytes from the network never
// reach further unchecked.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain::net {

constexpr char kControlTag[4] = {'c', 't', 'p', 'x'};
constexpr size_t kMaxAddressBytes = 256;
constexpr size_t kMacBytes = 32;

enum class ControlKind : uint8_t { kHello = 'H', kWho = 'W', kIs = 'I' };

struct Hello {
  static constexpr uint8_t kAnswerMe = 1;
  static constexpr uint8_t kAnswer = 2;
  static constexpr uint8_t kClient = 4;
  uint8_t flags = 0;
  PeerId id = kNoPeer;  // kAnswer: the answerer
  std::string address;  // empty for a client
  std::string mac;      // empty, or kMacBytes bytes
};

struct PeerRecord {  // the body of "is"
  PeerId id = kNoPeer;
  std::string address;
  std::string public_key;  // empty (plain mode) or 40 Z85 characters
};

struct ControlMessage {
  ControlKind kind = ControlKind::kHello;
  Hello hello;     // kHello
  PeerId who = 0;  // kWho
  PeerRecord is;   // kIs
};

std::vector<uint8_t> encode_hello(const Hello& h);
std::vector<uint8_t> encode_who(PeerId id);
std::vector<uint8_t> encode_is(const PeerRecord& r);
Result<ControlMessage> decode_control(const uint8_t* data, size_t size);

// Whether `address` is one a peer may be given or announce: "scheme://rest", printable ASCII, at
// most kMaxAddressBytes.
bool valid_peer_address(std::string_view address);

// The MAC of a hello under the swarm key: it binds the sender's peer id, its CurveZMQ public key
// (the one the connection was authenticated with) and the address it announces.
std::string hello_mac(std::string_view swarm_key, PeerId id, std::string_view public_key,
                      std::string_view address);

}  // namespace crowdtrain::net
