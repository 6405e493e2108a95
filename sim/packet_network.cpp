// The packet-level network model: ns-3 nodes, point-to-point access links, region routers, IPv4 and
// TCP. One TCP connection per unordered peer pair, opened on first use and reused in both
// directions. Payload is not bytes: each direction of a connection keeps an in-memory FIFO of
// (message, end offset); the sender writes that many dummy bytes into the socket, the receiver
// counts bytes from Recv and delivers every message whose last byte has arrived (TCP is reliable
// and in order).
#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ns3/core-module.h>
#include <ns3/inet-socket-address.h>
#include <ns3/internet-stack-helper.h>
#include <ns3/ipv4.h>
#include <ns3/node.h>
#include <ns3/packet.h>
#include <ns3/socket.h>
#include <ns3/tcp-socket-factory.h>

#include "sim/network.h"
#include "sim/packet_links.h"
#include "sim/packet_routing.h"

namespace crowdtrain::sim {
namespace {

constexpr uint16_t kListenPort = 9;
constexpr uint32_t kTcpBufferBytes = 32u << 20;  // > bandwidth x RTT of any link we model
// A connection with nothing in flight for this long is closed (FIN), like a client's keep-alive
// timeout; the next message between the pair opens a new one. Bounds memory (~17 KB per socket)
// when peers talk to ever new partners. TIME_WAIT lasts 2 x MSL; ports are not reused that soon
// here.
constexpr double kIdleCloseS = 10.0;
constexpr double kMaxSegLifetimeS = 1.0;

enum class DropReason { kLoss, kPartition, kDown };

class PacketNetwork final : public NetworkModel {
 public:
  PacketNetwork(const Topology& topology, const NetworkSpec& spec, uint64_t loss_seed,
                DeliverFn deliver);
  ~PacketNetwork() override;

  void send(PeerId from, PeerId to, Message msg, uint64_t wire_bytes) override;
  void peer_up(PeerId p) override { down_[p] = false; }
  void peer_down(PeerId p) override;
  const NetworkStats& stats() const override { return stats_; }

 private:
  struct Pending {
    Message msg;
    std::vector<uint8_t> encoded;  // spec.serialize: the message travels encoded
    uint64_t wire_bytes = 0;
    uint64_t end = 0;  // stream offset just past this message's last byte
  };
  struct Direction {  // one direction of a connection: bytes flow from sock[d] to sock[1 - d]
    std::deque<Pending> fifo;
    uint64_t enqueued = 0, written = 0, received = 0;
  };
  // sock[0] is at the initiator a, sock[1] at the acceptor b; dir[0] carries a -> b, dir[1] b -> a.
  struct Conn : std::enable_shared_from_this<Conn> {
    PeerId peer[2] = {0, 0};
    uint16_t port = 0;  // a's ephemeral port, to match the accepted socket
    ns3::Ptr<ns3::Socket> sock[2];
    Direction dir[2];
    bool dead = false;
    int64_t last_active_ns = 0;  // last send or delivery
  };

  static uint64_t pair_key(PeerId x, PeerId y) {
    return (uint64_t{std::min(x, y)} << 32) | std::max(x, y);
  }
  static uint64_t accept_key(PeerId a, uint16_t port) { return (uint64_t{a} << 16) | port; }

  std::shared_ptr<Conn> open(PeerId a, PeerId b);
  void attach(Conn* c, int side);
  void on_accept(PeerId b, ns3::Ptr<ns3::Socket> s, const ns3::Address& from);
  void pump(Conn* c, int d);
  void on_readable(Conn* c, int side);
  void kill(Conn* c, DropReason why);
  void arm_idle_timer(const std::shared_ptr<Conn>& c, double delay_s);
  void on_idle_timer(Conn* c);
  void count_drop(DropReason why, uint64_t n);
  static void detach(ns3::Ptr<ns3::Socket> s);

