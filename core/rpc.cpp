#include "core/rpc.h"

#include <utility>

namespace crowdtrain {

Message make_error_response(const Message& request, const std::string& why) {
  Message m(MsgType::kRpcError);
  m.flags = kFlagResponse;
  m.request_id = request.request_id;
  m.add_bytes(kTagError, why);
  return m;
}

RpcEndpoint::RpcEndpoint(Runtime& rt, size_t max_pending)
    : rt_(rt),
      max_pending_(max_pending),
      next_id_((rt.rng().next_u64() | 1) & 0x7FFFFFFFFFFFFFFFULL),
      alive_(std::make_shared<bool>(true)) {}

RpcEndpoint::~RpcEndpoint() {
  *alive_ = false;
  for (auto& [id, p] : pending_) rt_.cancel(p.timer);
}

void RpcEndpoint::call(PeerId to, Message request, CallOptions options, ResponseFn done) {
  if (pending_.size() >= max_pending_) {
    // Fail asynchronously so that `done` never runs inside call().
    std::weak_ptr<bool> alive = alive_;
    rt_.schedule(Time(0), [alive, done = std::move(done), n = max_pending_]() {
      if (alive.lock() && *alive.lock()) {
        done(Status::error("rpc: too many pending calls (limit " + std::to_string(n) + ")"));
      }
    });
    rt_.metrics().count("rpc_rejected_pending_limit");
    return;
  }
  const uint64_t id = next_id_++;
  request.request_id = id;
  request.flags &= static_cast<uint8_t>(~kFlagResponse);
  Pending p{to, std::move(request), options, options.retries, 0, rt_.now(), std::move(done)};
  pending_.emplace(id, std::move(p));
  attempt(id);
}

void RpcEndpoint::attempt(uint64_t id) {
  auto it = pending_.find(id);
  CT_CHECK(it != pending_.end());
  Pending& p = it->second;
  std::weak_ptr<bool> alive = alive_;
  p.timer = rt_.schedule(p.options.timeout, [this, alive, id]() {
    auto a = alive.lock();
    if (a && *a) on_timeout(id);
  });
  rt_.send(p.to, p.request);
}

void RpcEndpoint::on_timeout(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  if (it->second.attempts_left > 0) {
    --it->second.attempts_left;
    rt_.metrics().count("rpc_retries");
    attempt(id);
    return;
  }
  rt_.metrics().count("rpc_timeouts");
  finish(id,
         Status::timed_out("rpc: peer " + std::to_string(it->second.to) + " did not answer " +
                           std::to_string(static_cast<int>(it->second.request.type)) + " within " +
                           std::to_string(to_millis(it->second.options.timeout)) + " ms (" +
                           std::to_string(it->second.options.retries + 1) + " attempts)"));
}

void RpcEndpoint::finish(uint64_t id, Result<Message> result) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  ResponseFn done = std::move(it->second.done);
  rt_.cancel(it->second.timer);
  pending_.erase(it);
  done(std::move(result));
}

void RpcEndpoint::serve(MsgType type, HandlerFn handler) {
  handlers_[static_cast<uint16_t>(type)] = std::move(handler);
}

bool RpcEndpoint::handle(PeerId from, Message msg) {
  if (msg.is_response()) {
    auto it = pending_.find(msg.request_id);
    if (it == pending_.end()) {
      rt_.metrics().count("rpc_unmatched_responses");  // late, duplicate, or for a dead incarnation
      return true;
    }
    if (it->second.to != from) {
      rt_.metrics().count("rpc_wrong_sender_responses");
      return true;
    }
    if (msg.type == MsgType::kRpcError) {
      auto why = msg.bytes(kTagError);
      finish(msg.request_id,
             Status::refused("rpc: peer " + std::to_string(from) + " refused: " +
                             (why.ok() ? why.value() : std::string("(no reason given)"))));
    } else {
      finish(msg.request_id, std::move(msg));
    }
    return true;
  }
  auto h = handlers_.find(static_cast<uint16_t>(msg.type));
  if (h == handlers_.end()) {
    rt_.metrics().count("rpc_unhandled_requests");
    rt_.send(from, make_error_response(msg, "no handler for message type " +
                                                std::to_string(static_cast<int>(msg.type))));
    return true;
  }
  const uint64_t rid = msg.request_id;
  const MsgType req_type = msg.type;
  std::weak_ptr<bool> alive = alive_;
  auto answered = std::make_shared<bool>(false);
  Responder respond = [this, alive, answered, from, rid, req_type](Message response) {
    auto a = alive.lock();
    if (!a || !*a || *answered) return;
    *answered = true;
    (void)req_type;
    response.request_id = rid;
    response.flags |= kFlagResponse;
    rt_.send(from, std::move(response));
  };
  h->second(from, std::move(msg), std::move(respond));
  return true;
}

}  // namespace crowdtrain
