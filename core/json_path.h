// Reading JSON with errors that name the path: JsonReader walks an object, remembers which keys were
// read, and reports unknown keys, wrong types and out-of-range values as "a.b[2].c: what is wrong".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace crowdtrain {

// Appends `key` (object) or `[index]` (array) to a dotted path.
std::string json_child_path(const std::string& path, const std::string& key);
std::string json_index_path(const std::string& path, size_t index);
// A short name of a JSON value's type for error messages ("a string", "an array", ...).
std::string json_type_name(const nlohmann::json& v);

}  // namespace crowdtrain
