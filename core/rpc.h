// Request/response over a Runtime: ids, time-outs and retries live here, once, above the seam, so
// that a lost message behaves the same in both worlds.
//
// An RpcEndpoint belongs to one peer incarnation and lives no longer than its Runtime. Requests
// carry a fresh request id (random base per incarnation, so a restarted peer never matches an old
// response); responses carry kFlagResponse and the same id. A call ends exactly once: with the
// response, with an error response from the server, or with a time-out after the last retry.
// The failures differ in their Status code: a refusal (an error response: the server is alive and
// said no, with its reason) is StatusCode::kRefused, a time-out is kTimedOut, and a call refused
// locally before anything was sent (the pending limit) is kError. Pending calls are bounded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

#include "core/message.h"
#include "core/runtime.h"
#include "core/status.h"

namespace crowdtrain {

struct CallOptions {
  Time timeout = std::chrono::seconds(5);  // per attempt
  int retries = 0;                         // further attempts after a time-out
  CallOptions& with_timeout(Time t) {
    timeout = t;
    return *this;
  }
  CallOptions& with_retries(int r) {
    retries = r;
    return *this;
  }
};

class RpcEndpoint {
 public:
  using ResponseFn = std::function<void(Result<Message>)>;
  // Sends the response to the request being served; call it at most once (later calls are ignored).
  using Responder = std::function<void(Message response)>;
  using HandlerFn = std::function<void(PeerId from, Message request, Responder respond)>;

  explicit RpcEndpoint(Runtime& rt, size_t max_pending = 100000);
  ~RpcEndpoint();
  RpcEndpoint(const RpcEndpoint&) = delete;
  RpcEndpoint& operator=(const RpcEndpoint&) = delete;

  // Calls `to`. `done` runs exactly once, on the runtime's loop, never inside call() itself, with
  // the response or a failed Status whose code says which failure it was (see above).
  void call(PeerId to, Message request, CallOptions options, ResponseFn done);
  // Serves requests of `type`. A request with no handler is answered with a kRpcError response.
  void serve(MsgType type, HandlerFn handler);
  // Feeds a delivered message in. Returns true when it was a response or a request this endpoint
  // handles (or answered with an error); false for anything else (the caller may handle it).
  bool handle(PeerId from, Message msg);

  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    PeerId to;
    Message request;  // kept for retries
    CallOptions options;
    int attempts_left;
    TimerId timer;
    Time started;
    ResponseFn done;
  };
  void attempt(uint64_t id);
  void on_timeout(uint64_t id);
  void finish(uint64_t id, Result<Message> result);

  Runtime& rt_;
  size_t max_pending_;
  uint64_t next_id_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::map<uint16_t, HandlerFn> handlers_;
  std::shared_ptr<bool> alive_;
};

// An error response to `request` saying `why`.
Message make_error_response(const Message& request, const std::string& why);

}  // namespace crowdtrain
