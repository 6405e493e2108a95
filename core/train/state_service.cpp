// Serving and downloading a trainer's state: see state_service.h.
#include "core/train/state_service.h"

#include "core/invariants.h"
#include "core/train/state_transfer.h"

namespace crowdtrain::train {

StateService::StateService(Runtime& rt, RpcEndpoint& rpc, LocalTrainer& trainer,
                           bool with_optimizer)
    : rt_(rt),
      rpc_(rpc),
      trainer_(trainer),
      with_optimizer_(with_optimizer),
      alive_(std::make_shared<bool>(true)) {}

StateService::~StateService() { *alive_ = false; }

void StateService::serve(std::function<bool()> ready) {
  rpc_.serve(MsgType::kTrainStateRequest, [this, ready](PeerId from, Message req,
                                                        RpcEndpoint::Responder respond) {
    if (ready && !ready()) {
      rt_.metrics().count("train_state_not_ready");
      // A state response (not kRpcError) so that it reaches the asker's endpoint.
      Message no(MsgType::kTrainStateResponse);
      no.add_bytes(kTagError, "not ready (still joining)");
      return respond(std::move(no));
    }
    const bool want = req.u64(kTagStateWantOptimizer).ok() && *req.u64(kTagStateWantOptimizer) != 0;
    rt_.metrics().count("train_state_served");
    respond(make_state_response(trainer_, want));
  });
}

void StateService::download(std::vector<PeerId> peers, Time timeout,
                            std::function<void(bool)> done) {
  peers_ = std::move(peers);
  timeout_ = timeout;
  done_ = std::move(done);
  rt_.schedule(Time(0), [this, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) attempt(0);
  });
}

void StateService::attempt(size_t i) {
  if (i >= peers_.size()) {
    if (auto done = std::move(done_)) done(false);
    return;
  }
  const PeerId to = peers_[i];
  rt_.metrics().count("train_state_requests");
  rpc_.call(
      to, make_state_request(with_optimizer_), CallOptions().with_timeout(timeout_),
      [this, i, to, alive = std::weak_ptr<bool>(alive_)](Result<Message> r) {
        if (alive.expired()) return;
        if (!r.ok()) {
          rt_.metrics().count("train_state_failed");
          rt_.metrics().event("train_state_failed", {{"from", to}, {"why", r.status().message()}},
                              EventDetail::kOperation);
          return attempt(i + 1);
        }
        auto installed = install_state(r.value(), trainer_, with_optimizer_);
        if (!installed.ok()) {
          rt_.metrics().count("train_state_refused");
          rt_.metrics().event("train_state_refused",
                              {{"from", to}, {"why", installed.status().message()}});
          return attempt(i + 1);
        }
        // The joiner now holds exactly the state the server sent (its digests).
        check_invariant(
            rt_.metrics(), holds_installed_state(trainer_, installed.value()),
            "training_joiner_state_matches",
            [&] { return "peer " + std::to_string(rt_.self()) + " from " + std::to_string(to); });
        rt_.metrics().count("train_state_downloads");
        rt_.metrics().observe("train_state_bytes", static_cast<double>(r->wire_size()));
        rt_.metrics().event("train_state_downloaded",
                            {{"from", to}, {"server_steps", installed->server_steps}});
        if (auto done = std::move(done_)) done(true);
      });
}

}  // namespace crowdtrain::train