  const Topology& topology_;
  NetworkSpec spec_;
  DeliverFn deliver_;
  NetworkStats stats_;
  std::vector<bool> down_;
  AccessNetwork net_;
  HashRouting::AdmitFn admit_;
  std::vector<ns3::Ptr<ns3::Socket>> listeners_;
  std::unordered_map<uint64_t, std::shared_ptr<Conn>> conns_;    // lookup only, never iterated
  std::unordered_map<uint64_t, std::weak_ptr<Conn>> accepting_;  // lookup only
  std::vector<std::vector<std::shared_ptr<Conn>>> by_peer_;      // creation order, for peer_down
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

PacketNetwork::PacketNetwork(const Topology& topology, const NetworkSpec& spec, uint64_t loss_seed,
                             DeliverFn deliver)
    : topology_(topology), spec_(spec), deliver_(std::move(deliver)) {
  ns3::LogComponentDisableAll(ns3::LOG_LEVEL_ALL);
  ns3::Config::SetDefault("ns3::TcpSocket::SegmentSize",
                          ns3::UintegerValue(spec.tcp_segment_bytes));
  ns3::Config::SetDefault("ns3::TcpSocket::SndBufSize", ns3::UintegerValue(kTcpBufferBytes));
  ns3::Config::SetDefault("ns3::TcpSocket::RcvBufSize", ns3::UintegerValue(kTcpBufferBytes));
  ns3::Config::SetDefault("ns3::TcpSocketBase::MaxSegLifetime", ns3::DoubleValue(kMaxSegLifetimeS));

  const size_t n = topology.size();
  down_.assign(n, true);  // like the message model: a peer is reachable once it joined (peer_up)
  by_peer_.resize(n);
  admit_ = [this](uint32_t src, uint32_t dst) {
    return !down_[src] && !down_[dst] && !topology_.partitioned(src, dst);
  };
  net_ = build_access_network(topology, spec, loss_seed, &admit_);

  listeners_.reserve(n);
  for (PeerId p = 0; p < n; ++p) {
    auto s = ns3::Socket::CreateSocket(net_.hosts[p], ns3::TcpSocketFactory::GetTypeId());
    s->Bind(ns3::InetSocketAddress(ns3::Ipv4Address::GetAny(), kListenPort));
    s->Listen();
    s->SetAcceptCallback(ns3::MakeNullCallback<bool, ns3::Ptr<ns3::Socket>, const ns3::Address&>(),
                         ns3::Callback<void, ns3::Ptr<ns3::Socket>, const ns3::Address&>(
                             [this, p](ns3::Ptr<ns3::Socket> s, const ns3::Address& from) {
                               on_accept(p, s, from);
                             }));
    listeners_.push_back(s);
  }
}

PacketNetwork::~PacketNetwork() {
  *alive_ = false;
  for (auto& r : net_.routers) set_router_admit(r, nullptr);
  for (auto& l : listeners_) {
    l->SetAcceptCallback(ns3::MakeNullCallback<bool, ns3::Ptr<ns3::Socket>, const ns3::Address&>(),
                         ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>, const ns3::Address&>());
  }
  for (auto& list : by_peer_) {
    for (auto& c : list) {
      for (auto& s : c->sock) {
        if (s) detach(s);
      }
    }
  }
}

void PacketNetwork::send(PeerId from, PeerId to, Message msg, uint64_t wire_bytes) {
  stats_.messages_sent++;
  stats_.bytes_sent += wire_bytes;
  if (down_[from] || down_[to]) return count_drop(DropReason::kDown, 1);
  if (topology_.partitioned(from, to)) return count_drop(DropReason::kPartition, 1);
  if (from == to) {  // loopback: no link to charge; delivered in a later event all the same
    ns3::Simulator::ScheduleNow([this, alive = alive_, from, msg = std::move(msg), wire_bytes]() {
      if (!*alive) return;
      stats_.messages_delivered++;
      stats_.bytes_delivered += wire_bytes;
      deliver_(from, from, msg);
    });
    return;
  }
  std::shared_ptr<Conn> c;
  auto it = conns_.find(pair_key(from, to));
  c = it != conns_.end() ? it->second : open(from, to);
  const int d = c->peer[0] == from ? 0 : 1;
  Direction& dir = c->dir[d];
  dir.enqueued += std::max<uint64_t>(wire_bytes, 1);  // a message occupies at least one byte
  Pending pending;
  pending.wire_bytes = wire_bytes;
  pending.end = dir.enqueued;
  if (spec_.serialize) {
    pending.encoded = encode(msg);
  } else {
    pending.msg = std::move(msg);
  }
  dir.fifo.push_back(std::move(pending));
  c->last_active_ns = ns3::Simulator::Now().GetNanoSeconds();
  pump(c.get(), d);
}

std::shared_ptr<PacketNetwork::Conn> PacketNetwork::open(PeerId a, PeerId b) {
  stats_.connections_opened++;
  auto c = std::make_shared<Conn>();
  c->peer[0] = a;
  c->peer[1] = b;
  auto s = ns3::Socket::CreateSocket(net_.hosts[a], ns3::TcpSocketFactory::GetTypeId());
  s->Bind();
  ns3::Address local;
  s->GetSockName(local);
  c->port = ns3::InetSocketAddress::ConvertFrom(local).GetPort();
  c->sock[0] = s;
  attach(c.get(), 0);
  Conn* raw = c.get();
  s->SetConnectCallback(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>(),
                        ns3::Callback<void, ns3::Ptr<ns3::Socket>>(
                            [this, raw](ns3::Ptr<ns3::Socket>) { kill(raw, DropReason::kLoss); }));
  s->Connect(ns3::InetSocketAddress(peer_address(b), kListenPort));
  conns_[pair_key(a, b)] = c;
  accepting_[accept_key(a, c->port)] = c;
  by_peer_[a].push_back(c);
  by_peer_[b].push_back(c);
  arm_idle_timer(c, kIdleCloseS);
  return c;
}

void PacketNetwork::attach(Conn* c, int side) {
  auto& s = c->sock[side];
  s->SetRecvCallback(ns3::Callback<void, ns3::Ptr<ns3::Socket>>(
      [this, c, side](ns3::Ptr<ns3::Socket>) { on_readable(c, side); }));
  s->SetSendCallback(ns3::Callback<void, ns3::Ptr<ns3::Socket>, uint32_t>(
      [this, c, side](ns3::Ptr<ns3::Socket>, uint32_t) { pump(c, side); }));
  // TCP gave up (retries exhausted, e.g. a long partition), or the far side closed or reset.
  auto closed = [this, c](ns3::Ptr<ns3::Socket>) {
    kill(c, topology_.partitioned(c->peer[0], c->peer[1]) ? DropReason::kPartition
                                                          : DropReason::kLoss);
  };
  s->SetCloseCallbacks(ns3::Callback<void, ns3::Ptr<ns3::Socket>>(closed),
                       ns3::Callback<void, ns3::Ptr<ns3::Socket>>(closed));
}

void PacketNetwork::on_accept(PeerId b, ns3::Ptr<ns3::Socket> s, const ns3::Address& from) {
  const auto addr = ns3::InetSocketAddress::ConvertFrom(from);
  const PeerId a = addr.GetIpv4().Get() - kPeerAddressBase;
  auto it = accepting_.find(accept_key(a, addr.GetPort()));
  std::shared_ptr<Conn> c;
  if (it != accepting_.end()) {
    c = it->second.lock();
    accepting_.erase(it);
  }
  if (!c || c->dead || c->peer[1] != b) {  // a connection we already gave up on
    detach(s);
    s->Close();
    return;
  }
  c->sock[1] = s;
  attach(c.get(), 1);
  on_readable(c.get(), 1);  // bytes may have come with the handshake's last ACK
  if (!c->dead) pump(c.get(), 1);
}

void PacketNetwork::pump(Conn* c, int d) {
  ns3::Socket* s = ns3::PeekPointer(c->sock[d]);
  if (!s || c->dead) return;
  Direction& dir = c->dir[d];
  while (dir.written < dir.enqueued) {
    const uint32_t room = s->GetTxAvailable();
    if (room == 0) return;  // the send callback calls again when ACKs free space
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(dir.enqueued - dir.written, room));
    const int sent = s->Send(ns3::Create<ns3::Packet>(n));
    if (sent <= 0) return;
    dir.written += static_cast<uint64_t>(sent);
  }
}

void PacketNetwork::on_readable(Conn* c, int side) {
  if (c->dead) return;
  auto keep = c->shared_from_this();  // deliver_ may call peer_down, which kills c
  Direction& dir = c->dir[1 - side];
  // Read about a segment at a time: ns-3 concatenates (copies) everything one Recv returns, which
  // turns quadratic when a filled hole releases megabytes of buffered segments at once.
  ns3::Socket* s = ns3::PeekPointer(c->sock[side]);
  while (ns3::Ptr<ns3::Packet> p = s->Recv(spec_.tcp_segment_bytes, 0))
    dir.received += p->GetSize();
  const PeerId from = c->peer[1 - side], to = c->peer[side];
  while (!c->dead && !dir.fifo.empty() && dir.fifo.front().end <= dir.received) {
    Pending pending = std::move(dir.fifo.front());
    dir.fifo.pop_front();
    if (spec_.serialize) {
      auto decoded = decode(Bytes::adopt(std::move(pending.encoded)));
      CT_CHECK(decoded.ok());
      pending.msg = std::move(decoded.value());
    }
    stats_.messages_delivered++;
    stats_.bytes_delivered += pending.wire_bytes;
    c->last_active_ns = ns3::Simulator::Now().GetNanoSeconds();
    deliver_(from, to, std::move(pending.msg));
  }
}

void PacketNetwork::peer_down(PeerId p) {
  down_[p] = true;
  auto conns = std::move(by_peer_[p]);
  by_peer_[p].clear();
  for (auto& c : conns) kill(c.get(), DropReason::kDown);
}

void PacketNetwork::kill(Conn* c, DropReason why) {
  if (c->dead) return;
  c->dead = true;
  auto keep = c->shared_from_this();
  for (auto& dir : c->dir) {
    count_drop(why, dir.fifo.size());
    dir.fifo.clear();
  }
  for (auto& s : c->sock) {
    if (!s) continue;
    detach(s);
    s->Close();  // FIN, or retries into the void if the far side is gone; TCP gives up in time
    s = nullptr;
  }
  auto it = conns_.find(pair_key(c->peer[0], c->peer[1]));
  if (it != conns_.end() && it->second.get() == c) conns_.erase(it);
  accepting_.erase(accept_key(c->peer[0], c->port));
  for (PeerId p : c->peer) {
    auto& list = by_peer_[p];
    list.erase(std::remove(list.begin(), list.end(), keep), list.end());
  }
}

void PacketNetwork::arm_idle_timer(const std::shared_ptr<Conn>& c, double delay_s) {
  ns3::Simulator::Schedule(ns3::Seconds(delay_s),
                           [this, alive = alive_, weak = std::weak_ptr<Conn>(c)] {
                             if (!*alive) return;
                             if (auto c = weak.lock()) on_idle_timer(c.get());
                           });
}

void PacketNetwork::on_idle_timer(Conn* c) {
  if (c->dead) return;
  const bool busy = !c->dir[0].fifo.empty() || !c->dir[1].fifo.empty();
  const double idle_s = (ns3::Simulator::Now().GetNanoSeconds() - c->last_active_ns) * 1e-9;
  if (busy || idle_s < kIdleCloseS) {
    arm_idle_timer(c->shared_from_this(), busy ? kIdleCloseS : kIdleCloseS - idle_s);
    return;
  }
  kill(c, DropReason::kDown);  // nothing queued: a graceful close that drops nothing
}

void PacketNetwork::count_drop(DropReason why, uint64_t n) {
  switch (why) {
    case DropReason::kLoss:
      stats_.messages_dropped_loss += n;
      break;
    case DropReason::kPartition:
      stats_.messages_dropped_partition += n;
      break;
    case DropReason::kDown:
      stats_.messages_dropped_down += n;
      break;
  }
}

void PacketNetwork::detach(ns3::Ptr<ns3::Socket> s) {
  s->SetRecvCallback(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>());
  s->SetSendCallback(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>, uint32_t>());
  s->SetCloseCallbacks(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>(),
                       ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>());
  s->SetConnectCallback(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>(),
                        ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>());
}

}  // namespace

std::unique_ptr<NetworkModel> make_packet_network(const Topology& topology, const NetworkSpec& spec,
                                                  uint64_t loss_seed,
                                                  NetworkModel::DeliverFn deliver) {
  return std::make_unique<PacketNetwork>(topology, spec, loss_seed, std::move(deliver));
}

}  // namespace crowdtrain::sim
