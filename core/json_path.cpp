#include "core/json_path.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

namespace crowdtrain {

using nlohmann::json;

std::string json_child_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string json_index_path(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::binary:
      return "binary data";
    case json::value_t::discarded:
      break;
  }
  return "an invalid value";
}

std::string json_number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

Status json_error(const std::string& path, const std::string& what) {
  return Status::error((path.empty() ? std::string("scenario") : path) + ": " + what);
}

std::string NumberRange::check(double v) const {
  if (!std::isfinite(v)) return "must be a finite number, got " + json_number_text(v);
  const bool below = lo && (lo_open ? v <= *lo : v < *lo);
  const bool above = hi && (hi_open ? v >= *hi : v > *hi);
  if (!below && !above) return "";
  std::string rule;
  if (lo && hi) {
    rule = "must be in " + std::string(lo_open ? "(" : "[") + json_number_text(*lo) + ", " +
           json_number_text(*hi) + (hi_open ? ")" : "]");
  } else if (lo) {
    rule = std::string("must be ") + (lo_open ? "> " : ">= ") + json_number_text(*lo);
  } else {
    rule = std::string("must be ") + (hi_open ? "< " : "<= ") + json_number_text(*hi);
  }
  return rule + ", got " + json_number_text(v);
}

namespace {

// What a value of the wrong kind is called: numbers by their value, everything else by its type.
std::string got_text(const json& v) {
  if (v.is_number()) return v.dump();
  return json_type_name(v);
}

Status range_error(const std::string& path, const NumberRange& range, double v) {
  std::string what = range.check(v);
  return what.empty() ? Status() : json_error(path, what);
}

}  // namespace

Result<double> json_to_double(const json& v, const std::string& path, const NumberRange& range) {
  if (!v.is_number()) return json_error(path, "expected a number, got " + json_type_name(v));
  const double d = v.get<double>();
  Status s = range_error(path, range, d);
  if (!s.ok()) return s;
  return d;
}

Result<uint64_t> json_to_uint(const json& v, const std::string& path, const NumberRange& range) {
  uint64_t u = 0;
  if (v.is_number_unsigned()) {
    u = v.get<uint64_t>();
  } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    u = static_cast<uint64_t>(v.get<int64_t>());
  } else if (v.is_number_float() && v.get<double>() >= 0 && v.get<double>() < 0x1p64 &&
             v.get<double>() == std::floor(v.get<double>())) {
    u = static_cast<uint64_t>(v.get<double>());
  } else {
    return json_error(path, "expected an unsigned integer, got " + got_text(v));
  }
  Status s = range_error(path, range, static_cast<double>(u));
  if (!s.ok()) return s;
  return u;
}

Result<int64_t> json_to_int(const json& v, const std::string& path, const NumberRange& range) {
  int64_t i = 0;
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    i = v.get<int64_t>();
  } else if (v.is_number_unsigned() &&
             v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    i = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_float() && std::fabs(v.get<double>()) < 0x1p63 &&
             v.get<double>() == std::floor(v.get<double>())) {
    i = static_cast<int64_t>(v.get<double>());
  } else {
    return json_error(path, "expected an integer, got " + got_text(v));
  }
  Status s = range_error(path, range, static_cast<double>(i));
  if (!s.ok()) return s;
  return i;
}

Result<std::string> json_to_string(const json& v, const std::string& path) {
  if (!v.is_string()) return json_error(path, "expected a string, got " + got_text(v));
  return v.get<std::string>();
}

Result<bool> json_to_bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) return json_error(path, "expected true or false, got " + got_text(v));
  return v.get<bool>();
}

// ------------------------------------------------------------------------------------- JsonReader

namespace {
const json& empty_object() {
  static const json kEmpty = json::object();
  return kEmpty;
}
}  // namespace

JsonReader::JsonReader(const json& value, std::string path)
    : JsonReader(value, std::move(path), std::make_shared<Status>()) {}

JsonReader::JsonReader(const json& value, std::string path, std::shared_ptr<Status> status)
    : value_(value.is_object() ? value : empty_object()),
      path_(std::move(path)),
      status_(std::move(status)) {
  if (!value.is_object()) fail(path_, "expected an object, got " + got_text(value));
}

namespace {
// Stores a converted value, or records its error in `reader`.
template <typename T, typename Out>
void store_or_absorb(JsonReader& reader, Result<T> result, Out& out) {
  if (result.ok()) {
    out = static_cast<Out>(std::move(result).value());
  } else {
    reader.absorb(result.status());
  }
}
}  // namespace

