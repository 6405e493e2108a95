#include "core/dht/dht_app.h"

namespace crowdtrain::dht {

DhtApp::DhtApp(Runtime& rt, DhtId id, DhtOptions options, std::vector<PeerId> initial_peers)
    : rt_(rt),
      rpc_(rt),
      node_(std::make_unique<DhtNode>(rt, rpc_, id, options)),
      initial_peers_(std::move(initial_peers)) {}

void DhtApp::start() {
  node_->start();
  node_->bootstrap(initial_peers_, [this](Status s) {
    if (!s.ok()) rt_.metrics().event("dht_bootstrap_failed", {{"why", s.message()}});
    bootstrapped_ = s;
  });
}

void DhtApp::on_message(PeerId from, Message msg) {
  if (!rpc_.handle(from, std::move(msg))) rt_.metrics().count("dht_unexpected_messages");
}

}  // namespace crowdtrain::dht
