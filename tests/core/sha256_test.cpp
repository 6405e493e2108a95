// SHA-256 against the FIPS 180-4 / NIST example vectors, and incremental updates against one-shot.
#include "core/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace crowdtrain {
namespace {

TEST(Sha256Test, Empty) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// Nothing at a null pointer (an empty tensor's data) is nothing: no memcpy from null (UBSan), the
// digest unchanged, whether the stream is empty or part-way through a block.
TEST(Sha256Test, NothingAtANullPointer) {
  Sha256 h;
  h.update(nullptr, 0);
  EXPECT_EQ(h.hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  h.update("abc", 3);
  h.update(nullptr, 0);
  EXPECT_EQ(h.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, Abc) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, Message448Bits) {
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, Message896Bits) {
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
                       "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, MillionAs) {
  const std::string a(1000000, 'a');
  EXPECT_EQ(sha256_hex(a), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // The same million, fed 1000 at a time.
  Sha256 h;
  for (int i = 0; i < 1000; ++i) h.update(a.data(), 1000);
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the block (64) and padding (56) boundaries, in chunks of odd sizes.
TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  for (size_t len : {0u, 1u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 128u, 200u, 1000u}) {
    const std::string whole = sha256_hex(std::string_view(data).substr(0, len));
    for (size_t chunk : {1u, 3u, 7u, 13u, 63u, 64u, 65u, 127u}) {
      Sha256 h;
      for (size_t pos = 0; pos < len; pos += chunk) {
        h.update(data.data() + pos, std::min(chunk, len - pos));
      }
      ASSERT_EQ(h.hex_digest(), whole) << "len " << len << " chunk " << chunk;
    }
  }
}

TEST(Sha256Test, DigestDoesNotDisturbState) {
  Sha256 h;
  h.update("ab");
  EXPECT_EQ(h.hex_digest(), sha256_hex("ab"));
  h.update("c");
  EXPECT_EQ(h.hex_digest(), sha256_hex("abc"));
  EXPECT_EQ(h.hex_digest(), sha256_hex("abc"));
}

std::string hex(const std::array<uint8_t, 32>& d) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : d) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

// RFC 4231's test cases 1, 2 and 6 (a key longer than a block is hashed first).
TEST(HmacSha256Test, Rfc4231Vectors) {
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hex(hmac_sha256(std::string(131, '\xaa'),
                            "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

}  // namespace
}  // namespace crowdtrain
