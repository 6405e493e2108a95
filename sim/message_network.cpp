// Message-level network model: no ns-3 nodes, only ns-3's scheduler. Every peer has an uplink and a
// downlink serialisation queue (busy-until times) and the topology's propagation latency. A message
// of B bytes from a to b leaves a's uplink at start = max(now, up_busy[a]) and takes B*8/up_bps[a]
// there; its first byte reaches b's downlink a latency later; b's downlink takes B*8/down_bps[b]
// from max(first byte arrival, down_busy[b]), and the message is delivered when both the uplink and
// the downlink have carried its last byte. Two ns-3 events per message (arrival, delivery),
// whatever its size. In-flight messages live in a slab (no allocation per message once warm).
// network.delay_ms adds a per-message delay (drawn at send time) to the latency.
// With network.tcp_effects, sim/tcp_effects.h adds TCP's handshake, slow start and header bytes.
#include <ns3/simulator.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/random.h"
#include "sim/network.h"
#include "sim/tcp_effects.h"

namespace crowdtrain::sim {
namespace {

// Connections idle this long close, as the packet-level model's do.
constexpr double kTcpIdleS = 10.0;

int64_t transmit_ns(uint64_t bytes, double bps) {
  return static_cast<int64_t>(std::ceil(static_cast<double>(bytes) * 8e9 / bps));
}

class MessageNetwork final : public NetworkModel {
 public:
  MessageNetwork(const Topology& topology, const NetworkSpec& spec, uint64_t loss_seed,
                 DeliverFn deliver)
      : topology_(topology),
        spec_(spec),
        loss_rng_(loss_seed),
        delay_rng_(derive_seed(loss_seed, "delay")),
        has_delay_(spec.delay_ms.kind != DistSpec::Kind::kConstant || spec.delay_ms.value > 0),
        deliver_(std::move(deliver)),
        peers_(topology.size()) {
    if (spec.tcp_effects) tcp_ = std::make_unique<TcpEffects>(spec.tcp_segment_bytes, kTcpIdleS);
  }

  void send(PeerId from, PeerId to, Message msg, uint64_t wire_bytes) override {
    ++stats_.messages_sent;
    stats_.bytes_sent += wire_bytes;
    PeerState& src = peers_[from];
    if (!src.up || !peers_[to].up) {
      ++stats_.messages_dropped_down;
      return;
    }
    if (topology_.partitioned(from, to)) {
      ++stats_.messages_dropped_partition;
      return;
    }
    const int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    const uint64_t charged = tcp_ ? tcp_->wire_bytes(wire_bytes) : wire_bytes;
    const int64_t start = std::max(now, src.up_busy_ns);
    const int64_t up_done = start + transmit_ns(charged, topology_.peer(from).up_bps);
    src.up_busy_ns = up_done;
    // Loss is drawn at send time, in send order, so that it does not depend on event interleaving.
    // A loss fault's extra rate combines with the network's (independent drops); without one the
    // draws are those of the network's rate alone.
    const double fault_loss = topology_.fault_loss(from, to);
    const double loss =
        fault_loss > 0.0 ? 1.0 - (1.0 - spec_.loss_rate) * (1.0 - fault_loss) : spec_.loss_rate;
    if (loss > 0.0 && loss_rng_.bernoulli(loss)) {
      ++stats_.messages_dropped_loss;
      return;
    }
    const double one_way_s = topology_.one_way_latency_s(from, to);
    int64_t latency_ns = static_cast<int64_t>(std::llround(one_way_s * 1e9));
    latency_ns += topology_.clog_ns(from, to);  // clog faults
    // The extra delay is drawn at send time, in send order, like loss.
    if (has_delay_) latency_ns += std::llround(spec_.delay_ms.sample(delay_rng_) * 1e6);
    if (tcp_) {
      const double rate_Bps =
          std::min(topology_.peer(from).up_bps, topology_.peer(to).down_bps) / 8.0;
      latency_ns += tcp_->extra_delay_ns(from, to, wire_bytes, start, one_way_s, rate_Bps,
                                         src.epoch, peers_[to].epoch);
    }
    const uint32_t slot = allocate();
    InFlight& f = slots_[slot];
    f.msg = std::move(msg);
    f.from = from;
    f.to = to;
    f.bytes = charged;
    f.up_done_ns = up_done;
    f.latency_ns = latency_ns;
    f.from_epoch = src.epoch;
    f.to_epoch = peers_[to].epoch;
    ns3::Simulator::Schedule(ns3::NanoSeconds(start + latency_ns - now),
                             &MessageNetwork::on_arrival, this, slot);
  }

