#include "core/averaging/allreduce_wire.h"

namespace crowdtrain {

bool is_allreduce_message(const Message& msg) {
  return msg.type == MsgType::kAvgPart || msg.type == MsgType::kAvgResult ||
         msg.type == MsgType::kAvgRefuse;
}

std::optional<uint64_t> peek_allreduce_group(const Message& msg) {
  if (!is_allreduce_message(msg)) return std::nullopt;
  auto g = msg.u64(kTagAvgGroup);
  if (!g.ok()) return std::nullopt;
  return *g;
}

Message make_chunk_message(MsgType type, const ChunkHeader& h, CompressedTensor tensor) {
  Message m(type);
  m.add_u64(kTagAvgGroup, h.group_id);
  m.add_u64(kTagAvgRound, h.round);
  m.add_u64(kTagAvgPart, h.part);
  m.add_u64(kTagAvgChunk, h.chunk);
  add_compressed(m, std::move(tensor));
  return m;
}

Message make_refuse_message(uint64_t group_id, uint64_t round, const std::string& reason) {
  Message m(MsgType::kAvgRefuse);
  m.add_u64(kTagAvgGroup, group_id);
  m.add_u64(kTagAvgRound, round);
  m.add_bytes(kTagAvgReason, reason);
  return m;
}

Result<ChunkHeader> read_chunk_header(const Message& msg) {
  ChunkHeader h;
  auto group = msg.u64(kTagAvgGroup);
  if (!group.ok()) return group.status();
  auto round = msg.u64(kTagAvgRound);
  if (!round.ok()) return round.status();
  h.group_id = *group;
  h.round = *round;
  if (msg.type == MsgType::kAvgRefuse) return h;
  auto part = msg.u64(kTagAvgPart);
  if (!part.ok()) return part.status();
  auto chunk = msg.u64(kTagAvgChunk);
  if (!chunk.ok()) return chunk.status();
  h.part = *part;
  h.chunk = *chunk;
  return h;
}

}  // namespace crowdtrain
