// The live world's Runtime: one peer over ZeroMQ, in wall-clock time.
//
// Time: now() is the wall-clock time since the run's epoch (options.epoch_unix_ns, which every
// peer of a run is given alike; unset, the runtime's creation), so that peers started at different
// moments share one timeline, to within their clocks' skew: DHT expirations and scenario times
// mean the same on every peer. The wall clock is read once, at creation; after that now()
// advances with the steady clock, so a clock step during a run moves no timer.
//
// One ROUTER socket bound to the listen address receives; one DEALER per destination peer
// (connected lazily from the peer directory, routing id "p<self>") sends. A message is one frame of
// the codec's bytes. Frames that fail to decode, come from a malformed or unknown identity, or are
// multipart are counted ("net_rejected_messages"), logged and dropped; they never reach the app.
// Sends never block: a message ZeroMQ cannot take at once (a connection being set up or
// re-established, a full pipe) waits for it (options.connect_grace, bounded); one that still
// cannot go is dropped and counted ("net_send_dropped"). options.delay_ms holds every message back
// a drawn time first. With options.open_membership the directory grows by itself (see there).
//
// Client mode (options.client_mode, a peer behind NAT or a firewall): no ROUTER, no address. The
// peer calls out on its DEALERs and hears the answers on them; its hello says it is a client, so
// the peers it reached send to it through their ROUTER over the connection it opened (routing id
// "p<client>"), and never give it away as an address ("who" is not answered for a client). Only
// peers it has reached can reach it: workloads run it as a caller (a DHT node in client mode, an
// expert trainer).
//
// Security (options.curve_secret_key set): every socket speaks CurveZMQ (encrypted, each end
// authenticated by its Curve25519 key). Only peers in the directory may connect: a ZAP handler (a
// thread of this runtime's own, the one exception to the contract below) accepts a connecting key
// only if the directory holds it ("net_auth_refused" counts the others) and names the connection
// by that key's peer; a message whose routing identity is not the peer its key belongs to is
// rejected ("identity does not match its key"), so no peer can speak for another. Without a key
// the runtime is plain (unencrypted, unauthenticated: tests and trusted labs).
//
// Threading contract: single-threaded. Every method, and every callback, runs on the thread that
// calls run_until(); the one exception is stop(), which may be called from any thread or a signal
// handler. Several ZmqRuntimes may live in one process (each owns its ZeroMQ context).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "core/distribution.h"
#include "core/message.h"
#include "core/metrics.h"
#include "core/options.h"
#include "core/random.h"
#include "core/runtime.h"
#include "core/status.h"
#include "net/membership_wire.h"

namespace crowdtrain::net {

// Options, LibTorch builder style: ZmqRuntimeOptions().id(3).listen("tcp://127.0.0.1:5503").
struct ZmqRuntimeOptions {
#define CT_OPT(type, name, init) CT_OPTION(ZmqRuntimeOptions, type, name, init)
  CT_OPT(PeerId, id, 0)
  CT_OPT(std::string, listen, "tcp://127.0.0.1:*")  // "*" port: see ZmqRuntime::endpoint()
  CT_OPT(uint64_t, seed, 1)  // master seed; rng = derive_seed(seed, "peer", id)
  // The run's time 0 as wall-clock nanoseconds since 1970-01-01 UTC; unset: this runtime's
  // creation.
  CT_OPT(std::optional<int64_t>, epoch_unix_ns, std::nullopt)
  CT_OPT(size_t, max_message_bytes, 256u << 20)  // larger frames are refused on both sides
  CT_OPT(size_t, max_peers, 1000)                // directory size (one DEALER socket each)
  CT_OPT(size_t, max_timers, 1u << 20)           // pending timers; more is a bug (aborts)
  CT_OPT(int, send_hwm, 1000)                    // messages queued per destination
  CT_OPT(int, recv_hwm, 1000)                    // messages queued per incoming connection
  CT_OPT(int, reconnect_ivl_ms, 50)              // first reconnect delay ...
  CT_OPT(int, reconnect_ivl_max_ms, 250)         // ... doubling up to this
  CT_OPT(int, heartbeat_ivl_ms, 1000)            // ZMTP heartbeats detect a dead peer ...
  CT_OPT(int, heartbeat_timeout_ms, 3000)        // ... after this long without traffic
  CT_OPT(size_t, max_receives_per_turn, 1024)    // fairness between receiving and timers
  CT_OPT(size_t, max_timers_per_turn, 1024)
  // A turn of timers ends after this much wall time, so that a peer whose timers run back-to-back
  // compute (a trainer stepping flat out) still reads its messages between them; 0 = after every
  // timer.
  CT_OPT(Time, max_turn_time, Time(std::chrono::milliseconds(5)))
  CT_OPT(size_t, max_reject_events, 100)  // rejections logged as events; then counted only
  // An extra one-way delay (ms) drawn for every message from its own seeded stream. The message
  // leaves at once with a stamp frame (kDelayStampBytes: its due wall-clock time) and the receiver
  // holds it until then (a timer), so later messages may overtake it, and a sender busy computing
  // does not hold back what it sent, as no network does. Scenario network.delay_ms: the same
  // per-message delay the simulated world adds, here on real sockets; the peers' clocks must agree
  // (one machine, or NTP).
  CT_OPT(DistSpec, delay_ms, DistSpec::constant(0))
  // A stamp due further ahead than this is refused (a forged or skewed one would hold messages).
  CT_OPT(Time, max_delay_hold, Time(std::chrono::seconds(120)))
  // CurveZMQ keys of this peer (Z85, net/curve_keys.h); an empty secret key: plain mode.
  CT_OPT(std::string, curve_public_key, "")
  CT_OPT(std::string, curve_secret_key, "")
  // Messages that ZeroMQ cannot take at once (a connection being set up or re-established after
  // the peer restarted, a full pipe) wait in order, at most max_pending of them and
  // max_pending_bytes, while they make progress within connect_grace; then they are dropped.
  CT_OPT(Time, connect_grace, Time(std::chrono::seconds(3)))
  CT_OPT(size_t, max_pending, 256)
  CT_OPT(size_t, max_pending_bytes, size_t{64} << 20)
  // Open membership (net/membership_wire.h): a peer not in the directory joins by the hello that
  // opens each of its connections, and the address of a peer this one was not given is asked of
  // the peers it heard from last (resolve_fanout of them; messages to it wait up to
  // resolve_timeout, then are dropped as "net_unresolved"). The directory keeps at most max_peers:
  // the peers heard from longest ago make room, never those given by add_peer. Who may join: with
  // swarm_key, a peer whose hello proves that shared secret; without it, anyone in plain mode, and
  // in secure mode only the keys the directory holds.
  CT_OPT(bool, open_membership, false)
  CT_OPT(std::string, swarm_key, "")
  CT_OPT(Time, resolve_timeout, Time(std::chrono::seconds(3)))
  // A message to a peer not heard from for this long goes behind a fresh hello (at most one per
  // such period): a peer that restarted knows nobody, and its new incarnation would refuse the
  // sender as unknown for good if its connection came back while the sender had nothing to send.
  CT_OPT(Time, hello_refresh, Time(std::chrono::seconds(2)))
  CT_OPT(size_t, resolve_fanout, 3)
  // Client mode (see the top of this file); needs open_membership.
  CT_OPT(bool, client_mode, false)
#undef CT_OPT
};

// A peer known only by its address, for ZmqRuntime::join (and its public key in secure mode).
struct InitialPeer {
  std::string address;
  std::string public_key;
};

class ZmqRuntime : public Runtime {
 public:
  using Handler = std::function<void(PeerId from, Message msg)>;

  // Binds the ROUTER. Errors (a bad or busy address) name the address and ZeroMQ's reason.
  static Result<std::unique_ptr<ZmqRuntime>> create(const ZmqRuntimeOptions& options,
                                                    MetricsSink& sink);
  ~ZmqRuntime() override;
  ZmqRuntime(const ZmqRuntime&) = delete;
  ZmqRuntime& operator=(const ZmqRuntime&) = delete;

  // The run's time 0 (now() == 0) as wall-clock nanoseconds since 1970-01-01 UTC.
  int64_t epoch_unix_ns() const { return epoch_unix_ns_; }
  // The address others reach this peer at (the bound port resolved when listen used "*").
  // "" in client mode.
  const std::string& endpoint() const { return endpoint_; }
  // Adds or replaces a directory entry. A replaced address or key drops the old connection. In
  // secure mode the peer's public key (Z85) is required: it is whom this peer will talk to and
  // whom it lets in.
  Status add_peer(PeerId id, const std::string& address, const std::string& public_key = "");
  bool secure() const { return !options_.curve_secret_key().empty(); }
  size_t known_peers() const { return directory_.size(); }
  // Connects DEALERs to every directory entry now rather than on the first send.
  Status connect_all();
  // Warm-up before the app starts: (re)connects to every directory entry and waits until each
  // connection has completed its handshake, or `limit` passes. Fires no timer and receives nothing
  // meanwhile (arrivals wait in ZeroMQ's bounded queue). Returns how many peers are connected.
  Result<size_t> await_connections(Time limit);
  // Open membership: says hello to each initial peer (whose id this peer does not know yet) and
  // waits until each has answered with its own, or `limit` passes; returns the ids of those that
  // answered. Receives and fires timers meanwhile (no app should be running yet).
  Result<std::vector<PeerId>> join(const std::vector<InitialPeer>& initial, Time limit);
  // Receives every message delivered to this peer (an app's on_message). Messages that arrive
  // before it is set (while a peer joins or warms up) wait, at most kMaxEarlyMessages and
  // kMaxEarlyBytes of them (more are counted "net_undelivered" and dropped), and are delivered at
  // the next turn after.
  void set_handler(Handler handler);

