// The reader and checks of workload.transfers (TransfersOptions). docs/scenarios.md lists every
// key; keep it in step.
#include "core/transfers_options.h"

#include <string>

namespace crowdtrain {

namespace {

constexpr double kMaxConcurrency = 1024;

}  // namespace

std::shared_ptr<const WorkloadOptions> read_transfers_options(JsonReader& r) {
  auto o = std::make_shared<TransfersOptions>();
  r.read_uint_list("sizes_bytes", o->sizes_bytes, NumberRange::at_least(1));
  r.read_uint_list("concurrency", o->concurrency, NumberRange::closed(1, kMaxConcurrency));
  r.read("pairs", o->pairs, NumberRange::at_least(1));
  return o;
}

Status check_transfers_options(const Scenario& s) {
  const TransfersOptions& o = transfers_options_of(s);
  for (size_t i = 0; i < o.sizes_bytes.size(); ++i) {
    const std::string path = json_index_path("workload.transfers.sizes_bytes", i);
    if (Status st = check_fits_in_message(s, path, o.sizes_bytes[i]); !st.ok()) return st;
  }
  if (2ull * o.pairs > s.peers.count) {
    return json_error("workload.transfers.pairs",
                      "needs 2 peers per pair, more than peers.count (" +
                          std::to_string(s.peers.count) + "), got " + std::to_string(o.pairs));
  }
  return Status();
}

const TransfersOptions& transfers_options_of(const Scenario& s) {
  return s.workload.options_of<TransfersOptions>("transfers");
}

}  // namespace crowdtrain
