// State download for Moshpit SGD joiners: the request a peer that starts (or restarts after churn)
// sends to a live peer, and the response that carries the server's parameters and, if asked, its
// optimizer statistics, as float32 tensor fields of at most kStateChunkElements each (512 KiB).
// install_state() validates everything (field kinds, chunk sizes, dtype, total counts against the
// local model, finiteness) before it writes anything: a malformed or mismatched state is refused
// with the reason and the trainer is left untouched. Pure functions on a LocalTrainer; no Runtime.
#pragma once

#include <cstdint>
#include <string>

#include "core/message.h"
#include "core/status.h"
#include "core/train/local_trainer.h"

namespace crowdtrain::train {

constexpr int64_t kStateChunkElements = 128 * 1024;  // float32: 512 KiB per tensor field
constexpr uint16_t kTagStateWantOptimizer = 40;
constexpr uint16_t kTagStateParams = 41;       // u64: parameter count
constexpr uint16_t kTagStateOptimizer = 42;    // u64: optimizer statistics count (0 = none sent)
constexpr uint16_t kTagStateAdamStep = 43;     // i64
constexpr uint16_t kTagStateSteps = 44;        // i64: the server's local steps (information only)
constexpr uint16_t kTagStateChunk = 45;        // tensor, repeated: parameters, then statistics
constexpr uint16_t kTagStateDigest = 46;       // bytes: SHA-256 (hex) of the parameters' floats
constexpr uint16_t kTagStateStatsDigest = 47;  // bytes: SHA-256 (hex) of the statistics' floats

Message make_state_request(bool want_optimizer);
// The response to `request` from `trainer`'s current state.
Message make_state_response(const LocalTrainer& trainer, bool with_optimizer);

struct InstalledState {
  int64_t params = 0;
  int64_t optimizer = 0;  // statistics installed
  int64_t server_steps = 0;
  std::string params_digest;  // what the server sent (SHA-256 hex of its parameters' floats)
  std::string stats_digest;   // ... of the statistics it sent
};

// SHA-256 (hex) of a float32 tensor's values in order (what a state response's digests hold).
std::string state_digest(const at::Tensor& flat);
// Whether `trainer` now holds exactly the state `installed` came with (its digests).
bool holds_installed_state(const LocalTrainer& trainer, const InstalledState& installed);

// Checks `response` against `trainer` (with_optimizer: statistics must be present and match; the
// values must hash to the digests the server sent, so what is installed is what the server had)
// and installs it; on any error nothing is written and the message says what was wrong.
Result<InstalledState> install_state(const Message& response, LocalTrainer& trainer,
                                     bool with_optimizer);

}  // namespace crowdtrain::train
