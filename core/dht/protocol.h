// The DHT's three RPCs on the wire: ping, store (many records in one call) and find (FIND_NODE and
// FIND_VALUE merged: many keys per call; per key the values held and the nearest contacts).
// Requests carry the sender's id and whether it is a client (a client is never added to routing
// tables). Decoding is strict: every field is checked for tag, kind, order and size, counts are
// bounded by ProtocolLimits, and anything else makes the whole message an error that names the
// field; a malformed request is answered with an error response and changes nothing. Plain
// functions.
#pragma once

#include <string>
#include <vector>

#include "core/dht/dht_id.h"
#include "core/dht/storage.h"
#include "core/message.h"

namespace crowdtrain::dht {

// Field tags (from 16 up, see core/message_types.h). Numbers are wire format: never renumber.
enum DhtTag : uint16_t {
  kTagNodeId = 16,       // bytes[20]: the sender's (request) or responder's (response) id
  kTagClient = 17,       // u64 0/1: the sender is a client, not a routing-table member
  kTagInCache = 18,      // u64 0/1: store into the cache, not the primary storage
  kTagKey = 19,          // bytes[20]: a key id; opens a record or a key section
  kTagKind = 20,         // u64: 0 plain value, 1 dictionary subkey; opens a value entry
  kTagSubkey = 21,       // bytes: the subkey (kind 1 only)
  kTagValue = 22,        // bytes
  kTagExpiration = 23,   // i64: ns on the runtimes' shared clock
  kTagStored = 24,       // u64 0/1: one per store record, in order
  kTagReason = 25,       // bytes: why a record was refused (empty when stored)
  kTagContactId = 26,    // bytes[20]: opens a contact
  kTagContactPeer = 27,  // u64: the contact's PeerId
};

struct ProtocolLimits {
  size_t max_keys_per_request = 128;  // keys in a find, records in a store
  size_t max_contacts_per_key = 64;   // contacts in a find response, per key
  size_t max_entries_per_key = 1024;  // values per key in a find response (dictionary subkeys)
  size_t max_value_bytes = 64 * 1024;
  size_t max_subkey_bytes = 256;
};

struct PingRequest {
  DhtId sender;
  bool client = false;
};
struct PingResponse {
  DhtId responder;
};

// A plain value (has_subkey false) or one dictionary entry, for one key.
struct StoreRecord {
  DhtId key;
  bool has_subkey = false;
  std::string subkey;
  std::string value;
  Time expiration{0};
};
struct StoreRequest {
  DhtId sender;
  bool client = false;
  bool in_cache = false;
  std::vector<StoreRecord> records;
};
struct StoreResponse {
  DhtId responder;
  std::vector<std::string> refusals;  // one per record: empty when stored, else why not
};

struct FindRequest {
  DhtId sender;
  bool client = false;
  std::vector<DhtId> keys;
};
struct FindKeyResult {
  std::optional<DhtValue> value;  // what the responder holds under the key
  std::vector<Contact> nearest;   // its nearest contacts to the key
};
struct FindResponse {
  DhtId responder;
  std::vector<FindKeyResult> results;  // one per key asked, in order
};

Message encode_ping_request(const PingRequest& r);
Message encode_ping_response(const PingResponse& r);
Message encode_store_request(const StoreRequest& r);
Message encode_store_response(const StoreResponse& r);
Message encode_find_request(const FindRequest& r);
// `keys` are the keys asked, in order (they open each key section).
Message encode_find_response(const FindResponse& r, const std::vector<DhtId>& keys);

Result<PingRequest> decode_ping_request(const Message& m, const ProtocolLimits& limits);
Result<PingResponse> decode_ping_response(const Message& m, const ProtocolLimits& limits);
Result<StoreRequest> decode_store_request(const Message& m, const ProtocolLimits& limits);
// `records` is how many records were sent: the response must answer each.
Result<StoreResponse> decode_store_response(const Message& m, size_t records,
                                            const ProtocolLimits& limits);
Result<FindRequest> decode_find_request(const Message& m, const ProtocolLimits& limits);
// `keys` are the keys asked: the response must answer exactly these, in order.
Result<FindResponse> decode_find_response(const Message& m, const std::vector<DhtId>& keys,
                                          const ProtocolLimits& limits);

}  // namespace crowdtrain::dht