  void peer_up(PeerId p) override {
    PeerState& s = peers_[p];
    s.up = true;
    const int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    s.up_busy_ns = std::max(s.up_busy_ns, now);
    s.down_busy_ns = std::max(s.down_busy_ns, now);
  }

  void peer_down(PeerId p) override {
    PeerState& s = peers_[p];
    s.up = false;
    ++s.epoch;
    const int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    s.died_at_ns = now;
    s.up_busy_ns = now;  // its queue is gone
    s.down_busy_ns = now;
  }

  const NetworkStats& stats() const override { return stats_; }

 private:
  struct PeerState {
    int64_t up_busy_ns = 0;
    int64_t down_busy_ns = 0;
    int64_t died_at_ns = -1;
    uint32_t epoch = 0;
    bool up = false;
  };
  struct InFlight {
    Message msg;
    PeerId from = 0, to = 0;
    uint64_t bytes = 0;
    int64_t up_done_ns = 0;
    int64_t latency_ns = 0;
    uint32_t from_epoch = 0, to_epoch = 0;
  };

  uint32_t allocate() {
    if (!free_.empty()) {
      const uint32_t s = free_.back();
      free_.pop_back();
      return s;
    }
    slots_.emplace_back();
    return static_cast<uint32_t>(slots_.size() - 1);
  }
  void release(uint32_t slot) {
    slots_[slot].msg = Message();
    free_.push_back(slot);
  }

  // The first byte reaches the receiver's downlink.
  void on_arrival(uint32_t slot) {
    InFlight& f = slots_[slot];
    const PeerState& src = peers_[f.from];
    // A sender that died before its uplink finished never got the whole message out.
    if (src.epoch != f.from_epoch && src.died_at_ns < f.up_done_ns) {
      ++stats_.messages_dropped_down;
      release(slot);
      return;
    }
    PeerState& dst = peers_[f.to];
    if (!dst.up || dst.epoch != f.to_epoch) {
      ++stats_.messages_dropped_down;
      release(slot);
      return;
    }
    const int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    const int64_t rx_start = std::max(now, dst.down_busy_ns);
    const int64_t done = std::max(rx_start + transmit_ns(f.bytes, topology_.peer(f.to).down_bps),
                                  f.up_done_ns + f.latency_ns);
    dst.down_busy_ns = done;
    ns3::Simulator::Schedule(ns3::NanoSeconds(done - now), &MessageNetwork::on_delivery, this,
                             slot);
  }

  void on_delivery(uint32_t slot) {
    InFlight& f = slots_[slot];
    const PeerState& dst = peers_[f.to];
    if (!dst.up || dst.epoch != f.to_epoch) {
      ++stats_.messages_dropped_down;
      release(slot);
      return;
    }
    ++stats_.messages_delivered;
    stats_.bytes_delivered += f.bytes;
    Message msg = std::move(f.msg);
    const PeerId from = f.from, to = f.to;
    release(slot);
    deliver_(from, to, std::move(msg));
  }

  const Topology& topology_;
  const NetworkSpec& spec_;
  Rng loss_rng_;
  Rng delay_rng_;  // network.delay_ms
  bool has_delay_;
  DeliverFn deliver_;
  std::vector<PeerState> peers_;
  std::vector<InFlight> slots_;
  std::vector<uint32_t> free_;
  NetworkStats stats_;
  std::unique_ptr<TcpEffects> tcp_;  // null unless network.tcp_effects
};

}  // namespace

std::unique_ptr<NetworkModel> make_message_network(const Topology& topology,
                                                   const NetworkSpec& spec, uint64_t loss_seed,
                                                   NetworkModel::DeliverFn deliver) {
  return std::make_unique<MessageNetwork>(topology, spec, loss_seed, std::move(deliver));
}

}  // namespace crowdtrain::sim
