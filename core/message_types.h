// Every message type either world carries. The codec refuses a type that is not listed here.
// Numbers are part of the wire format: never renumber, only append.
#pragma once

#include <cstdint>

namespace crowdtrain {

enum class MsgType : uint16_t {
  kRpcError = 1,       // a response that says the request failed: field kTagError holds why
  kProbeRequest = 10,  // probe workload (core/probe.h)
  kProbeResponse = 11,
  kTransferRequest = 12,  // calibration transfers (sim/calibration.h)
  kTransferResponse = 13,
  // 100..199: DHT; 200..299: averaging; 300..399: mixture-of-experts.
  kDhtPingRequest = 100,  // DHT (core/dht/protocol.h)
  kDhtPingResponse = 101,
  kDhtStoreRequest = 102,
  kDhtStoreResponse = 103,
  kDhtFindRequest = 104,
  kDhtFindResponse = 105,
  kAvgPart = 200,        // all-reduce (core/averaging/allreduce.h): a sender's chunk to its reducer
  kAvgResult = 201,      // all-reduce: the averaged chunk back to a sender
  kAvgRefuse = 202,      // all-reduce: a reducer refuses a sender's chunks, with the reason
  kMmJoinRequest = 203,  // matchmaking (core/averaging/matchmaking.h): asks a peer to lead us
  kMmJoinResponse = 204,     // matchmaking: accepted, redirected to a leader, busy or refused
  kMmBegin = 205,            // matchmaking: the leader hands the assembled group to a follower
  kMmHandover = 206,         // matchmaking: a leader sends its followers to a better leader
  kGossipPush = 207,         // gossip and PushSum (core/averaging/gossip.h): a round's vector/share
  kTrainStateRequest = 210,  // Moshpit SGD (core/train/state_transfer.h): a joiner asks for state
  kTrainStateResponse = 211,  // Moshpit SGD: parameters (+ optimizer state) in bounded chunks
  kMoeForwardRequest = 300,   // mixture-of-experts (core/moe/protocol.h): an expert's forward
  kMoeForwardResponse = 301,
  kMoeBackwardRequest = 302,  // mixture-of-experts: an expert's backward (and optimizer step)
  kMoeBackwardResponse = 303,
  kMoeStateRequest = 304,  // mixture-of-experts: an expert's state, for a backup (takeover.h)
  kMoeStateResponse = 305,
};

// True for the values listed in MsgType.
inline bool is_known_msg_type(uint16_t t) {
  switch (static_cast<MsgType>(t)) {
    case MsgType::kRpcError:
    case MsgType::kProbeRequest:
    case MsgType::kProbeResponse:
    case MsgType::kTransferRequest:
    case MsgType::kTransferResponse:
    case MsgType::kDhtPingRequest:
    case MsgType::kDhtPingResponse:
    case MsgType::kDhtStoreRequest:
    case MsgType::kDhtStoreResponse:
    case MsgType::kDhtFindRequest:
    case MsgType::kDhtFindResponse:
    case MsgType::kAvgPart:
    case MsgType::kAvgResult:
    case MsgType::kAvgRefuse:
    case MsgType::kMmJoinRequest:
    case MsgType::kMmJoinResponse:
    case MsgType::kMmBegin:
    case MsgType::kMmHandover:
    case MsgType::kGossipPush:
    case MsgType::kTrainStateRequest:
    case MsgType::kTrainStateResponse:
    case MsgType::kMoeForwardRequest:
    case MsgType::kMoeForwardResponse:
    case MsgType::kMoeBackwardRequest:
    case MsgType::kMoeBackwardResponse:
    case MsgType::kMoeStateRequest:
    case MsgType::kMoeStateResponse:
      return true;
  }
  return false;
}

// Field tags shared by every message type; protocols define their own from 16 up.
constexpr uint16_t kTagError = 1;
constexpr uint16_t kTagPayload = 2;

}  // namespace crowdtrain
