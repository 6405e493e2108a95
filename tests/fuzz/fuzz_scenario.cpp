// libFuzzer target: the scenario reader (core/scenario.h) and its --set overrides. The input's
// first line is an override ("key.path=value"), applied to the rest, a scenario's JSON text; both
// the override and the reader return an error naming a JSON path or a scenario, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/scenario.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crowdtrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t nl = text.find('\n');
  const std::string assignment = nl == std::string::npos ? std::string() : text.substr(0, nl);
  nlohmann::json doc =
      nlohmann::json::parse(nl == std::string::npos ? text : text.substr(nl + 1), nullptr, false);
  if (doc.is_discarded()) return 0;
  if (!assignment.empty() && !apply_override(doc, assignment).ok()) return 0;
  // Big worlds are refused before anything is built: the reader only reads.
  auto s = parse_scenario(doc);
  if (!s.ok()) FUZZ_CHECK(!s.error().empty());
  return 0;
}
