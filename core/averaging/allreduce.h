// Butterfly all-reduce inside one group, on the Runtime (hivemind's AllReduceRunner), as a state
// machine per round. Member j of the ordered group averages part j of the flat vector (parts sized
// by load_balancing.h from the members' bandwidths and modes): every sender streams its chunks of
// part j to member j, which accumulates them (weighted), and sends each averaged chunk back. The
// result is a delta (average - local) for the whole vector.
//
// Failures: a sender that never starts or stalls longer than sender_timeout is left out of the
// chunks it had not sent; a reducer silent for reducer_timeout (or that refuses us) leaves the rest
// of its part at the local values (delta 0); the round ends by `timeout` whatever happens. Every
// received message is validated; a bad one is refused with a reason counted in the metrics
// ("allreduce_refused_<reason>") and never touches the result.
//
// Ownership and threading: the owner keeps the round alive until `done` has run (destroying it
// earlier cancels it silently) and feeds it every delivered message through handle(); all calls
// and callbacks run on the runtime's loop. `done` runs once, from a timer of its own, so the owner
// may destroy the round inside it. The round reads `local` until done: pass a clone if the tensor
// changes meanwhile. Memory is bounded by the vector and the part this peer averages.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/averaging/compression.h"
#include "core/averaging/load_balancing.h"
#include "core/averaging/partition.h"
#include "core/runtime.h"
#include "core/status.h"

namespace at {
class Tensor;
}

namespace crowdtrain {

constexpr size_t kMaxGroupSize = 4096;

struct GroupMember {
  PeerId peer = kNoPeer;
  double weight = 1.0;     // of this member's vector in the average (ignored for aux members)
  double bandwidth = 1.0;  // for load balancing; 0 = averages nothing
  AveragingMode mode = AveragingMode::kNode;
};

// A group as matchmaking hands it over: every member must be given the same one.
struct AllReduceGroup {
  uint64_t group_id = 0;
  uint64_t round = 0;
  std::vector<GroupMember> members;  // ordered: member j averages part j
};

class AllReduceOptions {
 public:
  AllReduceOptions& timeout(Time t) {
    timeout_ = t;
    return *this;
  }
  // Default: timeout / 4.
  AllReduceOptions& sender_timeout(Time t) {
    sender_timeout_ = t;
    return *this;
  }
  // Default: timeout / 2. Must exceed sender_timeout (a reducer waits for its slowest sender).
  AllReduceOptions& reducer_timeout(Time t) {
    reducer_timeout_ = t;
    return *this;
  }
  AllReduceOptions& chunk_bytes(size_t b) {
    chunk_bytes_ = b;
    return *this;
  }
  AllReduceOptions& compression(Compression c) {
    compression_ = c;
    return *this;
  }
  AllReduceOptions& allow_nan(bool a) {
    allow_nan_ = a;
    return *this;
  }
  // All or nothing (plain all-reduce of a fixed membership): a reducer that has to leave any sender
  // out sends no results for that chunk but refuses everybody ("incomplete"), so every member
  // ends with part of its vector local and can void the whole round.
  AllReduceOptions& all_or_nothing(bool a) {
    all_or_nothing_ = a;
    return *this;
  }
  // Payload scaling, for rehearsing big models on a small real vector: every chunk and result
  // also carries (scale - 1) x its tensor bytes of filler (charged by the network, never
  // allocated) and averaging work is charged scale x its elements. 1 = off.
  AllReduceOptions& payload_scale(double s) {
    payload_scale_ = s;
    return *this;
  }
  // Modelled cost of averaging work per element, for Runtime::compute.
  AllReduceOptions& flops_per_element(double f) {
    flops_per_element_ = f;
    return *this;
  }

  Time timeout() const { return timeout_; }
  Time sender_timeout() const {
    return sender_timeout_.count() > 0 ? sender_timeout_ : timeout_ / 4;
  }
  Time reducer_timeout() const {
    return reducer_timeout_.count() > 0 ? reducer_timeout_ : timeout_ / 2;
  }
  size_t chunk_bytes() const { return chunk_bytes_; }
  Compression compression() const { return compression_; }
  bool allow_nan() const { return allow_nan_; }
  bool all_or_nothing() const { return all_or_nothing_; }
  double payload_scale() const { return payload_scale_; }
  double flops_per_element() const { return flops_per_element_; }

 private:
  Time timeout_ = std::chrono::seconds(30);
  Time sender_timeout_{0};
  Time reducer_timeout_{0};
  size_t chunk_bytes_ = kDefaultChunkBytes;
  Compression compression_ = Compression::kNone;
  bool allow_nan_ = false;
  bool all_or_nothing_ = false;
  double payload_scale_ = 1.0;
  double flops_per_element_ = 4.0;
};

struct AllReduceStats {
  int64_t elements = 0;                  // of this peer's vector (0 for an aux member)
  int64_t elements_averaged = 0;         // whose average arrived
  int64_t elements_local = 0;            // left at the local values
  std::vector<PeerId> senders_left_out;  // by this peer as a reducer
  std::vector<PeerId> reducers_failed;   // as seen by this peer as a sender
  int64_t chunks_sent = 0, chunks_received = 0, results_sent = 0, results_received = 0;
  int64_t refused = 0;
  std::map<std::string, int64_t> refused_by_reason;
  uint64_t bytes_sent = 0, bytes_received = 0;
  Time duration{0};
  bool timed_out = false;  // the round deadline passed with something still missing
};

struct AllReduceOutcome {
  // average - local, flat, in the local tensor's dtype and device; zeros where nothing arrived.
  std::shared_ptr<const at::Tensor> delta;
  AllReduceStats stats;
};

class AllReduceRound {
 public:
  using DoneFn = std::function<void(Result<AllReduceOutcome>)>;

  // Validates the group (self a member, no duplicates, finite weights, at most kMaxGroupSize,
  // somebody to average) and `local` (floating); a failure reaches `done` as an error after
  // start().
  AllReduceRound(Runtime& rt, AllReduceGroup group, const at::Tensor& local,
                 AllReduceOptions options, DoneFn done);
  ~AllReduceRound();
  AllReduceRound(const AllReduceRound&) = delete;
  AllReduceRound& operator=(const AllReduceRound&) = delete;

  // Sends this peer's chunks and arms the time-outs.
  void start();
  // Feeds a delivered message. Returns false for messages that are not all-reduce messages of this
  // group (a router may offer them elsewhere); those of another group are counted as refused.
  bool handle(PeerId from, const Message& msg);

  uint64_t group_id() const;
  bool finished() const;
  // Part sizes chosen by load balancing (empty if the group was invalid).
  const std::vector<int64_t>& part_sizes() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace crowdtrain
