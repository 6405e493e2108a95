// Reading JSON with errors that name the path: JsonReader walks an object, remembers which keys
// were read, and reports unknown keys, wrong types and out-of-range values as "a.b[2].c: what is
// wrong". Readers made from one root share its first error: after a failure every later read is a
// no-op, and finish() on the root returns that error. Not thread-safe; a reader borrows the JSON it
// walks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace crowdtrain {

// Appends `key` (object) or `[index]` (array) to a dotted path.
std::string json_child_path(const std::string& path, const std::string& key);
std::string json_index_path(const std::string& path, size_t index);
// A short name of a JSON value's type for error messages ("a string", "an array", ...).
std::string json_type_name(const nlohmann::json& v);
// A number as error messages show it: shortest text that reads back the same ("-3", "0.25",
// "1e+20").
std::string json_number_text(double v);
// "path: what", or "scenario: what" for the root (empty path).
Status json_error(const std::string& path, const std::string& what);

// Bounds on a number, each side optional and open or closed.
struct NumberRange {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;

  static NumberRange any() { return {}; }
  static NumberRange positive() { return {0.0, std::nullopt, true, false}; }       // > 0
  static NumberRange non_negative() { return {0.0, std::nullopt, false, false}; }  // >= 0
  static NumberRange at_least(double lo) { return {lo, std::nullopt, false, false}; }
  static NumberRange closed(double lo, double hi) { return {lo, hi, false, false}; }    // [lo, hi]
  static NumberRange fraction() { return closed(0.0, 1.0); }                            // [0, 1]
  static NumberRange half_open(double lo, double hi) { return {lo, hi, false, true}; }  // [lo, hi)
  // "" when `v` is inside, else what is wrong ("must be > 0, got -3").
  std::string check(double v) const;
};

// One JSON value to a typed value; the error names `path`. Integers accept integral floats (1e6).
Result<double> json_to_double(const nlohmann::json& v, const std::string& path,
                              const NumberRange& range = NumberRange::any());
Result<uint64_t> json_to_uint(const nlohmann::json& v, const std::string& path,
                              const NumberRange& range = NumberRange::any());
Result<int64_t> json_to_int(const nlohmann::json& v, const std::string& path,
                            const NumberRange& range = NumberRange::any());
Result<std::string> json_to_string(const nlohmann::json& v, const std::string& path);
Result<bool> json_to_bool(const nlohmann::json& v, const std::string& path);

// Walks one JSON object. Every key asked for (present or not) becomes "known"; finish() reports the
// first key present but never asked for: "network.bandwidth: unknown key (known: fidelity, ...)".
class JsonReader {
 public:
  // A root reader. A `value` that is not an object is an error at `path`.
  JsonReader(const nlohmann::json& value, std::string path);

  bool ok() const { return status_->ok(); }
  const Status& status() const { return *status_; }
  const std::string& path() const { return path_; }
  std::string path_of(const std::string& key) const { return json_child_path(path_, key); }
  bool has(const std::string& key) const;

  // The child `key`, marked read; nullptr when absent or after an error.
  const nlohmann::json* take(const std::string& key);
  // Absent keys leave `out` unchanged (its default).
  void read(const std::string& key, double& out, const NumberRange& range = NumberRange::any());
  void read(const std::string& key, uint64_t& out, const NumberRange& range = NumberRange::any());
  void read(const std::string& key, uint32_t& out, const NumberRange& range = NumberRange::any());
  void read(const std::string& key, int& out, const NumberRange& range = NumberRange::any());
  void read(const std::string& key, bool& out);
  void read(const std::string& key, std::string& out);
  // A string that must be one of `choices`.
  void read_choice(const std::string& key, std::string& out,
                   const std::vector<std::string>& choices);
  // A choice read straight into an enum: `names` maps each accepted string to its value (the
  // error lists them in this order); an absent key leaves `out` unchanged.
  template <typename E>
  void read_enum(const std::string& key, E& out,
                 const std::vector<std::pair<std::string, E>>& names) {
    std::string name;
    std::vector<std::string> choices;
    for (const auto& [text, value] : names) {
      choices.push_back(text);
      if (value == out) name = text;
    }
    read_choice(key, name, choices);
    for (const auto& [text, value] : names) {
      if (text == name) out = value;
    }
  }
  // A non-empty array of unsigned integers, each inside `range`; an absent key leaves `out`
  // unchanged, an error leaves it unchanged too.
  template <typename T>
  void read_uint_list(const std::string& key, std::vector<T>& out, const NumberRange& range) {
    if (!has(key)) return (void)take(key);
    std::vector<T> values;
    array(key, [&](const nlohmann::json& item, const std::string& path) {
      auto v = json_to_uint(item, path, range);
      v.ok() ? values.push_back(static_cast<T>(v.value())) : absorb(v.status());
    });
    if (!ok()) return;
    if (values.empty()) return fail(path_of(key), "must not be empty");
    out = std::move(values);
  }
  // Fails with "path.key: required ..." when `key` is absent; returns whether it is present.
  bool require(const std::string& key, const std::string& why = "");

  // Runs `fn` on the child object `key` (an absent key reads as {}), then checks its unknown keys.
  void object(const std::string& key, const std::function<void(JsonReader&)>& fn);
  // Runs `fn` on every item of the array `key` (absent: no items).
  void array(const std::string& key,
             const std::function<void(const nlohmann::json& item, const std::string& path)>& fn);
  // Same, for an array whose items are objects, each checked for unknown keys.
  void objects(const std::string& key,
               const std::function<void(JsonReader& item, size_t index)>& fn);

  // Records `what` at `path` if no error was recorded yet.
  void fail(const std::string& path, const std::string& what);
  void absorb(const Status& status);  // records a failed status if no error was recorded yet
  // Reports the first unknown key of this object; returns the first error of the whole walk.
  Status finish();

 private:
  JsonReader(const nlohmann::json& value, std::string path, std::shared_ptr<Status> status);
  void mark_known(const std::string& key);

  const nlohmann::json& value_;
  std::string path_;
  std::shared_ptr<Status> status_;
  std::vector<std::string> known_;  // in the order asked, for the error message
  std::set<std::string> known_set_;
};

}  // namespace crowdtrain