  // Runs the loop (timers, receipt) until now() >= end or stop() is called.
  void run_until(Time end);
  // Ends run_until() at its next turn, for good: no timer fires and nothing is received afterwards.
  // Safe from any thread and from a signal handler.
  void stop() { stopped_.store(true); }
  bool stopped() const { return stopped_.load(); }

  // Runtime.
  PeerId self() const override { return options_.id(); }
  Time now() const override;
  TimerId schedule(Time delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;
  void send(PeerId to, Message msg) override;
  void compute(ComputeCost cost, std::function<void()> work, std::function<void()> done) override;
  Rng& rng() override { return rng_; }
  Metrics& metrics() override { return metrics_; }

 private:
  // A message on its way out: a small first frame (a delay stamp or the membership tag; none when
  // empty) and the body (shared with ZeroMQ until it has sent it).
  struct Outgoing {
    std::vector<uint8_t> head;
    std::shared_ptr<std::vector<uint8_t>> body;
    bool control = false;  // a membership message (not counted as the app's)
  };
  struct Destination {
    std::string address;     // "" for a client (reached through router_ by its routing id)
    std::string public_key;  // secure mode
    std::unique_ptr<zmq::socket_t> socket;  // null until the first send or connect_all()
    std::deque<Outgoing> pending;           // waiting for the connection (connect_grace), in order
    size_t pending_bytes = 0;
    Time pending_since{0};  // the last progress of `pending`
    bool flush_scheduled = false;
    bool given = true;    // by add_peer (never evicted), not learned
    bool client = false;  // a client peer's connection to this one's ROUTER (Hello::kClient)
    Time last_heard{0};
    Time last_hello = Time::min() / 2;  // the last hello sent to it (open membership)
  };
  // A message read off a socket, after the routing identity (ROUTER).
  struct Incoming {
    std::shared_ptr<zmq::message_t> payload = std::make_shared<zmq::message_t>();
    std::optional<int64_t> due_unix_ns;  // a delay stamp
    bool control = false;                // a membership message
    size_t extra_parts = 0;              // payload frames past the one allowed (refused)
  };
  struct Unresolved {  // messages to a peer whose address was asked for
    std::deque<Outgoing> waiting;
    TimerId timer = 0;
  };
  struct TimerEntry {
    Time deadline;
    TimerId id;
    bool operator>(const TimerEntry& o) const {
      return deadline != o.deadline ? deadline > o.deadline : id > o.id;
    }
  };

  ZmqRuntime(const ZmqRuntimeOptions& options, MetricsSink& sink);
  Status bind();
  // Sends at once; with `due` (this runtime's time), a stamp frame first asks the receiver to hold
  // the message until then.
  void send_now(PeerId to, const Message& msg, std::optional<Time> due = std::nullopt);
  // Sends `out` to `to`, or queues it until its connection is up (or its address known).
  void dispatch(PeerId to, Outgoing out);
  void enqueue(PeerId to, Destination& d, Outgoing out);
  // Whether ZeroMQ took the message. `route`: the routing id to send it to (a ROUTER).
  bool try_send(zmq::socket_t& s, Outgoing& out, const std::string& route = "");
  // Sends over `d`'s DEALER, or (a client) through the ROUTER; whether ZeroMQ took it.
  bool send_to(PeerId to, Destination& d, Outgoing& out);
  // Puts this peer's hello first in `d`'s queue (open membership).
  void queue_hello(Destination& d);
  void flush(PeerId to);
  void schedule_flush(PeerId to, Destination& d);
  void count_sent(const Outgoing& out, size_t bytes);
  void send_control(PeerId to, std::vector<uint8_t> body);
  Outgoing control_message(std::vector<uint8_t> body) const;
  std::vector<uint8_t> my_hello(uint8_t flags) const;
  // A membership message from the connection named `identity` (`key`: its CurveZMQ key, secure
  // mode).
  void on_control(const std::string& identity, const std::string& key, const zmq::message_t& body);
  void on_hello(PeerId from, const std::string& key, const Hello& h);
  // Adds a peer learned from the network (a hello or an answer), making room if the directory is
  // full; false when there is none.
  bool learn_peer(PeerId id, const std::string& address, const std::string& key,
                  bool client = false);
  void resolve(PeerId to, Outgoing out);
  void resolved(PeerId id);
  void heard_from(PeerId from);
  // Hands a decoded message to the handler, at once or (a delay stamp still ahead) when it is due.
  void deliver(PeerId from, Message msg, std::optional<int64_t> due_unix_ns);
  // A DEALER presenting this peer's routing id, for the peer whose CurveZMQ key is `server_key`
  // (secure mode).
  std::unique_ptr<zmq::socket_t> new_dealer(const std::string& server_key);
  // The DEALER to `to`, created and connected on first use; null when the address is refused.
  // With `monitor_reader`: its connection events go to that PAIR socket (hooked up before the
  // DEALER connects, so that no event is missed).
  zmq::socket_t* connect(PeerId to, Destination& d, zmq::socket_t* monitor_reader = nullptr);
  // Fires due timers (at most max_timers_per_turn, for at most max_turn_time); returns the next
  // deadline, if any.
  std::optional<Time> fire_due_timers();
  // Reads what waits on the ROUTER (at most max_receives_per_turn messages).
  void receive_some();
  // Client mode: reads what waits on the DEALER to `peer` (its answers).
  void receive_from(PeerId peer, zmq::socket_t& s, const std::string& key);
  // Reads the frames of a message whose first payload frame `in.payload` holds.
  void read_rest(zmq::socket_t& s, Incoming& in);
  // Checks and hands on a message read from the connection named `identity` (`key`: its CurveZMQ
  // key, secure mode).
  void accept(const std::string& identity, const std::string& key, Incoming& in);
  // join() in client mode: the initial peers' answers on the sockets join() opened.
  void receive_answers(std::vector<std::unique_ptr<zmq::socket_t>>& sockets,
                       const std::vector<InitialPeer>& initial);
  // Waits up to `wait_ms` for something to read, then reads it (the ROUTER, or a client's DEALERs).
  void poll_and_receive(long wait_ms);
  void reject(std::string_view reason, std::string_view identity);
  void compact_timers();
  // Secure mode: binds the ZAP endpoint and starts its thread (before the ROUTER binds).
  Status start_authenticator();
  void authenticate_loop(zmq::socket_t* zap);
  void report_refusals();

  ZmqRuntimeOptions options_;
  std::chrono::steady_clock::time_point start_;
  Time start_offset_{0};  // now() at start_: wall clock at creation minus the epoch
  int64_t epoch_unix_ns_ = 0;
  Rng rng_;
  Rng delay_rng_;  // options.delay_ms
  bool has_delay_;
  Metrics metrics_;
  Handler handler_;
  std::atomic<bool> stopped_{false};
  std::string endpoint_;

  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timer_heap_;
  std::unordered_map<TimerId, std::function<void()>> timers_;  // pending (not fired or cancelled)
  TimerId next_timer_ = 1;

  // Secure mode: the keys the directory holds, by Z85 public key (shared with the ZAP thread).
  std::mutex auth_mu_;
  std::map<std::string, PeerId> allowed_keys_;
  std::atomic<uint64_t> auth_refused_{0};
  uint64_t auth_refused_reported_ = 0;
  std::atomic<bool> auth_stop_{false};

  // Destroyed in reverse order: sockets before their context (the ZAP thread is joined first).
  zmq::context_t context_;
  std::unique_ptr<zmq::socket_t> zap_;
  std::thread auth_thread_;
  std::unique_ptr<zmq::socket_t> router_;
  std::map<PeerId, Destination> directory_;
  std::map<PeerId, Unresolved> unresolved_;
  std::deque<PeerId> recent_senders_;       // the last distinct peers heard from, newest first
  std::vector<zmq_pollitem_t> poll_items_;  // poll_and_receive's, kept between turns
  std::vector<PeerId> poll_peers_;          // the peers of poll_items_ after the ROUTER's
  std::vector<PeerId> answered_;            // join(): initial peers that answered
  std::deque<std::pair<PeerId, Message>> early_;  // arrived before the handler was set
  size_t early_bytes_ = 0;
  uint64_t rejected_logged_ = 0;
  // Numbers the monitor endpoints: each await_connections() binds fresh ones, since a closed
  // monitor's inproc endpoint is released asynchronously and reusing its name may fail.
  uint64_t monitor_seq_ = 0;
};

// Messages kept for a handler not set yet (ZmqRuntime::set_handler), and their bytes.
constexpr size_t kMaxEarlyMessages = 1024;
constexpr size_t kMaxEarlyBytes = size_t{64} << 20;

// The delay stamp frame that precedes a held-back message: "ctdl" + the due wall-clock time in
// nanoseconds since 1970-01-01 UTC (int64, little-endian).
constexpr size_t kDelayStampBytes = 12;

// The ROUTER identity a peer's DEALERs present: "p" + decimal id.
std::string peer_identity(PeerId id);
// Strict inverse of peer_identity(): no sign, no leading zeros, no kNoPeer, nothing trailing.
std::optional<PeerId> parse_peer_identity(std::string_view identity);

}  // namespace crowdtrain::net
