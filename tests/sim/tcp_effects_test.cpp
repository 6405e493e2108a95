// TcpEffects: the handshake costs one round trip on a new connection only; slow start adds ACK
// rounds to transfers below the bandwidth-delay product and none once the window has grown; idle
// connections and dead peers' connections close; header bytes per segment.
#include "sim/tcp_effects.h"

#include <gtest/gtest.h>

namespace crowdtrain::sim {
namespace {

constexpr double kOneWay = 0.050;  // 100 ms round trip
constexpr double kRate = 1e6;      // 1 MB/s: bandwidth-delay product 100 KB

double extra_s(TcpEffects& t, uint64_t bytes, double at_s, PeerId a = 1, PeerId b = 2,
               uint32_t ea = 0, uint32_t eb = 0) {
  return t.extra_delay_ns(a, b, bytes, static_cast<int64_t>(at_s * 1e9), kOneWay, kRate, ea, eb) /
         1e9;
}

TEST(TcpEffects, HandshakeOnceThenReuse) {
  TcpEffects t(1448, 10.0);
  EXPECT_NEAR(extra_s(t, 100, 0.0), 0.100, 1e-9);  // one round trip before the first byte
  EXPECT_NEAR(extra_s(t, 100, 1.0), 0.0, 1e-9);    // same connection
  EXPECT_NEAR(extra_s(t, 100, 2.0, 2, 1), 0.0, 1e-9) << "the reverse direction shares it";
  EXPECT_EQ(t.handshakes(), 1u);
  EXPECT_NEAR(extra_s(t, 100, 20.0), 0.100, 1e-9) << "closed after 10 s idle";
  EXPECT_NEAR(extra_s(t, 100, 21.0, 1, 2, 1, 0), 0.100, 1e-9) << "peer 1 restarted";
}

TEST(TcpEffects, SlowStartRounds) {
  TcpEffects t(1000, 10.0);
  // Window 10 KB, BDP 100 KB: 70 KB goes as 10 + 20 + 40 KB: two ACK waits of (100 ms - send time).
  const double expect = 0.100 + (0.100 - 0.010) + (0.100 - 0.020);
  EXPECT_NEAR(extra_s(t, 70000, 0.0), expect, 1e-9);
  // The window is now 80 KB: a second 70 KB transfer fits in one round.
  EXPECT_NEAR(extra_s(t, 70000, 1.0), 0.0, 1e-9);
  // A big transfer on a fresh connection stops paying once the window covers the BDP.
  TcpEffects u(1000, 10.0);
  const double big = extra_s(u, 50'000'000, 0.0);
  EXPECT_NEAR(big, 0.100 + (0.1 - 0.01) + (0.1 - 0.02) + (0.1 - 0.04) + (0.1 - 0.08), 1e-9);
}

TEST(TcpEffects, MessagesShareTheConnectionsStream) {
  TcpEffects t(1000, 10.0);
  // Two 70 KB messages handed over at once: the second waits for the handshake and then behind the
  // first one's slow-start stalls and bytes; its own bytes then go with the grown window.
  const double first = extra_s(t, 70000, 0.0);
  EXPECT_NEAR(first, 0.100 + 0.090 + 0.080, 1e-9);
  const double second = extra_s(t, 70000, 0.0);
  EXPECT_NEAR(second, first + 0.070, 1e-9);
  EXPECT_EQ(t.handshakes(), 1u);
}

TEST(TcpEffects, HeaderBytes) {
  TcpEffects t(1448, 10.0);
  EXPECT_EQ(t.wire_bytes(0), 40u);
  EXPECT_EQ(t.wire_bytes(1448), 1488u);
  EXPECT_EQ(t.wire_bytes(1449), 1449u + 80u);
}

}  // namespace
}  // namespace crowdtrain::sim
