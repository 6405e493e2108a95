// Gossip averaging protocols on the engine, the baselines of the Moshpit paper's averaging figure,
// run over the same network as Moshpit so users can compare them under one scenario:
//  - ring gossip: in round r every peer sends its vector to its two ring neighbours (peer ids i-1
//    and i+1 mod N) and, when the round's exchange window closes, replaces its vector with the
//    mean of its own and what arrived (weights 1/3 each when both neighbours are up);
//  - PushSum (SGP) on a time-varying exponential graph: in round r peer i keeps one equal share of
//    its (value, weight) pair and pushes the others to i + 2^k mod N for the round's two hop
//    exponents (strategies.h); its estimate is value / weight.
// Both follow strategies.h's math (tests/core/averaging compare the protocol with it). Rounds are
// slotted like the Averager's (first_round + r * round_interval); a peer that sits a round out
// (failure_prob) neither sends nor takes anything that round, so PushSum mass sent to it is lost.
// Every message is validated — round, sender (must be a neighbour / a PushSum source of this
// round), element count, dtype, finiteness, weight share — and a bad one is refused with a reason
// counted as "gossip_refused_<reason>"; it never touches the vector.
//
// Ownership: borrows the Runtime (outlives it); shares the source and observer. Single-threaded,
// on the runtime's loop. Memory: at most max_rounds_ahead rounds of neighbours' vectors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/averaging/averager.h"
#include "core/averaging/compression.h"
#include "core/averaging/source.h"
#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain {

enum class GossipMethod { kRing, kPushSum };

struct GossipOptions {
  GossipMethod method = GossipMethod::kRing;
  uint32_t peers = 0;  // N: the ring / exponential graph is over peer ids 0..N-1
  Time start_delay{0};
  Time first_round = std::chrono::seconds(5);
  Time round_interval = std::chrono::seconds(10);
  Time exchange_window = std::chrono::seconds(2);  // mix this long after the round starts
  uint32_t rounds = 50;
  double failure_prob = 0.0;
  Compression compression = Compression::kNone;
  bool allow_nan = false;
  uint32_t max_rounds_ahead = 2;  // messages for later rounds kept (clock skew), at most
};

// One gossip message: round r's vector (or PushSum share) from the sender.
constexpr uint16_t kTagGossipRound = 24;
constexpr uint16_t kTagGossipWeight = 25;
Message make_gossip_message(uint64_t round, double weight_share, CompressedTensor tensor);

class GossipAverager final : public PeerApp {
 public:
  GossipAverager(Runtime& rt, GossipOptions options, std::shared_ptr<AveragingSource> source,
                 std::shared_ptr<AveragingObserver> observer);
  ~GossipAverager() override;

  void start() override;
  void on_message(PeerId from, Message msg) override;

  double pushsum_weight() const { return weight_; }
  uint64_t rounds_mixed() const { return rounds_mixed_; }

 private:
  struct Inbox;
  void schedule_round(uint64_t round);
  void begin_round(uint64_t round);
  void mix_round(uint64_t round);
  // Who may send to this peer in `round`.
  bool expected_sender(PeerId from, uint64_t round) const;
  void refuse(PeerId from, const std::string& reason);

  Runtime& rt_;
  GossipOptions options_;
  std::shared_ptr<AveragingSource> source_;
  std::shared_ptr<AveragingObserver> observer_;
  std::map<uint64_t, std::unique_ptr<Inbox>> inbox_;  // by round
  uint64_t next_unmixed_ = 0;  // rounds before this one are over (messages for them are late)
  uint64_t sat_out_round_ = UINT64_MAX;
  double weight_ = 1.0;      // PushSum weight
  double kept_share_ = 1.0;  // PushSum: the share of (value, weight) kept this round
  int64_t numel_ = -1;       // of the source's vector, from the snapshot taken at start()
  DType dtype_ = DType::kFloat64;
  uint64_t rounds_mixed_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain
