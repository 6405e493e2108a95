#include "core/dht/protocol.h"

#include "core/field_reader.h"

namespace crowdtrain::dht {
namespace {

// The DHT's reader: the shared field reader plus node ids.
class Reader : public FieldReader {
 public:
  using FieldReader::FieldReader;

  Result<DhtId> id(uint16_t tag, const char* name) {
    auto raw = bytes(tag, kIdBytes, name);
    if (!raw.ok()) return raw.status();
    if (raw.value().size() != kIdBytes) {
      return fail_last(name, "an id has " + std::to_string(kIdBytes) + " bytes, got " +
                                 std::to_string(raw.value().size()));
    }
    return DhtId::from_bytes(raw.value(), name);
  }
};

// Every request opens with the same header: the sender's id and its client flag.
template <typename Request>
Status read_request_header(Reader& r, Request& out) {
  CT_TRY(sender, r.id(kTagNodeId, "sender id"));
  CT_TRY(client, r.flag(kTagClient, "client"));
  out.sender = sender;
  out.client = client;
  return Status::ok_status();
}

// A value entry: kind, [subkey], value, expiration.
Status read_entry(Reader& r, const ProtocolLimits& limits, StoreRecord& out) {
  CT_TRY(kind, r.u64(kTagKind, "kind"));
  if (kind > 1)
    return r.fail("kind", "must be 0 (plain) or 1 (subkey), got " + std::to_string(kind));
  out.has_subkey = kind == 1;
  if (out.has_subkey) {
    CT_TRY(subkey, r.bytes(kTagSubkey, limits.max_subkey_bytes, "subkey"));
    out.subkey = std::move(subkey);
  }
  CT_TRY(value, r.bytes(kTagValue, limits.max_value_bytes, "value"));
  out.value = std::move(value);
  CT_TRY(expiration, r.i64(kTagExpiration, "expiration"));
  out.expiration = Time(expiration);
  return Status::ok_status();
}

void write_entry(Message& m, bool has_subkey, const std::string& subkey, const ValueEntry& e) {
  m.add_u64(kTagKind, has_subkey ? 1 : 0);
  if (has_subkey) m.add_bytes(kTagSubkey, subkey);
  m.add_bytes(kTagValue, e.value);
  m.add_i64(kTagExpiration, e.expiration.count());
}

}  // namespace

Message encode_ping_request(const PingRequest& r) {
  Message m(MsgType::kDhtPingRequest);
  m.add_bytes(kTagNodeId, r.sender.to_bytes()).add_u64(kTagClient, r.client ? 1 : 0);
  return m;
}

Message encode_ping_response(const PingResponse& r) {
  Message m(MsgType::kDhtPingResponse);
  m.flags = kFlagResponse;
  m.add_bytes(kTagNodeId, r.responder.to_bytes());
  return m;
}

Message encode_store_request(const StoreRequest& r) {
  Message m(MsgType::kDhtStoreRequest);
  m.add_bytes(kTagNodeId, r.sender.to_bytes()).add_u64(kTagClient, r.client ? 1 : 0);
  m.add_u64(kTagInCache, r.in_cache ? 1 : 0);
  for (const StoreRecord& rec : r.records) {
    m.add_bytes(kTagKey, rec.key.to_bytes());
    write_entry(m, rec.has_subkey, rec.subkey, ValueEntry{rec.value, rec.expiration});
  }
  return m;
}

Message encode_store_response(const StoreResponse& r) {
  Message m(MsgType::kDhtStoreResponse);
  m.flags = kFlagResponse;
  m.add_bytes(kTagNodeId, r.responder.to_bytes());
  for (const std::string& why : r.refusals) {
    m.add_u64(kTagStored, why.empty() ? 1 : 0).add_bytes(kTagReason, why);
  }
  return m;
}

Message encode_find_request(const FindRequest& r) {
  Message m(MsgType::kDhtFindRequest);
  m.add_bytes(kTagNodeId, r.sender.to_bytes()).add_u64(kTagClient, r.client ? 1 : 0);
  for (const DhtId& k : r.keys) m.add_bytes(kTagKey, k.to_bytes());
  return m;
}

Message encode_find_response(const FindResponse& r, const std::vector<DhtId>& keys) {
  CT_CHECK(r.results.size() == keys.size());
  Message m(MsgType::kDhtFindResponse);
  m.flags = kFlagResponse;
  m.add_bytes(kTagNodeId, r.responder.to_bytes());
  for (size_t i = 0; i < keys.size(); ++i) {
    m.add_bytes(kTagKey, keys[i].to_bytes());
    const FindKeyResult& kr = r.results[i];
    if (kr.value && kr.value->is_dictionary) {
      for (const auto& [sub, e] : kr.value->dictionary) write_entry(m, true, sub, e);
    } else if (kr.value) {
      write_entry(m, false, "", kr.value->plain);
    }
    for (const Contact& c : kr.nearest) {
      m.add_bytes(kTagContactId, c.id.to_bytes()).add_u64(kTagContactPeer, c.peer);
    }
  }
  return m;
}

Result<PingRequest> decode_ping_request(const Message& m, const ProtocolLimits&) {
  const char* what = "dht ping request";
  if (Status s = check_message_type(m, MsgType::kDhtPingRequest, false, what); !s.ok()) return s;
  Reader r(m, what);
  PingRequest out;
  if (Status s = read_request_header(r, out); !s.ok()) return s;
  if (Status s = r.finish(); !s.ok()) return s;
  return out;
}

Result<PingResponse> decode_ping_response(const Message& m, const ProtocolLimits&) {
  const char* what = "dht ping response";
  if (Status s = check_message_type(m, MsgType::kDhtPingResponse, true, what); !s.ok()) return s;
  Reader r(m, what);
  CT_TRY(responder, r.id(kTagNodeId, "responder id"));
  if (Status s = r.finish(); !s.ok()) return s;
  return PingResponse{responder};
}

Result<StoreRequest> decode_store_request(const Message& m, const ProtocolLimits& limits) {
  const char* what = "dht store request";
  if (Status s = check_message_type(m, MsgType::kDhtStoreRequest, false, what); !s.ok()) return s;
  Reader r(m, what);
  StoreRequest out;
  if (Status s = read_request_header(r, out); !s.ok()) return s;
  CT_TRY(in_cache, r.flag(kTagInCache, "in_cache"));
  out.in_cache = in_cache;
  while (r.next_is(kTagKey)) {
    if (out.records.size() >= limits.max_keys_per_request) {
      return r.fail("key", "more than " + std::to_string(limits.max_keys_per_request) + " records");
    }
    StoreRecord rec;
    CT_TRY(key, r.id(kTagKey, "key"));
    rec.key = key;
    if (Status s = read_entry(r, limits, rec); !s.ok()) return s;
    out.records.push_back(std::move(rec));
  }
  if (out.records.empty()) return r.fail("key", "a store holds at least one record");
  if (Status s = r.finish(); !s.ok()) return s;
  return out;
}

Result<StoreResponse> decode_store_response(const Message& m, size_t records,
                                            const ProtocolLimits& limits) {
  const char* what = "dht store response";
  if (Status s = check_message_type(m, MsgType::kDhtStoreResponse, true, what); !s.ok()) return s;
  Reader r(m, what);
  StoreResponse out;
  CT_TRY(responder, r.id(kTagNodeId, "responder id"));
  out.responder = responder;
  for (size_t i = 0; i < records; ++i) {
    CT_TRY(stored, r.flag(kTagStored, "stored"));
    CT_TRY(why, r.bytes(kTagReason, 1024, "reason"));
    if (stored != why.empty()) return r.fail("reason", "a refusal needs a reason, a store none");
    out.refusals.push_back(std::move(why));
  }
  if (Status s = r.finish(); !s.ok()) return s;
  return out;
}

Result<FindRequest> decode_find_request(const Message& m, const ProtocolLimits& limits) {
  const char* what = "dht find request";
  if (Status s = check_message_type(m, MsgType::kDhtFindRequest, false, what); !s.ok()) return s;
  Reader r(m, what);
  FindRequest out;
  if (Status s = read_request_header(r, out); !s.ok()) return s;
  while (r.next_is(kTagKey)) {
    if (out.keys.size() >= limits.max_keys_per_request) {
      return r.fail("key", "more than " + std::to_string(limits.max_keys_per_request) + " keys");
    }
    CT_TRY(key, r.id(kTagKey, "key"));
    out.keys.push_back(key);
  }
  if (out.keys.empty()) return r.fail("key", "a find asks at least one key");
  if (Status s = r.finish(); !s.ok()) return s;
  return out;
}

Result<FindResponse> decode_find_response(const Message& m, const std::vector<DhtId>& keys,
                                          const ProtocolLimits& limits) {
  const char* what = "dht find response";
  if (Status s = check_message_type(m, MsgType::kDhtFindResponse, true, what); !s.ok()) return s;
  Reader r(m, what);
  FindResponse out;
  CT_TRY(responder, r.id(kTagNodeId, "responder id"));
  out.responder = responder;
  for (const DhtId& asked : keys) {
    CT_TRY(key, r.id(kTagKey, "key"));
    if (key != asked)
      return r.fail("key", "answers " + key.short_hex() + ", asked " + asked.short_hex());
    FindKeyResult kr;
    size_t entries = 0;
    while (r.next_is(kTagKind)) {
      if (++entries > limits.max_entries_per_key) {
        return r.fail("kind",
                      "more than " + std::to_string(limits.max_entries_per_key) + " values");
      }
      StoreRecord e;
      if (Status s = read_entry(r, limits, e); !s.ok()) return s;
      if (!kr.value) {
        kr.value.emplace();
        kr.value->is_dictionary = e.has_subkey;
      } else if (!kr.value->is_dictionary || !e.has_subkey) {
        return r.fail("kind", "a key holds one plain value or dictionary entries, not both");
      }
      if (e.has_subkey) {
        if (!kr.value->dictionary.emplace(e.subkey, ValueEntry{e.value, e.expiration}).second) {
          return r.fail("subkey", "repeated subkey");
        }
      } else {
        kr.value->plain = ValueEntry{std::move(e.value), e.expiration};
      }
    }
    while (r.next_is(kTagContactId)) {
      if (kr.nearest.size() >= limits.max_contacts_per_key) {
        return r.fail("contact id",
                      "more than " + std::to_string(limits.max_contacts_per_key) + " contacts");
      }
      CT_TRY(id, r.id(kTagContactId, "contact id"));
      CT_TRY(peer, r.u64(kTagContactPeer, "contact peer"));
      if (peer >= kNoPeer) return r.fail("contact peer", "not a peer id: " + std::to_string(peer));
      kr.nearest.push_back(Contact{id, static_cast<PeerId>(peer)});
    }
    out.results.push_back(std::move(kr));
  }
  if (Status s = r.finish(); !s.ok()) return s;
  return out;
}

}  // namespace crowdtrain::dht
