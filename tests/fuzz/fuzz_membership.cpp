// libFuzzer target: the live runtime's membership messages (net/membership_wire.h), the first
// bytes a stranger sends a peer in open membership: hello (with its client flag and the id an
// answer names), who, is. Every body decodes to a message or is refused with a reason; what decodes
// obeys the format's rules (a client announces no address, anyone else a valid one; no reserved
// id; a key is 0 or 40 Z85 characters) and encodes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "net/membership_wire.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace crowdtrain;
using namespace crowdtrain::net;

std::vector<uint8_t> encode(const ControlMessage& m) {
  switch (m.kind) {
    case ControlKind::kHello:
      return encode_hello(m.hello);
    case ControlKind::kWho:
      return encode_who(m.who);
    case ControlKind::kIs:
      return encode_is(m.is);
  }
  return {};
}

void check_hello(const Hello& h) {
  if (h.flags & Hello::kClient) {
    FUZZ_CHECK(h.address.empty());
  } else {
    FUZZ_CHECK(valid_peer_address(h.address));
  }
  if (h.flags & Hello::kAnswer) FUZZ_CHECK(h.id != kNoPeer);
  FUZZ_CHECK(h.mac.empty() || h.mac.size() == kMacBytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = decode_control(data, size);
  if (!m.ok()) {
    FUZZ_CHECK(!m.error().empty());
    return 0;
  }
  const ControlMessage& c = m.value();
  if (c.kind == ControlKind::kHello) check_hello(c.hello);
  if (c.kind == ControlKind::kWho) FUZZ_CHECK(c.who != kNoPeer);
  if (c.kind == ControlKind::kIs) {
    FUZZ_CHECK(c.is.id != kNoPeer && valid_peer_address(c.is.address));
    FUZZ_CHECK(c.is.public_key.empty() || c.is.public_key.size() == 40);
  }
  const std::vector<uint8_t> again = encode(c);
  FUZZ_CHECK(again == std::vector<uint8_t>(data, data + size));
  return 0;
}
