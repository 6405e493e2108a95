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

}  // namespace
}  // namespace crowdtrain
