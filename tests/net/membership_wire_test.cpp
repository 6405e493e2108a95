// The live runtime's membership messages: round trips, and every malformed body refused with a
// reason.
#include "net/membership_wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace crowdtrain::net {
namespace {

Result<ControlMessage> decode(const std::vector<uint8_t>& b) {
  return decode_control(b.data(), b.size());
}

TEST(MembershipWire, RoundTrips) {
  Hello h;
  h.flags = Hello::kAnswerMe;
  h.address = "tcp://10.0.0.7:5500";
  h.mac = hello_mac("swarm", 3, "", h.address);
  auto m = decode(encode_hello(h));
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(m->kind, ControlKind::kHello);
  EXPECT_EQ(m->hello.flags, Hello::kAnswerMe);
  EXPECT_EQ(m->hello.address, h.address);
  EXPECT_EQ(m->hello.mac, h.mac);

  auto w = decode(encode_who(41));
  ASSERT_TRUE(w.ok()) << w.error();
  EXPECT_EQ(w->kind, ControlKind::kWho);
  EXPECT_EQ(w->who, 41u);

  const std::string key(40, 'a');
  auto i = decode(encode_is({9, "tcp://h:1", key}));
  ASSERT_TRUE(i.ok()) << i.error();
  EXPECT_EQ(i->kind, ControlKind::kIs);
  EXPECT_EQ(i->is.id, 9u);
  EXPECT_EQ(i->is.address, "tcp://h:1");
  EXPECT_EQ(i->is.public_key, key);
}

TEST(MembershipWire, AnAnswerNamesItsPeerAndAClientHasNoAddress) {
  Hello answer;
  answer.flags = Hello::kAnswer;
  answer.id = 17;
  answer.address = "tcp://10.0.0.7:5500";
  auto a = decode(encode_hello(answer));
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->hello.id, 17u);
  EXPECT_EQ(a->hello.address, answer.address);

  Hello client;
  client.flags = Hello::kClient | Hello::kAnswerMe;
  client.mac = hello_mac("swarm", 4, "", "");
  auto c = decode(encode_hello(client));
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->hello.flags, Hello::kClient | Hello::kAnswerMe);
  EXPECT_TRUE(c->hello.address.empty());
  EXPECT_EQ(c->hello.mac, client.mac);

  Hello addressed_client = client;  // a client that names an address
  addressed_client.address = "tcp://10.0.0.8:1";
  auto bad = decode(encode_hello(addressed_client));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("client announces no address"), std::string::npos) << bad.error();
  Hello no_address;  // a hello without kClient must name a valid address
  EXPECT_FALSE(decode(encode_hello(no_address)).ok());
  Hello reserved = answer;
  reserved.id = kNoPeer;
  EXPECT_FALSE(decode(encode_hello(reserved)).ok());
}

TEST(MembershipWire, MalformedBodiesAreRefusedWithAReason) {
  Hello h;
  h.address = "tcp://127.0.0.1:5";
  const std::vector<uint8_t> hello = encode_hello(h);
  Hello a = h;
  a.flags = Hello::kAnswer;
  a.id = 5;
  const std::vector<uint8_t> answer = encode_hello(a);
  std::vector<std::vector<uint8_t>> bad;
  bad.push_back({});           // empty
  bad.push_back({'X', 1, 2});  // unknown kind
  for (const auto* whole : {&hello, &answer}) {
    for (size_t n = 1; n < whole->size(); ++n) {  // every truncation
      bad.emplace_back(whole->begin(), whole->begin() + static_cast<std::ptrdiff_t>(n));
    }
  }
  std::vector<uint8_t> trailing = hello;
  trailing.push_back(0);
  bad.push_back(trailing);
  std::vector<uint8_t> flags = hello;
  flags[1] = 0x80;  // an unknown flag
  bad.push_back(flags);
  bad.push_back({'H', 0, 0xff, 0xff});  // a 65,535-byte address that is not there
  bad.push_back({'H', 0, 0x10, 0x01});  // longer than kMaxAddressBytes
  Hello spaced;
  spaced.address = "tcp://a b:1";
  bad.push_back(encode_hello(spaced));
  Hello no_scheme;
  no_scheme.address = "127.0.0.1:5";
  bad.push_back(encode_hello(no_scheme));
  std::vector<uint8_t> mac = hello;
  mac.back() = 7;  // a 7-byte MAC
  mac.insert(mac.end(), 7, 0);
  bad.push_back(mac);
  bad.push_back({'W', 1, 2, 3});                 // truncated id
  bad.push_back({'W', 0xff, 0xff, 0xff, 0xff});  // the reserved id
  std::vector<uint8_t> is = encode_is({9, "tcp://h:1", std::string(40, 'a')});
  is.back() = '"';  // not a Z85 character
  bad.push_back(is);
  std::vector<uint8_t> short_key = encode_is({9, "tcp://h:1", ""});
  short_key.back() = 12;  // a key length that is neither 0 nor 40
  short_key.insert(short_key.end(), 12, 'a');
  bad.push_back(short_key);
  for (const auto& b : bad) {
    auto m = decode(b);
    EXPECT_FALSE(m.ok()) << "accepted " << b.size() << " bytes";
    if (!m.ok()) {
      EXPECT_FALSE(m.error().empty());
    }
  }
}

TEST(MembershipWire, TheMacBindsIdKeyAndAddress) {
  const std::string mac = hello_mac("k", 1, "KEY", "tcp://a:1");
  EXPECT_EQ(mac.size(), kMacBytes);
  EXPECT_EQ(mac, hello_mac("k", 1, "KEY", "tcp://a:1"));
  EXPECT_NE(mac, hello_mac("other", 1, "KEY", "tcp://a:1"));
  EXPECT_NE(mac, hello_mac("k", 2, "KEY", "tcp://a:1"));
  EXPECT_NE(mac, hello_mac("k", 1, "KEX", "tcp://a:1"));
  EXPECT_NE(mac, hello_mac("k", 1, "KEY", "tcp://a:2"));
}

}  // namespace
}  // namespace crowdtrain::net
