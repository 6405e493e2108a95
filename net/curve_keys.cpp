#include "net/curve_keys.h"

#include <sys/stat.h>
#include <zmq.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace crowdtrain::net {
namespace {

constexpr size_t kZ85KeyChars = 40;
constexpr char kZ85Alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

Status write_keypair(const std::string& path, const CurveKeypair& k) {
  const mode_t old = umask(077);
  std::ofstream out(path);
  umask(old);
  if (!out) return Status::error(path + ": cannot create the key file");
  out << "# crowdtrain live peer keypair (CurveZMQ, Z85); keep the secret key private\n"
      << "public=" << k.public_key << "\nsecret=" << k.secret_key << "\n";
  out.close();
  if (!out) return Status::error(path + ": cannot write the key file");
  chmod(path.c_str(), 0600);
  return Status::ok_status();
}

constexpr size_t kSwarmKeyHexChars = 64;

bool all_hex(const std::string& s) {
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

Result<std::string> load_or_create_swarm_key(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0)
      return Status::error(path + ": cannot read the swarm key file");
    std::random_device rd;  // the kernel's entropy: the key must not be guessable
    static const char* kHex = "0123456789abcdef";
    std::string key;
    for (size_t i = 0; i < kSwarmKeyHexChars; ++i) key.push_back(kHex[rd() & 0xF]);
    const mode_t old = umask(077);
    std::ofstream out(path);
    umask(old);
    out << "# crowdtrain swarm key: every peer of the swarm holds this file; keep it private\n"
        << "swarm=" << key << "\n";
    out.close();
    if (!out) return Status::error(path + ": cannot write the swarm key file");
    chmod(path.c_str(), 0600);
    return key;
  }
  std::string line, key;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("swarm=", 0) != 0 || !key.empty()) {
      return Status::error(path + ": expected one line swarm=<64 hex digits>");
    }
    key = line.substr(6);
  }
  if (key.size() != kSwarmKeyHexChars || !all_hex(key)) {
    return Status::error(path + ": the swarm key must be 64 hex digits");
  }
  return key;
}

Result<dht::SigningKey> load_or_create_identity(const std::string& path) {
  static const char* kHex = "0123456789abcdef";
  std::ifstream in(path);
  if (!in) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) return Status::error(path + ": cannot read the identity file");
    const dht::SigningKey key = dht::SigningKey::generate();
    std::string hex;
    for (unsigned char c : key.secret()) {
      hex += kHex[c >> 4];
      hex += kHex[c & 15];
    }
    const mode_t old = umask(077);
    std::ofstream out(path);
    umask(old);
    out << "# crowdtrain peer identity (Ed25519, signs the DHT records it owns); keep it private\n"
        << "ed25519=" << hex << "\n";
    out.close();
    if (!out) return Status::error(path + ": cannot write the identity file");
    chmod(path.c_str(), 0600);
    return key;
  }
  std::string line, hex;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("ed25519=", 0) != 0 || !hex.empty()) {
      return Status::error(path + ": expected one line ed25519=<128 hex digits>");
    }
    hex = line.substr(8);
  }
  if (hex.size() != 128 || !all_hex(hex)) {
    return Status::error(path + ": the identity must be 128 hex digits");
  }
  std::string raw;
  for (size_t i = 0; i < hex.size(); i += 2) {
    raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  auto key = dht::SigningKey::from_secret(raw);
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
