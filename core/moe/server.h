// The expert server (Learning@home's runtime, hivemind's moe/server): hosts experts, serves their
// forward and backward RPCs (core/moe/protocol.h) and batches them. One task pool per (expert,
// forward|backward); whenever the server's compute is idle it takes the pool whose oldest waiting
// request is the oldest, takes whole requests from it FIFO up to max_batch_size samples, runs them
// as ONE batch through Runtime::compute and answers each request with its slice. Refusals (unknown
// expert, wrong shape or dtype, non-finite values, too big, queue full) are error responses;
// nothing is queued. Owns its experts; borrows the Runtime and the RpcEndpoint (both must outlive
// it; the owner feeds delivered messages to the endpoint). Single-threaded, on the runtime's loop.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/moe/expert.h"
#include "core/moe/protocol.h"
#include "core/options.h"
#include "core/rpc.h"
#include "core/runtime.h"

namespace crowdtrain::moe {

// What a backward call does to its expert when its forward ran on older parameters. Staleness is
// the number of optimizer steps the expert took between the forward (the version its answer
// carried) and this backward; a request without a version counts as fresh.
enum class StaleUpdates : uint8_t {
  kApply = 0,  // one step at the full learning rate, however stale (the paper, hivemind)
  kScale = 1,  // the step's learning rate times the batch's mean of 1 / (1 + staleness) per row
  kSkip = 2,   // requests staler than max_staleness get their input gradient but add no step
};
const char* stale_updates_name(StaleUpdates s);  // "apply" | "scale" | "skip"

// Builder style: ExpertServerOptions().max_batch_size(256).checkpoint_dir("ckpt").
class ExpertServerOptions {
#define CT_SERVER_OPTION(type, name, init) CT_OPTION(ExpertServerOptions, type, name, init)

  CT_SERVER_OPTION(uint64_t, max_batch_size, 1024)   // samples per batch (and per request)
  CT_SERVER_OPTION(uint64_t, max_queue_samples, 0)   // per pool; 0 = 16 * max_batch_size
  CT_SERVER_OPTION(std::string, checkpoint_dir, "")  // "" = no checkpoints
  CT_SERVER_OPTION(Time, checkpoint_interval, std::chrono::seconds(60))
  CT_SERVER_OPTION(Numerics, numerics, Numerics::kReal)  // kTiming: no tensors, compute charged
  CT_SERVER_OPTION(ProtocolLimits, limits, ProtocolLimits())
  // Each forward or backward request is refused ("injected") with this probability, drawn from
  // the peer's Runtime rng: Learning@home's failure emulation as a real fault on the wire.
  CT_SERVER_OPTION(double, failure_prob, 0.0)
  CT_SERVER_OPTION(StaleUpdates, stale_updates, StaleUpdates::kApply)
  CT_SERVER_OPTION(uint64_t, max_staleness, 4)  // kSkip
  // An expert steps once the backward calls since its last step brought this many samples (their
  // gradients accumulate, the step takes their mean); 0 or 1 = a step on every backward batch.
  CT_SERVER_OPTION(uint64_t, min_update_samples, 0)
#undef CT_SERVER_OPTION

 public:
  uint64_t queue_limit() const {
    return max_queue_samples_ ? max_queue_samples_ : 16 * max_batch_size_;
  }
};

class ExpertServer {
 public:
  // Registers the forward and backward handlers on `rpc`; starts the checkpoint timer when a
  // checkpoint_dir is set (real numerics only).
  ExpertServer(Runtime& rt, RpcEndpoint& rpc, ExpertServerOptions options);
  ~ExpertServer();
  ExpertServer(const ExpertServer&) = delete;
  ExpertServer& operator=(const ExpertServer&) = delete;

