// libFuzzer target: the DHT's wire protocol (core/dht/protocol.h). Bytes become a message (the
// codec), then every DHT decoder reads it: each returns its request or response or an error with a
// reason, never crashes, never takes more than the limits allow.
#include <cstddef>
#include <cstdint>

#include "core/dht/protocol.h"
#include "core/message.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crowdtrain;
  using namespace crowdtrain::dht;
  auto m = decode_copy(data, size);
  if (!m.ok()) return 0;
  ProtocolLimits limits;
  (void)decode_ping_request(m.value(), limits);
  (void)decode_ping_response(m.value(), limits);
  if (auto s = decode_store_request(m.value(), limits); s.ok()) {
    FUZZ_CHECK(s->records.size() <= limits.max_keys_per_request);
  }
  for (size_t records = 1; records <= 3; ++records) {
    if (auto r = decode_store_response(m.value(), records, limits); r.ok()) {
      FUZZ_CHECK(r->refusals.size() == records);
    }
  }
  (void)decode_find_request(m.value(), limits);
  // The keys the corpus's find responses answer (tests/fuzz/make_corpus.cpp).
  static const std::vector<DhtId> keys = {DhtId::from_key("a"), DhtId::from_key("b")};
  for (size_t n = 1; n <= keys.size(); ++n) {
    const std::vector<DhtId> asked(keys.begin(), keys.begin() + static_cast<long>(n));
    if (auto r = decode_find_response(m.value(), asked, limits); r.ok()) {
      FUZZ_CHECK(r->results.size() == n);
    }
  }
  return 0;
}
