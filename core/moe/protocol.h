// The mixture-of-experts RPCs on the wire: forward (an expert's outputs for a batch of rows) and
// backward (the gradient with respect to those rows, after which the server applies one optimizer
// step). A request names the expert uid and carries float32 batches [n, sample shape...]; in the
// timing-only compute mode a batch is only its row count and per-sample shape, with a Filler of the
// batch's byte size in place of the data (the simulator charges the bytes without allocating
// them). Refusals travel as kRpcError responses (core/rpc.h). Decoding is strict: every field is
// checked for tag, kind, order and size, and an error names the field. Plain functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/message.h"
#include "core/status.h"

namespace crowdtrain::moe {

// Field tags (from 16 up, see core/message_types.h). Numbers are wire format: never renumber.
enum MoeTag : uint16_t {
  kTagUid = 16,          // bytes: the expert's uid (requests only)
  kTagMode = 17,         // u64: 0 real numerics, 1 timing-only
  kTagRows = 18,         // u64: a timing-only batch's row count
  kTagSampleDim = 19,    // i64, repeated: a timing-only batch's per-sample shape
  kTagInputs = 20,       // tensor (real) or filler (timing): the batch's inputs
  kTagGradOutputs = 21,  // backward request: the gradient of the expert's outputs
  kTagOutputs = 22,      // forward response
  kTagGradInputs = 23,   // backward response: the gradient of the inputs
  kTagState = 24,        // state response: Expert::save_state()'s bytes ("" in timing mode)
  kTagUpdates = 25,      // state response: optimizer steps the expert had applied
  // Optional, last: a forward response's expert version (the optimizer steps its parameters had
  // taken when the forward ran); a backward request echoes it, so the server knows how stale the
  // update is (ExpertServerOptions::stale_updates).
  kTagVersion = 26,
};

// How batches are represented: real float32 data, or only their shapes (timing-only mode).
enum class Numerics : uint8_t { kReal = 0, kTiming = 1 };
const char* numerics_name(Numerics n);  // "real" | "timing"

struct ProtocolLimits {
  size_t max_uid_bytes = 256;
  uint64_t max_samples = 1u << 16;         // rows per request
  uint64_t max_bytes = uint64_t{1} << 30;  // every batch of a message together (data or filler)
};

// A batch is a TensorData [n, sample shape...] of float32. In timing mode only its shape is
// meaningful and its bytes are empty (shape_only).
TensorData shape_only(std::vector<int64_t> shape);
std::vector<int64_t> sample_shape_of(const TensorData& t);  // the shape without the row dimension
uint64_t float_bytes(const std::vector<int64_t>& shape);    // prod(shape) * 4

struct ForwardRequest {
  std::string uid;
  Numerics numerics = Numerics::kReal;
  TensorData inputs;  // [n, input shape...]
};
struct ForwardResponse {
  Numerics numerics = Numerics::kReal;
  TensorData outputs;                              // [n, output shape...]
  std::optional<uint64_t> version = std::nullopt;  // the expert's updates when the forward ran
};
struct BackwardRequest {
  std::string uid;
  Numerics numerics = Numerics::kReal;
  TensorData inputs;        // [n, input shape...]
  TensorData grad_outputs;  // [n, output shape...]
  std::optional<uint64_t> version =
      std::nullopt;  // the forward response's version (absent: unknown)
};
struct BackwardResponse {
  Numerics numerics = Numerics::kReal;
  TensorData grad_inputs;  // [n, input shape...]
};

// A backup server asks a host for an expert's state (core/moe/takeover.h).
struct StateRequest {
  std::string uid;
};
struct StateResponse {
  std::string uid;
  std::string state;  // Expert::save_state() ("" for a timing-only expert)
  uint64_t updates = 0;
};

// Encoding trusts its input (the caller built it); in timing mode tensors' bytes are ignored and
// a filler of the batch's byte size is written instead.
Message encode_forward_request(const ForwardRequest& r);
Message encode_forward_response(const ForwardResponse& r);
Message encode_backward_request(const BackwardRequest& r);
Message encode_backward_response(const BackwardResponse& r);
Message encode_state_request(const StateRequest& r);
Message encode_state_response(const StateResponse& r);

// Decoding checks the structure: message type and response flag, the uid, the mode, every batch
// (at least one row, at most max_samples, at most kMaxTensorDims dims, no negative dimension,
// data size consistent with the shape, the filler's size with the timing shape, max_bytes in
// total), a backward request's two batches having the same row count, the optional version, and
// no extra fields.
// Dtype, finiteness and the expert's shapes are the server's and the client's business.
Result<ForwardRequest> decode_forward_request(const Message& m, const ProtocolLimits& limits);
Result<ForwardResponse> decode_forward_response(const Message& m, const ProtocolLimits& limits);
Result<BackwardRequest> decode_backward_request(const Message& m, const ProtocolLimits& limits);
Result<BackwardResponse> decode_backward_response(const Message& m, const ProtocolLimits& limits);
// A state response's bytes count against limits.max_bytes.
Result<StateRequest> decode_state_request(const Message& m, const ProtocolLimits& limits);
Result<StateResponse> decode_state_response(const Message& m, const ProtocolLimits& limits);

// Helpers shared by the server and the client (no LibTorch: memcpy and a scan).
// "[2, 3]".
std::string shape_string(const std::vector<int64_t>& shape);
// True when every float32 of `t` is finite (t must be float32 with consistent bytes).
bool all_finite(const TensorData& t);
// Rows `rows` (ascending or not, each < t.shape[0]) of a real float32 batch, copied into a new
// batch in that order.
TensorData gather_rows(const TensorData& t, const std::vector<int64_t>& rows);
// Rows [begin, begin + count) of a real batch, sharing its bytes (no copy).
TensorData slice_rows(const TensorData& t, int64_t begin, int64_t count);
// The batches stacked along the row dimension (all with the same sample shape and dtype); a single
// batch is returned as it is.
TensorData concat_rows(const std::vector<const TensorData*>& parts);

}  // namespace crowdtrain::moe
