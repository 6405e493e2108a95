#include "core/moe/protocol.h"

#include <optional>

#include "core/field_reader.h"

namespace crowdtrain::moe {
namespace {

constexpr size_t kFloatBytes = 4;

using Reader = FieldReader;

Result<std::string> read_uid(Reader& r, const ProtocolLimits& limits) {
  const Field* f = r.take(kTagUid, FieldKind::kBytes, "uid");
  if (!f) return r.error();
  const auto& uid = std::get<std::string>(f->value);
  if (uid.empty()) return r.fail_last("uid", "empty");
  if (uid.size() > limits.max_uid_bytes) {
    return r.fail_last("uid", std::to_string(uid.size()) + " bytes, limit " +
                                  std::to_string(limits.max_uid_bytes));
  }
  return uid;
}

Result<Numerics> read_mode(Reader& r) {
  const Field* f = r.take(kTagMode, FieldKind::kU64, "mode");
  if (!f) return r.error();
  const uint64_t v = std::get<uint64_t>(f->value);
  if (v > 1) return r.fail_last("mode", "must be 0 (real) or 1 (timing), got " + std::to_string(v));
  return static_cast<Numerics>(v);
}

// Checks a batch shape: 1..kMaxTensorDims dims, 1..max_samples rows, no negative dimension, and
// its data (elem_size bytes per element) within what is left of max_bytes. Returns its bytes.
Result<uint64_t> check_shape(Reader& r, const std::vector<int64_t>& shape, size_t elem_size,
                             const std::string& name, const ProtocolLimits& limits,
                             uint64_t& total_bytes) {
  if (shape.empty() || shape.size() > static_cast<size_t>(kMaxTensorDims)) {
    return r.fail_last(name, "needs 1.." + std::to_string(kMaxTensorDims) +
                                 " dims (rows first), got " + std::to_string(shape.size()));
  }
  if (shape[0] < 1) return r.fail_last(name, "no rows (shape " + shape_string(shape) + ")");
  if (static_cast<uint64_t>(shape[0]) > limits.max_samples) {
    return r.fail_last(
        name, std::to_string(shape[0]) + " rows, limit " + std::to_string(limits.max_samples));
  }
  const uint64_t budget = limits.max_bytes - total_bytes;
  uint64_t bytes = elem_size;
  for (int64_t d : shape) {
    if (d < 0) return r.fail_last(name, "negative dimension in shape " + shape_string(shape));
    if (d > 0 && bytes > budget / static_cast<uint64_t>(d)) {
      return r.fail_last(name, "shape " + shape_string(shape) + " exceeds the " +
                                   std::to_string(limits.max_bytes) + "-byte message limit");
    }
    bytes *= static_cast<uint64_t>(d);
  }
  total_bytes += bytes;
  return bytes;
}

Result<TensorData> read_batch(Reader& r, Numerics mode, uint16_t tag, const std::string& name,
                              const ProtocolLimits& limits, uint64_t& total_bytes) {
  if (mode == Numerics::kReal) {
    const Field* f = r.take(tag, FieldKind::kTensor, name);
    if (!f) return r.error();
    const TensorData& t = std::get<TensorData>(f->value);
    const size_t elem = dtype_size(static_cast<uint8_t>(t.dtype));
    if (elem == 0) {
      return r.fail_last(name, "unknown dtype " + std::to_string(static_cast<int>(t.dtype)));
    }
    CT_TRY(bytes, check_shape(r, t.shape, elem, name, limits, total_bytes));
    if (t.bytes.size != bytes || (bytes > 0 && t.bytes.data == nullptr)) {
      return r.fail_last(name, std::to_string(t.bytes.size) + " data bytes for shape " +
                                   shape_string(t.shape) + ", expected " + std::to_string(bytes));
    }
    return t;
  }
  const Field* rows = r.take(kTagRows, FieldKind::kU64, name + " rows");
  if (!rows) return r.error();
  const uint64_t n = std::get<uint64_t>(rows->value);
  if (n > limits.max_samples) {
    return r.fail_last(name + " rows",
                       std::to_string(n) + " rows, limit " + std::to_string(limits.max_samples));
  }
  std::vector<int64_t> shape{static_cast<int64_t>(n)};
  while (r.next_is(kTagSampleDim)) {
    const Field* d = r.take(kTagSampleDim, FieldKind::kI64, name + " sample dim");
    if (!d) return r.error();
    if (shape.size() >= static_cast<size_t>(kMaxTensorDims)) {
      return r.fail_last(name + " sample dim",
                         "more than " + std::to_string(kMaxTensorDims) + " dims in all");
    }
    shape.push_back(std::get<int64_t>(d->value));
  }
  const Field* filler = r.take(tag, FieldKind::kFiller, name);
  if (!filler) return r.error();
  CT_TRY(bytes, check_shape(r, shape, kFloatBytes, name, limits, total_bytes));
  const uint64_t size = std::get<Filler>(filler->value).size;
  if (size != bytes) {
    return r.fail_last(name, "filler of " + std::to_string(size) + " bytes for shape " +
                                 shape_string(shape) + ", expected " + std::to_string(bytes));
  }
  return shape_only(std::move(shape));
}

void write_batch(Message& m, Numerics mode, uint16_t tag, const TensorData& t) {
  if (mode == Numerics::kReal) {
    m.add_tensor(tag, t);
    return;
  }
  CT_CHECK(!t.shape.empty());
  m.add_u64(kTagRows, static_cast<uint64_t>(t.shape[0]));
  for (size_t i = 1; i < t.shape.size(); ++i) m.add_i64(kTagSampleDim, t.shape[i]);
  m.add_filler(tag, float_bytes(t.shape));
}

// The optional last field of a forward response and a backward request.
Result<std::optional<uint64_t>> read_version(Reader& r) {
  if (!r.next_is(kTagVersion)) return std::optional<uint64_t>();
  const Field* f = r.take(kTagVersion, FieldKind::kU64, "version");
  if (!f) return r.error();
  return std::optional<uint64_t>(std::get<uint64_t>(f->value));
}

void write_version(Message& m, const std::optional<uint64_t>& version) {
  if (version) m.add_u64(kTagVersion, *version);
}

Message begin(MsgType type, bool response) {
  Message m(type);
  if (response) m.flags = kFlagResponse;
  return m;
}

}  // namespace

Message encode_forward_request(const ForwardRequest& r) {
  Message m = begin(MsgType::kMoeForwardRequest, false);
  m.add_bytes(kTagUid, r.uid).add_u64(kTagMode, static_cast<uint64_t>(r.numerics));
  write_batch(m, r.numerics, kTagInputs, r.inputs);
  return m;
}

Message encode_forward_response(const ForwardResponse& r) {
  Message m = begin(MsgType::kMoeForwardResponse, true);
  m.add_u64(kTagMode, static_cast<uint64_t>(r.numerics));
  write_batch(m, r.numerics, kTagOutputs, r.outputs);
  write_version(m, r.version);
  return m;
}

Message encode_backward_request(const BackwardRequest& r) {
  Message m = begin(MsgType::kMoeBackwardRequest, false);
  m.add_bytes(kTagUid, r.uid).add_u64(kTagMode, static_cast<uint64_t>(r.numerics));
  write_batch(m, r.numerics, kTagInputs, r.inputs);
  write_batch(m, r.numerics, kTagGradOutputs, r.grad_outputs);
  write_version(m, r.version);
  return m;
}

Message encode_backward_response(const BackwardResponse& r) {
  Message m = begin(MsgType::kMoeBackwardResponse, true);
  m.add_u64(kTagMode, static_cast<uint64_t>(r.numerics));
  write_batch(m, r.numerics, kTagGradInputs, r.grad_inputs);
  return m;
}

Result<ForwardRequest> decode_forward_request(const Message& m, const ProtocolLimits& limits) {
  const char* what = "moe forward request";
  if (Status s = check_message_type(m, MsgType::kMoeForwardRequest, false, what); !s.ok()) return s;
  Reader r(m, what);
  ForwardRequest out;
  uint64_t total = 0;
  CT_TRY(uid, read_uid(r, limits));
  CT_TRY(mode, read_mode(r));
  CT_TRY(inputs, read_batch(r, mode, kTagInputs, "inputs", limits, total));
  if (Status s = r.finish(); !s.ok()) return s;
  out.uid = std::move(uid);
  out.numerics = mode;
  out.inputs = std::move(inputs);
  return out;
}

Result<ForwardResponse> decode_forward_response(const Message& m, const ProtocolLimits& limits) {
  const char* what = "moe forward response";
  if (Status s = check_message_type(m, MsgType::kMoeForwardResponse, true, what); !s.ok()) return s;
  Reader r(m, what);
  uint64_t total = 0;
  CT_TRY(mode, read_mode(r));
  CT_TRY(outputs, read_batch(r, mode, kTagOutputs, "outputs", limits, total));
  CT_TRY(version, read_version(r));
  if (Status s = r.finish(); !s.ok()) return s;
  return ForwardResponse{mode, std::move(outputs), version};
}

Result<BackwardRequest> decode_backward_request(const Message& m, const ProtocolLimits& limits) {
  const char* what = "moe backward request";
  if (Status s = check_message_type(m, MsgType::kMoeBackwardRequest, false, what); !s.ok())
    return s;
  Reader r(m, what);
  uint64_t total = 0;
  CT_TRY(uid, read_uid(r, limits));
  CT_TRY(mode, read_mode(r));
  CT_TRY(inputs, read_batch(r, mode, kTagInputs, "inputs", limits, total));
  CT_TRY(grads, read_batch(r, mode, kTagGradOutputs, "grad_outputs", limits, total));
  if (grads.shape[0] != inputs.shape[0]) {
    return r.fail_last("grad_outputs", std::to_string(grads.shape[0]) + " rows for " +
                                           std::to_string(inputs.shape[0]) + " input rows");
  }
  CT_TRY(version, read_version(r));
  if (Status s = r.finish(); !s.ok()) return s;
  return BackwardRequest{std::move(uid), mode, std::move(inputs), std::move(grads), version};
}

Result<BackwardResponse> decode_backward_response(const Message& m, const ProtocolLimits& limits) {
  const char* what = "moe backward response";
  if (Status s = check_message_type(m, MsgType::kMoeBackwardResponse, true, what); !s.ok())
    return s;
  Reader r(m, what);
  uint64_t total = 0;
  CT_TRY(mode, read_mode(r));
  CT_TRY(grads, read_batch(r, mode, kTagGradInputs, "grad_inputs", limits, total));
  if (Status s = r.finish(); !s.ok()) return s;
  return BackwardResponse{mode, std::move(grads)};
}

Message encode_state_request(const StateRequest& r) {
  Message m = begin(MsgType::kMoeStateRequest, false);
  m.add_bytes(kTagUid, r.uid);
  return m;
}

Message encode_state_response(const StateResponse& r) {
  Message m = begin(MsgType::kMoeStateResponse, true);
  m.add_bytes(kTagUid, r.uid).add_bytes(kTagState, r.state).add_u64(kTagUpdates, r.updates);
  return m;
}

Result<StateRequest> decode_state_request(const Message& m, const ProtocolLimits& limits) {
  const char* what = "moe state request";
  if (Status s = check_message_type(m, MsgType::kMoeStateRequest, false, what); !s.ok()) return s;
  Reader r(m, what);
  CT_TRY(uid, read_uid(r, limits));
  if (Status s = r.finish(); !s.ok()) return s;
  return StateRequest{std::move(uid)};
}

Result<StateResponse> decode_state_response(const Message& m, const ProtocolLimits& limits) {
  const char* what = "moe state response";
  if (Status s = check_message_type(m, MsgType::kMoeStateResponse, true, what); !s.ok()) return s;
  Reader r(m, what);
  CT_TRY(uid, read_uid(r, limits));
  const Field* state = r.take(kTagState, FieldKind::kBytes, "state");
  if (!state) return r.error();
  const auto& bytes = std::get<std::string>(state->value);
  if (bytes.size() > limits.max_bytes) {
    return r.fail_last("state", std::to_string(bytes.size()) + " bytes, limit " +
                                    std::to_string(limits.max_bytes));
  }
  const Field* updates = r.take(kTagUpdates, FieldKind::kU64, "updates");
  if (!updates) return r.error();
  if (Status s = r.finish(); !s.ok()) return s;
  return StateResponse{std::move(uid), bytes, std::get<uint64_t>(updates->value)};
}

}  // namespace crowdtrain::moe