bool JsonReader::has(const std::string& key) const { return value_.contains(key); }

void JsonReader::mark_known(const std::string& key) {
  if (known_set_.insert(key).second) known_.push_back(key);
}

const json* JsonReader::take(const std::string& key) {
  mark_known(key);
  if (!ok()) return nullptr;
  auto it = value_.find(key);
  return it == value_.end() ? nullptr : &*it;
}

void JsonReader::fail(const std::string& path, const std::string& what) {
  if (ok()) *status_ = json_error(path, what);
}

void JsonReader::absorb(const Status& status) {
  if (ok() && !status.ok()) *status_ = status;
}

void JsonReader::read(const std::string& key, double& out, const NumberRange& range) {
  if (const json* v = take(key)) {
    store_or_absorb(*this, json_to_double(*v, path_of(key), range), out);
  }
}

void JsonReader::read(const std::string& key, uint64_t& out, const NumberRange& range) {
  if (const json* v = take(key)) {
    store_or_absorb(*this, json_to_uint(*v, path_of(key), range), out);
  }
}

void JsonReader::read(const std::string& key, uint32_t& out, const NumberRange& range) {
  uint64_t wide = out;
  NumberRange bounded = range;
  if (!bounded.hi || *bounded.hi > std::numeric_limits<uint32_t>::max()) {
    bounded.hi = std::numeric_limits<uint32_t>::max();
    bounded.hi_open = false;
  }
  read(key, wide, bounded);
  if (ok()) out = static_cast<uint32_t>(wide);
}

void JsonReader::read(const std::string& key, int& out, const NumberRange& range) {
  if (const json* v = take(key)) {
    NumberRange bounded = range;
    if (!bounded.lo) bounded.lo = std::numeric_limits<int>::min();
    if (!bounded.hi) bounded.hi = std::numeric_limits<int>::max();
    store_or_absorb(*this, json_to_int(*v, path_of(key), bounded), out);
  }
}

void JsonReader::read(const std::string& key, bool& out) {
  if (const json* v = take(key)) {
    store_or_absorb(*this, json_to_bool(*v, path_of(key)), out);
  }
}

void JsonReader::read(const std::string& key, std::string& out) {
  if (const json* v = take(key)) {
    store_or_absorb(*this, json_to_string(*v, path_of(key)), out);
  }
}

void JsonReader::read_choice(const std::string& key, std::string& out,
                             const std::vector<std::string>& choices) {
  if (!has(key)) {
    take(key);
    return;
  }
  std::string value;
  read(key, value);
  if (!ok()) return;
  for (const auto& c : choices) {
    if (c == value) {
      out = value;
      return;
    }
  }
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "\"" : ", \"") + c + "\"";
  fail(path_of(key), "must be one of " + list + ", got \"" + value + "\"");
}

bool JsonReader::require(const std::string& key, const std::string& why) {
  mark_known(key);
  if (has(key)) return true;
  fail(path_of(key), "required" + (why.empty() ? std::string() : " " + why));
  return false;
}

void JsonReader::object(const std::string& key, const std::function<void(JsonReader&)>& fn) {
  const json* v = take(key);
  if (!ok()) return;
  JsonReader child(v ? *v : empty_object(), path_of(key), status_);
  if (!ok()) return;
  fn(child);
  child.finish();
}

void JsonReader::array(const std::string& key,
                       const std::function<void(const json& item, const std::string& path)>& fn) {
  const json* v = take(key);
  if (!v) return;
  if (!v->is_array()) {
    fail(path_of(key), "expected an array, got " + got_text(*v));
    return;
  }
  for (size_t i = 0; i < v->size() && ok(); ++i) fn((*v)[i], json_index_path(path_of(key), i));
}

void JsonReader::objects(const std::string& key,
                         const std::function<void(JsonReader& item, size_t index)>& fn) {
  size_t index = 0;
  array(key, [&](const json& item, const std::string& path) {
    JsonReader child(item, path, status_);
    if (ok()) fn(child, index);
    child.finish();
    ++index;
  });
}

Status JsonReader::finish() {
  if (!ok()) return *status_;
  for (auto it = value_.begin(); it != value_.end(); ++it) {
    if (known_set_.count(it.key())) continue;
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    fail(path_of(it.key()), "unknown key (known: " + list + ")");
    break;
  }
  return *status_;
}

}  // namespace crowdtrain
