// Owner-signed DHT records (core/dht/record_signing.h): the signature checks on their own, then a
// DhtNode that refuses forged and replayed records with a reason and keeps its state, lets an
// owner's record replace a squatter's, and a getter that drops forged answers.
#include "core/dht/record_signing.h"

#include <gtest/gtest.h>

#include "core/dht/dht_app.h"
#include "core/dht/node.h"
#include "tests/core/dht/raw_peer.h"
#include "tests/fake_runtime.h"

namespace crowdtrain::dht {
namespace {

using namespace std::chrono_literals;
using crowdtrain::testing::FakeWorld;

SigningKey key_of(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return SigningKey::from_seed(seed);
}

StoreRecord plain(const std::string& name, std::string value, Time expiration) {
  return StoreRecord{DhtId::from_key(name), false, "", std::move(value), expiration};
}

TEST(RecordSigning, AnOwnersSignatureVerifiesAndEveryTamperingIsForged) {
  const SigningKey owner = key_of(1), other = key_of(2);
  const std::string name = "model" + owner.marker();
  const std::string v = owner.sign(name, std::nullopt, "weights", 600s);
  EXPECT_EQ(payload_of(v), "weights");
  auto ok = check_record_signature(plain(name, v, 600s));
  ASSERT_TRUE(ok.ok()) << ok.error();
  ASSERT_TRUE(ok->has_value());
  EXPECT_EQ(**ok, owner.public_key());
  EXPECT_EQ(held_owner(v), owner.public_key());

  auto forged = [](const StoreRecord& r) {
    auto s = check_record_signature(r);
    return s.ok() ? std::string("accepted") : s.error();
  };
  std::string tampered = v;
  tampered[0] = 'W';
  EXPECT_NE(forged(plain(name, tampered, 600s)).find("does not verify"), std::string::npos);
  EXPECT_NE(forged(plain(name, v, 601s)).find("does not verify"), std::string::npos);
  // Another key signs a value for the owner's name: the owner's key does not verify it.
  EXPECT_NE(forged(plain(name, other.sign(name, std::nullopt, "evil", 600s), 600s))
                .find("does not verify"),
            std::string::npos);
  // The owner's signed value moved to another key.
  EXPECT_NE(forged(plain("elsewhere", v, 600s)).find("does not hash"), std::string::npos);
  // A signature for a name that names no owner means nothing.
  EXPECT_NE(forged(plain("free", owner.sign("free", std::nullopt, "x", 600s), 600s))
                .find("name no owner"),
            std::string::npos);
  // A subkey that names an owner needs that owner's signature.
  StoreRecord sub{DhtId::from_key("experts"), true, "3.1" + owner.marker(), "17", 600s};
  EXPECT_NE(forged(sub).find("not signed"), std::string::npos);
  sub.value = owner.sign("experts", sub.subkey, "17", 600s);
  EXPECT_TRUE(check_record_signature(sub).ok());
  sub.value = other.sign("experts", sub.subkey, "17", 600s);
  EXPECT_NE(forged(sub).find("does not verify"), std::string::npos);
  // Unsigned records that name no owner are left alone.
  EXPECT_TRUE(check_record_signature(plain("free", "x", 600s)).ok());
}

TEST(RecordSigning, OwnerMarkersAndSecretKeys) {
  const SigningKey owner = key_of(3);
  EXPECT_EQ(owner.marker().size(), 7u + 64 + 1);
  auto o = owner_named_by("a" + owner.marker() + "b");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(**o, owner.public_key());
  EXPECT_FALSE(*owner_named_by("no owner here"));
  EXPECT_FALSE(owner_named_by("[owner:12]").ok());
  EXPECT_FALSE(owner_named_by("[owner:" + std::string(64, 'G') + "]").ok());
  EXPECT_FALSE(owner_named_by(owner.marker() + key_of(4).marker()).ok());
  auto back = SigningKey::from_secret(owner.secret());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->public_key(), owner.public_key());
  std::string bad = owner.secret();
  bad[40] ^= 1;
  EXPECT_FALSE(SigningKey::from_secret(bad).ok());
  EXPECT_FALSE(SigningKey::from_secret("short").ok());
  EXPECT_NE(SigningKey::generate().public_key(), SigningKey::generate().public_key());
  EXPECT_EQ(hex_encode(std::string("\x00\xab\xff", 3)), "00abff");
  EXPECT_EQ(hex_decode("00ABff"), std::string("\x00\xab\xff", 3));
  EXPECT_FALSE(hex_decode("abc").has_value());
  EXPECT_FALSE(hex_decode("zz").has_value());
}

// One DHT node and a raw peer that sends it store requests of its choosing.
struct Target {
  FakeWorld world{5};
  DhtApp app{world.add_peer(0), DhtId::from_key("node"), DhtOptions(), {}};
  RawPeer raw{world.add_peer(1)};