  // Hosts a real expert (real numerics only). Loads <checkpoint_dir>/<uid>.ckpt first when it
  // exists (a failure is logged and counted, and the expert starts as it was given).
  Status add_expert(const std::string& uid, std::unique_ptr<Expert> expert);
  // Hosts a timing-only expert, described but not allocated (timing numerics only).
  Status add_expert(const std::string& uid, ExpertInfo info);
  // Stops hosting `uid`: its waiting requests are refused, a running batch still answers, and its
  // checkpoint is written first when checkpoints are on.
  Status remove_expert(const std::string& uid);
  std::vector<std::string> hosted() const;  // sorted
  // The expert's state for a backup (also served to peers as kMoeStateRequest): save_state()'s
  // bytes ("" for a timing-only expert) and its update count; an error for an unknown uid.
  Result<StateResponse> export_state(const std::string& uid) const;
  bool hosts(const std::string& uid) const { return experts_.count(uid) > 0; }

  // Writes every changed expert's checkpoint now (atomically: a temp file, then a rename). Also
  // runs every checkpoint_interval. Returns the first failure (each is counted and logged).
  Status checkpoint_all();

  uint64_t queued_samples() const;  // waiting in every pool
  bool computing() const { return computing_; }
  const ExpertServerOptions& options() const { return options_; }

 private:
  enum Direction { kForward = 0, kBackward = 1 };
  struct Task {
    uint64_t seq = 0;  // arrival order, across every pool
    Time arrived{0};
    int64_t rows = 0;
    TensorData inputs;
    TensorData grad_outputs;          // backward only
    std::optional<uint64_t> version;  // backward only: the version its forward saw
    RpcEndpoint::Responder respond;
  };
  struct Pool {
    std::deque<Task> tasks;
    uint64_t samples = 0;
  };
  struct Hosted {
    std::shared_ptr<Expert> expert;  // null in timing mode; shared with a running batch
    ExpertInfo info;
    Pool pools[2];
    uint64_t saved_updates = UINT64_MAX;  // updates() at the last checkpoint written or loaded
    uint64_t version = 0;  // optimizer steps taken (as updates(); also counted in timing mode)
    uint64_t pending_samples = 0;  // gradients accumulated since the last step (min_update_samples)
  };
  struct Batch;  // one compute call in flight (server.cpp)

  Status check_new_uid(const std::string& uid) const;
  void on_request(Direction dir, Message msg, RpcEndpoint::Responder respond);
  // Checks a request against its expert; returns the refusal reason key ("" = admitted) and why.
  std::string admit(Direction dir, const std::string& uid, Numerics numerics,
                    const TensorData& inputs, const TensorData* grad_outputs, std::string& why);
  void refuse(const std::string& reason, const std::string& why,
              const RpcEndpoint::Responder& respond);
  void pump_soon();  // pump() once the messages of this instant are in
  void pump();       // starts the next batch when compute is idle
  // Each backward task's learning-rate scale by the stale_updates policy (also counts staleness).
  std::vector<double> update_scales(const Hosted& h, const std::vector<Task>& tasks);
  // The batch's scales, whether it steps (min_update_samples), and the steps it takes.
  void plan_update(Hosted& h, Batch& batch);
  // The expert's backward for every task, one call per distinct scale, rows back in task order.
  static Result<TensorData> run_backward(Batch& batch);
  void finish_batch(Batch& batch);
  void count_steps(const Batch& batch);
  void answer_batch(Batch& batch, const TensorData& result);
  void schedule_checkpoint();
  Status write_checkpoint(const std::string& uid, Hosted& h);
  void load_checkpoint(const std::string& uid, Hosted& h);
  std::string checkpoint_path(const std::string& uid) const;

  Runtime& rt_;
  RpcEndpoint& rpc_;
  ExpertServerOptions options_;
  std::map<std::string, Hosted> experts_;
  uint64_t next_seq_ = 0;
  bool computing_ = false;
  bool pump_scheduled_ = false;
  TimerId checkpoint_timer_ = 0;
  bool checkpoint_timer_set_ = false;
  std::shared_ptr<bool> alive_;
};

}  // namespace crowdtrain::moe
