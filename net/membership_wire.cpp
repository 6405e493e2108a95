#include "net/membership_wire.h"

#include "core/sha256.h"
#include "net/curve_keys.h"

namespace crowdtrain::net {

namespace {

void put_u16(std::vector<uint8_t>& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}

void put_u32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_bytes(std::vector<uint8_t>& b, std::string_view s) {
  b.insert(b.end(), s.begin(), s.end());
}

// Reads a body front to back; every read checks the bytes are there.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool u8(uint8_t& v) {
    if (n_ - pos_ < 1) return false;
    v = p_[pos_++];
    return true;
  }
  bool u16(size_t& v) {
    if (n_ - pos_ < 2) return false;
    v = size_t{p_[pos_]} | (size_t{p_[pos_ + 1]} << 8);
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& v) {
    if (n_ - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{p_[pos_ + i]} << (8 * i);
    pos_ += 4;
    return true;
  }
  bool bytes(size_t len, std::string& out) {
    if (n_ - pos_ < len) return false;
    out.assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return true;
  }
  bool done() const { return pos_ == n_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

Status read_address(Reader& r, std::string& address) {
  size_t len = 0;
  if (!r.u16(len)) return Status::error("truncated address length");
  if (len > kMaxAddressBytes) {
    return Status::error("address of " + std::to_string(len) + " bytes (at most " +
                         std::to_string(kMaxAddressBytes) + ")");
  }
  if (!r.bytes(len, address)) return Status::error("address runs past the end");
  if (!valid_peer_address(address)) return Status::error("malformed address");
  return Status::ok_status();
}

Result<ControlMessage> decode_hello(Reader& r) {
  ControlMessage m;
  m.kind = ControlKind::kHello;
  if (!r.u8(m.hello.flags)) return Status::error("hello: truncated");
  if (m.hello.flags & ~(Hello::kAnswerMe | Hello::kAnswer | Hello::kClient)) {
    return Status::error("hello: unknown flags " + std::to_string(m.hello.flags));
  }
  if (m.hello.flags & Hello::kAnswer) {
    if (!r.u32(m.hello.id)) return Status::error("hello: truncated peer id");
    if (m.hello.id == kNoPeer) return Status::error("hello: reserved peer id");
  }
  if (m.hello.flags & Hello::kClient) {  // a client has no address: an empty one, nothing else
    size_t len = 0;
    if (!r.u16(len)) return Status::error("hello: truncated address length");
    if (len != 0) return Status::error("hello: a client announces no address");
  } else if (Status s = read_address(r, m.hello.address); !s.ok()) {
    return Status::error("hello: " + s.message());
  }
  uint8_t mac_len = 0;
  if (!r.u8(mac_len)) return Status::error("hello: truncated MAC length");
  if (mac_len != 0 && mac_len != kMacBytes) {
    return Status::error("hello: MAC of " + std::to_string(mac_len) + " bytes");
  }
  if (!r.bytes(mac_len, m.hello.mac)) return Status::error("hello: MAC runs past the end");
  return m;
}

Result<ControlMessage> decode_is(Reader& r) {
  ControlMessage m;
  m.kind = ControlKind::kIs;
  if (!r.u32(m.is.id)) return Status::error("is: truncated peer id");
  if (m.is.id == kNoPeer) return Status::error("is: reserved peer id");
  if (Status s = read_address(r, m.is.address); !s.ok()) return Status::error("is: " + s.message());
  uint8_t key_len = 0;
  if (!r.u8(key_len)) return Status::error("is: truncated key length");
  if (key_len != 0 && key_len != 40) {
    return Status::error("is: public key of " + std::to_string(key_len) + " characters");
  }
  if (!r.bytes(key_len, m.is.public_key)) return Status::error("is: key runs past the end");
  if (key_len && !valid_curve_key(m.is.public_key)) return Status::error("is: malformed key");
  return m;
}

}  // namespace

bool valid_peer_address(std::string_view address) {
  if (address.empty() || address.size() > kMaxAddressBytes) return false;
  const size_t scheme = address.find("://");
  if (scheme == std::string_view::npos || scheme == 0 || scheme + 3 == address.size()) return false;
  for (char c : address) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::vector<uint8_t> encode_hello(const Hello& h) {
  std::vector<uint8_t> b{static_cast<uint8_t>(ControlKind::kHello), h.flags};
  if (h.flags & Hello::kAnswer) put_u32(b, h.id);
  put_u16(b, h.address.size());
  put_bytes(b, h.address);
  b.push_back(static_cast<uint8_t>(h.mac.size()));
  put_bytes(b, h.mac);
  return b;
}

std::vector<uint8_t> encode_who(PeerId id) {
  std::vector<uint8_t> b{static_cast<uint8_t>(ControlKind::kWho)};
  put_u32(b, id);
  return b;
}

std::vector<uint8_t> encode_is(const PeerRecord& r) {
  std::vector<uint8_t> b{static_cast<uint8_t>(ControlKind::kIs)};
  put_u32(b, r.id);
  put_u16(b, r.address.size());
  put_bytes(b, r.address);
  b.push_back(static_cast<uint8_t>(r.public_key.size()));
  put_bytes(b, r.public_key);
  return b;
}

Result<ControlMessage> decode_control(const uint8_t* data, size_t size) {
  Reader r(data, size);
  uint8_t kind = 0;
  if (!r.u8(kind)) return Status::error("empty membership message");
  Result<ControlMessage> m = Status::error("");
  switch (static_cast<ControlKind>(kind)) {
    case ControlKind::kHello:
      m = decode_hello(r);
      break;
    case ControlKind::kWho: {
      ControlMessage w;
      w.kind = ControlKind::kWho;
      if (!r.u32(w.who)) return Status::error("who: truncated peer id");
      if (w.who == kNoPeer) return Status::error("who: reserved peer id");
      m = w;
      break;
    }
    case ControlKind::kIs:
      m = decode_is(r);
      break;
    default:
      return Status::error("unknown membership message kind " + std::to_string(kind));
  }
  if (m.ok() && !r.done()) return Status::error("membership message: trailing bytes");
  return m;
}

std::string hello_mac(std::string_view swarm_key, PeerId id, std::string_view public_key,
                      std::string_view address) {
  std::string data = "crowdtrain hello v1";
  data.push_back('\0');
  for (int i = 0; i < 4; ++i) data.push_back(static_cast<char>(id >> (8 * i)));
  data.push_back(static_cast<char>(public_key.size()));
  data.append(public_key);
  data.append(address);
  const auto mac = hmac_sha256(swarm_key, data);
  return std::string(reinterpret_cast<const char*>(mac.data()), mac.size());
}

}  // namespace crowdtrain::net