  Target() {
    world.attach(0, &app);
    world.attach(1, &raw);
    app.start();
    world.run_for(1s);
  }
  // Stores `r` at the node; the refusal reason, or "" when it was stored.
  std::string store(StoreRecord r) {
    std::optional<std::string> out;
    StoreRequest req{DhtId::from_key("raw"), false, false, {std::move(r)}};
    raw.rpc.call(0, encode_store_request(req), CallOptions(), [&](Result<Message> m) {
      CT_CHECK(m.ok());
      auto resp = decode_store_response(*m, 1, ProtocolLimits());
      CT_CHECK(resp.ok());
      out = resp->refusals[0];
    });
    world.run_for(1s);
    CT_CHECK(out.has_value());
    return *out;
  }
  std::optional<DhtValue> held(const std::string& name) {
    return app.node().storage().get(DhtId::from_key(name));
  }
};

TEST(DhtForgedRecords, RefusedWithAReasonAndTheOwnersValueStays) {
  Target t;
  const SigningKey owner = key_of(1), attacker = key_of(2);
  const std::string name = "model" + owner.marker();
  const Time exp = t.world.now() + 600s;
  ASSERT_EQ(t.store(plain(name, owner.sign(name, std::nullopt, "v1", exp), exp)), "");
  const DhtValue before = *t.held(name);

  // An unsigned overwrite with a later expiration, the attacker's own signature, a tampered
  // payload, and a replay of the owner's older record: each refused, nothing changes.
  EXPECT_NE(t.store(plain(name, "evil", exp + 60s)).find("owned by"), std::string::npos);
  EXPECT_NE(t.store(plain(name, attacker.sign(name, std::nullopt, "evil", exp + 60s), exp + 60s))
                .find("forged"),
            std::string::npos);
  std::string tampered = owner.sign(name, std::nullopt, "v2", exp + 60s);
  tampered[1] = '9';
  EXPECT_NE(t.store(plain(name, tampered, exp + 60s)).find("forged"), std::string::npos);
  const Time older = exp - 60s;
  EXPECT_NE(t.store(plain(name, owner.sign(name, std::nullopt, "v0", older), older)),
            "");  // a replay: expires earlier than what is held
  EXPECT_EQ(t.held(name)->plain, before.plain);
  EXPECT_EQ(t.world.sink.counter("dht_forged_records"), 3);

  // The owner's newer record goes in.
  ASSERT_EQ(t.store(plain(name, owner.sign(name, std::nullopt, "v2", exp + 60s), exp + 60s)), "");
  EXPECT_EQ(payload_of(t.held(name)->plain.value), "v2");
}

TEST(DhtForgedRecords, TheOwnersRecordReplacesASquattersAndOwnedSubkeysStayApart) {
  Target t;
  const SigningKey owner = key_of(1), attacker = key_of(2);
  const std::string name = "config" + owner.marker();
  const Time exp = t.world.now() + 600s;
  // Someone stored an unsigned value under the owner's key first, expiring later.
  ASSERT_EQ(t.store(plain(name, "squatter", exp + 3000s)), "");
  ASSERT_EQ(t.store(plain(name, owner.sign(name, std::nullopt, "mine", exp), exp)), "");
  EXPECT_EQ(payload_of(t.held(name)->plain.value), "mine");

  // Expert declarations in one dictionary: each server's entry names its owner; another peer
  // can add its own entry but cannot overwrite the owner's.
  const std::string sub = "3.1" + owner.marker();
  const DhtId experts = DhtId::from_key("experts");
  ASSERT_EQ(t.store(StoreRecord{experts, true, sub, owner.sign("experts", sub, "17", exp), exp}),
            "");
  EXPECT_NE(t.store(StoreRecord{experts, true, sub, "66", exp + 60s}).find("not signed"),
            std::string::npos);
  const std::string theirs = "3.1" + attacker.marker();
  ASSERT_EQ(
      t.store(StoreRecord{experts, true, theirs, attacker.sign("experts", theirs, "66", exp), exp}),
      "");
  const DhtValue held = *t.held("experts");
  ASSERT_EQ(held.dictionary.size(), 2u);
  EXPECT_EQ(payload_of(held.dictionary.at(sub).value), "17");
}

// Three honest nodes and one whose storage was filled behind the protocol's back (as a malicious
// peer would answer): the getter drops the forged answers.
TEST(DhtForgedRecords, AGetterDropsForgedAnswers) {
  FakeWorld world(7);
  std::vector<std::unique_ptr<DhtApp>> apps;
  for (PeerId i = 0; i < 4; ++i) {
    std::vector<PeerId> initial;
    for (PeerId j = 0; j < i; ++j) initial.push_back(j);
    apps.push_back(std::make_unique<DhtApp>(
        world.add_peer(i), DhtId::from_key("n" + std::to_string(i)), DhtOptions(), initial));
    world.attach(i, apps.back().get());
    apps.back()->start();
    world.run_for(1s);
  }
  const SigningKey owner = key_of(1);
  const std::string name = "model" + owner.marker();
  const Time exp = world.now() + 600s;
  const DhtId id = DhtId::from_key(name);
  DhtNode& malicious = apps[3]->node();
  ASSERT_TRUE(malicious.storage().store(id, "forged", exp + 60s).ok());
  auto get = [&](DhtNode& node, bool latest) {
    std::optional<Result<DhtValue>> out;
    node.get_many(
        {name}, [&](std::vector<Result<DhtValue>> r) { out = std::move(r[0]); }, latest);
    world.run_for(5s);
    CT_CHECK(out.has_value());
    return std::move(*out);
  };
  // Only the malicious node holds a value: the get finds nothing rather than the forgery.
  EXPECT_FALSE(get(apps[0]->node(), false).ok());
  EXPECT_GE(world.sink.counter("dht_forged_answers"), 1);
  // The owner's record at an honest node: asking everyone, the getter keeps only it.
  ASSERT_TRUE(apps[1]
                  ->node()
                  .storage()
                  .store(id, owner.sign(name, std::nullopt, "genuine", exp), exp)
                  .ok());
  auto r = get(apps[2]->node(), true);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(payload_of(r->plain.value), "genuine");
  // A node that signs: its own keys' values carry its signature and others' nodes accept them.
  apps[2]->node().set_signing_key(owner);
  std::optional<size_t> stored;
  apps[2]->node().store("weights" + owner.marker(), "w", exp, [&](size_t n) { stored = n; });
  world.run_for(5s);
  ASSERT_TRUE(stored.has_value());
  EXPECT_GE(*stored, 3u);
  std::optional<Result<DhtValue>> got;
  apps[0]->node().get("weights" + owner.marker(), [&](Result<DhtValue> v) { got = std::move(v); });
  world.run_for(5s);
  ASSERT_TRUE(got.has_value() && got->ok());
  EXPECT_EQ(payload_of((*got)->plain.value), "w");
}

}  // namespace
}  // namespace crowdtrain::dht
