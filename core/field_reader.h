// Reading a protocol message's fields in order, for the decoders of every part (DHT, MoE, ...):
// each error names the message, the field's index and its name ("dht store request: field 3
// (value): 17 bytes, limit 16"), so a refused message says exactly what was wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "core/message.h"
#include "core/message_types.h"
#include "core/status.h"

namespace crowdtrain {

class FieldReader {
 public:
  // `what` names the message in errors; it must outlive the reader (a literal).
  FieldReader(const Message& m, const char* what) : m_(m), what_(what) {}

  bool at_end() const { return pos_ >= m_.fields.size(); }
  bool next_is(uint16_t tag) const { return !at_end() && m_.fields[pos_].tag == tag; }

  // The next field, which must have `tag` and `kind`; null (and error() set) otherwise.
  const Field* take(uint16_t tag, FieldKind kind, const std::string& name);
  Result<uint64_t> u64(uint16_t tag, const std::string& name);
  Result<int64_t> i64(uint16_t tag, const std::string& name);
  Result<std::string> bytes(uint16_t tag, size_t max_size, const std::string& name);
  Result<bool> flag(uint16_t tag, const std::string& name);  // a u64 of 0 or 1

  // Records an error at the next field (fail) or the one just taken (fail_last), and returns it.
  Status fail(const std::string& name, const std::string& why);
  Status fail_last(const std::string& name, const std::string& why);
  const Status& error() const { return error_; }
  // An error when fields are left over.
  Status finish();

 private:
  const Message& m_;
  const char* what_;
  size_t pos_ = 0;
  Status error_;
};

// Checks a message's type and its response flag; the error starts with `what`.
Status check_message_type(const Message& m, MsgType type, bool response, const char* what);

}  // namespace crowdtrain

// `auto var = expr.value()`, returning expr's error status from the enclosing function first.
#define CT_TRY(var, expr)                               \
  auto var##_result = (expr);                           \
  if (!var##_result.ok()) return var##_result.status(); \
  auto var = std::move(var##_result).value()
