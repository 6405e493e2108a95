#include "sim/tcp_effects.h"

#include <algorithm>
#include <cmath>

namespace crowdtrain::sim {
namespace {
constexpr double kMaxWindowBytes = 1e9;
constexpr uint64_t kSweepEvery = 1u << 16;
}  // namespace

TcpEffects::TcpEffects(uint32_t segment_bytes, double idle_s)
    : segment_bytes_(segment_bytes), idle_ns_(static_cast<int64_t>(idle_s * 1e9)) {}

uint64_t TcpEffects::wire_bytes(uint64_t payload) const {
  const uint64_t segments = std::max<uint64_t>(1, (payload + segment_bytes_ - 1) / segment_bytes_);
  return payload + segments * kHeaderBytes;
}

int64_t TcpEffects::extra_delay_ns(PeerId a, PeerId b, uint64_t payload, int64_t start_ns,
                                   double one_way_s, double rate_Bps, uint32_t epoch_a,
                                   uint32_t epoch_b) {
  if (++calls_ % kSweepEvery == 0) sweep(start_ns);
  const PeerId lo = std::min(a, b), hi = std::max(a, b);
  const uint32_t e_lo = a == lo ? epoch_a : epoch_b;
  const uint32_t e_hi = a == lo ? epoch_b : epoch_a;
  const uint64_t key = (static_cast<uint64_t>(lo) << 32) | hi;
  const double rtt = 2.0 * one_way_s;

  auto it = conns_.find(key);
  const bool open = it != conns_.end() && start_ns - it->second.last_used_ns <= idle_ns_ &&
                    it->second.epoch_lo == e_lo && it->second.epoch_hi == e_hi;
  if (!open) {
    // SYN, SYN-ACK; the data follows the ACK: one round trip before the first byte leaves.
    ++handshakes_;
    Conn fresh;
    fresh.epoch_lo = e_lo;
    fresh.epoch_hi = e_hi;
    fresh.established_ns = start_ns + static_cast<int64_t>(std::llround(rtt * 1e9));
    fresh.cwnd[0] = fresh.cwnd[1] = double(kInitialWindowSegments) * segment_bytes_;
    it = conns_.insert_or_assign(key, fresh).first;
  }
  Conn& c = it->second;
  const int dir = a == lo ? 0 : 1;
  double& w = c.cwnd[dir];
  // The message's bytes enter the stream once the handshake is over and the messages before it on
  // this connection have gone out.
  const int64_t begin = std::max({start_ns, c.established_ns, c.stream_free_ns[dir]});
  // Slow start: each round sends a window and waits for its ACKs; the window grows by what was
  // acknowledged. Once the window covers the bandwidth-delay product the pipe stays full and the
  // rest is paced by the links, which the message model already charges.
  const double bdp = rate_Bps * rtt;
  double remaining = static_cast<double>(payload);
  double stall_s = 0.0;
  while (remaining > 0.0 && w < bdp) {
    const double sent = std::min(w, remaining);
    remaining -= sent;
    w = std::min(w + sent, kMaxWindowBytes);
    if (remaining > 0.0) stall_s += std::max(0.0, rtt - sent / rate_Bps);
  }
  const int64_t stall_ns = static_cast<int64_t>(std::llround(stall_s * 1e9));
  c.stream_free_ns[dir] =
      begin + stall_ns + static_cast<int64_t>(std::llround(payload / rate_Bps * 1e9));
  c.last_used_ns = std::max(c.last_used_ns, c.stream_free_ns[dir]);
  return (begin - start_ns) + stall_ns;
}

void TcpEffects::sweep(int64_t now_ns) {
  // Erasing idle entries only; the order of the walk does not change any result.
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (now_ns - it->second.last_used_ns > idle_ns_) {
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace crowdtrain::sim
