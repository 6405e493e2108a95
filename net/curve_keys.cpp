#include "net/curve_keys.h"

#include <sys/stat.h>
#include <zmq.h>

#include <cstring>
#include <fstream>
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

}  // namespace

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
