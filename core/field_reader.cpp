#include "core/field_reader.h"

namespace crowdtrain {

const Field* FieldReader::take(uint16_t tag, FieldKind kind, const std::string& name) {
  if (at_end()) {
    fail(name, "missing (message ends)");
    return nullptr;
  }
  const Field& f = m_.fields[pos_];
  if (f.tag != tag) {
    fail(name, "expected tag " + std::to_string(tag) + ", got " + std::to_string(f.tag));
    return nullptr;
  }
  if (f.kind() != kind) {
    fail(name,
         std::string("expected ") + field_kind_name(kind) + ", got " + field_kind_name(f.kind()));
    return nullptr;
  }
  ++pos_;
  return &f;
}

Result<uint64_t> FieldReader::u64(uint16_t tag, const std::string& name) {
  const Field* f = take(tag, FieldKind::kU64, name);
  if (!f) return error_;
  return std::get<uint64_t>(f->value);
}

Result<int64_t> FieldReader::i64(uint16_t tag, const std::string& name) {
  const Field* f = take(tag, FieldKind::kI64, name);
  if (!f) return error_;
  return std::get<int64_t>(f->value);
}

Result<std::string> FieldReader::bytes(uint16_t tag, size_t max_size, const std::string& name) {
  const Field* f = take(tag, FieldKind::kBytes, name);
  if (!f) return error_;
  const auto& s = std::get<std::string>(f->value);
  if (s.size() > max_size) {
    return fail_last(name, std::to_string(s.size()) + " bytes, limit " + std::to_string(max_size));
  }
  return s;
}

Result<bool> FieldReader::flag(uint16_t tag, const std::string& name) {
  auto v = u64(tag, name);
  if (!v.ok()) return v.status();
  if (v.value() > 1)
    return fail_last(name, "flag must be 0 or 1, got " + std::to_string(v.value()));
  return v.value() == 1;
}

Status FieldReader::fail(const std::string& name, const std::string& why) {
  error_ = Status::error(std::string(what_) + ": field " + std::to_string(pos_) + " (" + name +
                         "): " + why);
  return error_;
}

Status FieldReader::fail_last(const std::string& name, const std::string& why) {
  --pos_;
  Status s = fail(name, why);
  ++pos_;
  return s;
}

Status FieldReader::finish() {
  if (at_end()) return Status::ok_status();
  return fail("end", "unexpected field with tag " + std::to_string(m_.fields[pos_].tag));
}

Status check_message_type(const Message& m, MsgType type, bool response, const char* what) {
  if (m.type != type) {
    return Status::error(std::string(what) + ": message type " +
                         std::to_string(static_cast<int>(m.type)) + ", expected " +
                         std::to_string(static_cast<int>(type)));
  }
  if (m.is_response() != response) {
    return Status::error(std::string(what) +
                         (response ? ": not flagged as a response" : ": flagged as a response"));
  }
  return Status::ok_status();
}

}  // namespace crowdtrain
