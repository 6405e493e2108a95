// The messages of butterfly all-reduce (types 200..202 in core/message_types.h), built and read in
// one place. kAvgPart carries one chunk of a sender's part to the part's reducer; kAvgResult
// carries the averaged chunk back; kAvgRefuse tells a peer that its chunks (or results) are no
// longer taken, with the reason. Every message names its group id, the round and, for chunks, the
// part (= the reducer's index in the group) and the chunk index; the tensor is a CompressedTensor
// (core/averaging/compression.h). Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/averaging/compression.h"
#include "core/message.h"
#include "core/status.h"

namespace crowdtrain {

constexpr uint16_t kTagAvgGroup = 16;
constexpr uint16_t kTagAvgRound = 17;
constexpr uint16_t kTagAvgPart = 18;
constexpr uint16_t kTagAvgChunk = 19;
constexpr uint16_t kTagAvgReason = 20;
constexpr uint16_t kTagAvgPad = 21;  // filler: payload scaling (AllReduceOptions::payload_scale)

struct ChunkHeader {
  uint64_t group_id = 0;
  uint64_t round = 0;
  uint64_t part = 0;
  uint64_t chunk = 0;
};

// True for kAvgPart, kAvgResult and kAvgRefuse.
bool is_allreduce_message(const Message& msg);
// The group id a message names, if it is an all-reduce message that has one (for routing).
std::optional<uint64_t> peek_allreduce_group(const Message& msg);

Message make_chunk_message(MsgType type, const ChunkHeader& h, CompressedTensor tensor);
Message make_refuse_message(uint64_t group_id, uint64_t round, const std::string& reason);

// Group and round of any all-reduce message; part and chunk too for kAvgPart and kAvgResult.
Result<ChunkHeader> read_chunk_header(const Message& msg);

}  // namespace crowdtrain
