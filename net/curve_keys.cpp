#include "net/curve_keys.h"

#include <sys/stat.h>
#include <zmq.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

namespace crowdtrain::net {
namespace {

constexpr size_t kZ85KeyChars = 40;
constexpr char kZ85Alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// Writes `text` to a new file at `path` readable by its owner only; errors name the file and
// `what` it is.
Status write_private(const std::string& path, const std::string& text, const std::string& what) {
  const mode_t old = umask(077);
  std::ofstream out(path);
  umask(old);
  if (!out) return Status::error(path + ": cannot create the " + what + " file");
  out << text;
  out.close();
  if (!out) return Status::error(path + ": cannot write the " + what + " file");
  chmod(path.c_str(), 0600);
  return Status::ok_status();
}

Status write_keypair(const std::string& path, const CurveKeypair& k) {
  return write_private(path,
                       "# crowdtrain live peer keypair (CurveZMQ, Z85); keep the secret key "
                       "private\npublic=" +
                           k.public_key + "\nsecret=" + k.secret_key + "\n",
                       "key");
}

bool all_hex(const std::string& s) {
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A file of one line "<name>=<hex_chars hex digits>" (and # comments): the digits, or an error that
// names the file. nullopt when there is no file at `path` (the caller creates one).
Result<std::optional<std::string>> read_hex_line(const std::string& path, const std::string& name,
                                                 size_t hex_chars, const std::string& what) {
  std::ifstream in(path);
  if (!in) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0)
      return Status::error(path + ": cannot read the " + what + " file");
    return std::optional<std::string>();
  }
  const std::string want = name + "=<" + std::to_string(hex_chars) + " hex digits>";
  std::string line, hex;
  bool seen = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(name + "=", 0) != 0 || seen) {
      return Status::error(path + ": expected one line " + want);
    }
    hex = line.substr(name.size() + 1);
    seen = true;
  }
  if (hex.size() != hex_chars || !all_hex(hex)) {
    return Status::error(path + ": the " + what + " must be " + std::to_string(hex_chars) +
                         " hex digits");
  }
  return std::optional<std::string>(hex);
}

constexpr size_t kSwarmKeyHexChars = 64;

}  // namespace

Result<std::string> load_or_create_swarm_key(const std::string& path) {
  auto held = read_hex_line(path, "swarm", kSwarmKeyHexChars, "swarm key");
  if (!held.ok()) return held.status();
  if (*held) return **held;
  std::random_device rd;  // the kernel's entropy: the key must not be guessable
  std::string raw;
  for (size_t i = 0; i < kSwarmKeyHexChars / 2; ++i) raw.push_back(static_cast<char>(rd() & 0xFF));
  const std::string key = dht::hex_encode(raw);
  Status st = write_private(
      path,
      "# crowdtrain swarm key: every peer of the swarm holds this file; keep it private\nswarm=" +
          key + "\n",
      "swarm key");
  if (!st.ok()) return st;
  return key;
}

Result<dht::SigningKey> load_or_create_identity(const std::string& path) {
  auto held = read_hex_line(path, "ed25519", 128, "identity");
  if (!held.ok()) return held.status();
  if (!*held) {
    const dht::SigningKey key = dht::SigningKey::generate();
    Status st = write_private(path,
                              "# crowdtrain peer identity (Ed25519, signs the DHT records it "
                              "owns); keep it private\ned25519=" +
                                  dht::hex_encode(key.secret()) + "\n",
                              "identity");
    if (!st.ok()) return st;
    return key;
  }
  auto key = dht::SigningKey::from_secret(*dht::hex_decode(**held));  // read_hex_line checked it
  if (!key.ok()) return Status::error(path + ": " + key.error());
  return key;
}

bool valid_curve_key(const std::string& key) {
  if (key.size() != kZ85KeyChars) return false;
  for (char c : key) {
    if (c == '\0' || std::strchr(kZ85Alphabet, c) == nullptr) return false;
  }
  uint8_t raw[32];
  return zmq_z85_decode(raw, key.c_str()) != nullptr;
}

bool curve_available() { return zmq_has("curve") != 0; }

Result<CurveKeypair> load_or_create_keypair(const std::string& path) {
  if (!curve_available()) return Status::error("this libzmq has no CURVE support");
  std::ifstream in(path);
  if (!in) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) return Status::error(path + ": cannot read the key file");
    char pub[kZ85KeyChars + 1], sec[kZ85KeyChars + 1];
    if (zmq_curve_keypair(pub, sec) != 0) return Status::error("zmq_curve_keypair failed");
    CurveKeypair k{pub, sec};
    if (Status s = write_keypair(path, k); !s.ok()) return s;
    return k;
  }
  CurveKeypair k;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    const std::string name = line.substr(0, eq),
                      value = eq == std::string::npos ? "" : line.substr(eq + 1);
    if ((name != "public" && name != "secret") || !valid_curve_key(value)) {
      return Status::error(path + ":" + std::to_string(line_no) +
                           ": expected public=<key> or secret=<key> (40 Z85 characters)");
    }
    (name == "public" ? k.public_key : k.secret_key) = value;
  }
  if (k.secret_key.empty()) return Status::error(path + ": no secret key");
  char derived[kZ85KeyChars + 1];
  if (zmq_curve_public(derived, k.secret_key.c_str()) != 0) {
    return Status::error(path + ": the secret key is not a CURVE key");
  }
  if (!k.public_key.empty() && k.public_key != derived) {
    return Status::error(path + ": the public key is not the secret key's");
  }
  k.public_key = derived;
  return k;
}

}  // namespace crowdtrain::net
