// TCP's first-order costs, for the message-level model (network.tcp_effects): a message between two
// peers with no open connection waits one round trip for the handshake; each direction of a
// connection has a congestion window that starts at 10 segments and grows by the bytes it carries
// (slow start), so a transfer smaller than the path's bandwidth-delay product waits for ACK rounds;
// messages on one connection share its byte stream, so a message waits for the handshake and for
// the stalls of the messages queued before it on the same connection; every segment carries 40
// bytes of TCP/IP headers. A connection closes after `idle_s` of silence or when either end goes
// down (as the packet-level model's do). Loss recovery is not modelled. Pure bookkeeping, no ns-3;
// single-threaded.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "core/runtime.h"

namespace crowdtrain::sim {

class TcpEffects {
 public:
  static constexpr uint32_t kHeaderBytes = 40;
  static constexpr uint32_t kInitialWindowSegments = 10;

  TcpEffects(uint32_t segment_bytes, double idle_s);

  // Bytes on the wire for `payload` bytes: payload plus headers of every segment.
  uint64_t wire_bytes(uint64_t payload) const;
  // The delay beyond latency + serialisation that a message of `payload` bytes from a to b,
  // starting at `start_ns`, suffers from the handshake and slow start; updates the connection's
  // state. `one_way_s`: propagation delay a -> b; `rate_Bps`: bottleneck rate in bytes/s;
  // `epoch_*`: the incarnation counters of the ends (a change means the old connection died with
  // its peer).
  int64_t extra_delay_ns(PeerId a, PeerId b, uint64_t payload, int64_t start_ns, double one_way_s,
                         double rate_Bps, uint32_t epoch_a, uint32_t epoch_b);
  size_t tracked_connections() const { return conns_.size(); }
  uint64_t handshakes() const { return handshakes_; }

 private:
  struct Conn {
    int64_t last_used_ns = 0;
    int64_t established_ns = 0;  // the handshake is over
    uint32_t epoch_lo = 0, epoch_hi = 0;
    // Per direction ([0]: lo -> hi, [1]: hi -> lo): the congestion window in bytes, and when the
    // stream will have sent everything queued on it (messages on one connection share one stream).
    double cwnd[2] = {0, 0};
    int64_t stream_free_ns[2] = {0, 0};
  };
  void sweep(int64_t now_ns);

  uint32_t segment_bytes_;
  int64_t idle_ns_;
  std::unordered_map<uint64_t, Conn> conns_;
  uint64_t calls_ = 0;
  uint64_t handshakes_ = 0;
};

}  // namespace crowdtrain::sim
