#include "net/zmq_runtime.h"

#include <zmq.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "net/curve_keys.h"

namespace crowdtrain::net {

namespace {

constexpr size_t kMaxIdentityBytes = 11;  // "p" + 10 digits
constexpr size_t kRecentSenders = 8;      // asked first where an unknown peer is
constexpr size_t kMaxUnresolved = 256;    // peers whose address is being asked for at once
constexpr Time kFirstFlushRetry = std::chrono::milliseconds(1);
constexpr Time kJoinPoll = std::chrono::milliseconds(10);
constexpr Time kMaxPoll = std::chrono::milliseconds(200);
constexpr char kZapDomain[] = "crowdtrain";
constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";  // RFC 27's fixed address
constexpr int kZapPollMs = 100;
constexpr char kDelayStampMagic[4] = {'c', 't', 'd', 'l'};

std::array<uint8_t, kDelayStampBytes> delay_stamp(int64_t due_unix_ns) {
  std::array<uint8_t, kDelayStampBytes> b{};
  std::memcpy(b.data(), kDelayStampMagic, sizeof(kDelayStampMagic));
  const auto u = static_cast<uint64_t>(due_unix_ns);
  for (size_t i = 0; i < 8; ++i) b[4 + i] = static_cast<uint8_t>(u >> (8 * i));
  return b;
}

// The due time a delay stamp frame holds; nullopt when the frame is not one.
std::optional<int64_t> parse_delay_stamp(const zmq::message_t& frame) {
  if (frame.size() != kDelayStampBytes) return std::nullopt;
  const auto* p = static_cast<const uint8_t*>(frame.data());
  if (std::memcmp(p, kDelayStampMagic, sizeof(kDelayStampMagic)) != 0) return std::nullopt;
  uint64_t u = 0;
  for (size_t i = 0; i < 8; ++i) u |= static_cast<uint64_t>(p[4 + i]) << (8 * i);
  return static_cast<int64_t>(u);
}

// Applies the options every socket of a peer shares.
void set_common_options(zmq::socket_t& s, const ZmqRuntimeOptions& o) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(o.max_message_bytes()));
  s.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms());
  s.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms());
  s.set(zmq::sockopt::heartbeat_ivl, o.heartbeat_ivl_ms());
  s.set(zmq::sockopt::heartbeat_timeout, o.heartbeat_timeout_ms());
  s.set(zmq::sockopt::heartbeat_ttl, o.heartbeat_timeout_ms());
}

// Owns an encoded frame until ZeroMQ has sent it (zero-copy send).
// (the hint: a reference of the body's own, so that a send that fails leaves the body to its
// Outgoing).
// The first frame of a message waiting on `s`, without blocking; false when none waits or a signal
// interrupted the read.
bool recv_waiting(zmq::socket_t& s, zmq::message_t& frame) {
  try {
    return s.recv(frame, zmq::recv_flags::dontwait).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return false;
    throw;
  }
}

void free_encoded(void* /*data*/, void* hint) {
  delete static_cast<std::shared_ptr<std::vector<uint8_t>>*>(hint);
}

}  // namespace

std::string peer_identity(PeerId id) { return "p" + std::to_string(id); }

std::optional<PeerId> parse_peer_identity(std::string_view identity) {
  if (identity.size() < 2 || identity.size() > kMaxIdentityBytes || identity[0] != 'p') return {};
  const std::string_view digits = identity.substr(1);
  if (digits.size() > 1 && digits[0] == '0') return {};
  uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return {};
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= kNoPeer) return {};
  return static_cast<PeerId>(v);
}

ZmqRuntime::ZmqRuntime(const ZmqRuntimeOptions& options, MetricsSink& sink)
    : options_(options),
      start_(std::chrono::steady_clock::now()),
      rng_(derive_seed(options.seed(), "peer", options.id())),
      delay_rng_(derive_seed(options.seed(), "delay", options.id())),
      has_delay_(options.delay_ms().kind != DistSpec::Kind::kConstant ||
                 options.delay_ms().value > 0),
      metrics_(&sink, options.id(), [this]() { return now(); }),
      context_(1) {
  const int64_t wall_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  epoch_unix_ns_ = options.epoch_unix_ns().value_or(wall_ns);
  start_offset_ = Time(wall_ns - epoch_unix_ns_);
  context_.set(zmq::ctxopt::blocky, 0);
  context_.set(zmq::ctxopt::max_sockets, static_cast<int>(options.max_peers() + 8));
}

ZmqRuntime::~ZmqRuntime() {
  directory_.clear();
  router_.reset();
  auth_stop_.store(true);
  if (auth_thread_.joinable()) auth_thread_.join();
  zap_.reset();
}

Result<std::unique_ptr<ZmqRuntime>> ZmqRuntime::create(const ZmqRuntimeOptions& options,
                                                       MetricsSink& sink) {
  if (options.id() == kNoPeer)
    return Status::error("zmq runtime: peer id " + std::to_string(kNoPeer) + " is reserved");
  if (options.epoch_unix_ns() && *options.epoch_unix_ns() < 0) {
    return Status::error("zmq runtime: epoch_unix_ns must be >= 0 (seconds since 1970), got " +
                         std::to_string(*options.epoch_unix_ns()));
  }
  const bool secure = !options.curve_secret_key().empty();
  if (secure && (!valid_curve_key(options.curve_secret_key()) ||
                 !valid_curve_key(options.curve_public_key()))) {
    return Status::error("zmq runtime: curve keys must be 40 Z85 characters each");
  }
  if (secure && !curve_available()) {
    return Status::error("zmq runtime: this libzmq has no CURVE support");
  }
  if (options.client_mode() && !options.open_membership()) {
    return Status::error(
        "zmq runtime: client mode needs open membership (peers learn a client "
        "from its hello)");
  }
  if (options.max_message_bytes() < kHeaderBytes) {
    return Status::error("zmq runtime: max_message_bytes must be >= " +
                         std::to_string(kHeaderBytes));
  }
  std::unique_ptr<ZmqRuntime> rt(new ZmqRuntime(options, sink));
  Status st = rt->bind();
  if (!st.ok()) return st;
  return rt;
}

Status ZmqRuntime::bind() {
  if (options_.client_mode()) return Status::ok_status();  // calls out only: nothing to bind
  if (secure()) {
    if (Status s = start_authenticator(); !s.ok()) return s;
  }
  try {
    router_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::router);
    set_common_options(*router_, options_);
    if (secure()) {
      router_->set(zmq::sockopt::curve_server, 1);
      router_->set(zmq::sockopt::curve_secretkey, options_.curve_secret_key());
      router_->set(zmq::sockopt::zap_domain, std::string(kZapDomain));
    }
    router_->set(zmq::sockopt::rcvhwm, options_.recv_hwm());
    // A restarted peer (same identity, new connection) takes over from its old incarnation.
    router_->set(zmq::sockopt::router_handover, 1);
    // A message to a client whose connection is gone fails (and waits, connect_grace) rather
    // than vanish.
    router_->set(zmq::sockopt::router_mandatory, 1);
    router_->bind(options_.listen());
    endpoint_ = router_->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    router_.reset();
    return Status::error("zmq runtime: cannot listen on '" + options_.listen() + "': " + e.what());
  }
  return Status::ok_status();
}

Status ZmqRuntime::add_peer(PeerId id, const std::string& address, const std::string& public_key) {
  if (id == kNoPeer)
    return Status::error("peer directory: peer id " + std::to_string(id) + " is reserved");
  if (!valid_peer_address(address)) {
    return Status::error("peer directory: peer " + std::to_string(id) + ": bad address '" +
                         address + "' (want e.g. tcp://host:port)");
  }
  auto it = directory_.find(id);
  if (it == directory_.end() && directory_.size() >= options_.max_peers()) {
    return Status::error("peer directory: more than " + std::to_string(options_.max_peers()) +
                         " peers");
  }
  if (secure() && !valid_curve_key(public_key)) {
    return Status::error("peer directory: peer " + std::to_string(id) +
                         ": a secure runtime needs its public key (40 Z85 characters), got '" +
                         public_key + "'");
  }
  Destination& d = directory_[id];
  if (d.address != address || d.public_key != public_key) d.socket.reset();
  d.given = true;
  if (secure()) {
    std::lock_guard<std::mutex> lock(auth_mu_);
    if (!d.public_key.empty()) allowed_keys_.erase(d.public_key);
    allowed_keys_[public_key] = id;
  }
  d.address = address;
  d.public_key = public_key;
  return Status::ok_status();
}

Status ZmqRuntime::connect_all() {
  for (auto& [id, d] : directory_) {
    if (!connect(id, d)) {
      return Status::error("peer directory: cannot connect to peer " + std::to_string(id) +
                           " at '" + d.address + "'");
    }
  }
  return Status::ok_status();
}

Result<size_t> ZmqRuntime::await_connections(Time limit) {
  const Time deadline = now() + limit;
  struct Watch {
    zmq::socket_t* dealer;
    zmq::socket_t events;
    bool up;
  };
  std::vector<Watch> watches;
  watches.reserve(directory_.size());
  for (auto& [id, d] : directory_) {
    // A fresh socket, so that its handshake is seen by the monitor attached before it connects.
    d.socket.reset();
    zmq::socket_t events(context_, zmq::socket_type::pair);
    events.set(zmq::sockopt::linger, 0);
    zmq::socket_t* s = connect(id, d, &events);
    if (!s) {
      return Status::error("peer directory: cannot connect to peer " + std::to_string(id) +
                           " at '" + d.address + "'");
    }
    watches.push_back(Watch{s, std::move(events), false});
  }
  size_t up = 0;
  std::vector<zmq_pollitem_t> items;
  for (Watch& w : watches) items.push_back(zmq_pollitem_t{w.events.handle(), 0, ZMQ_POLLIN, 0});
  while (up < watches.size() && !stopped_.load()) {
    const Time wait = std::min(deadline - now(), kMaxPoll);
    if (wait.count() <= 0) break;
    const int rc = zmq_poll(items.data(), static_cast<int>(items.size()),
                            static_cast<long>((wait.count() + 999999) / 1000000));
    if (rc < 0 && zmq_errno() != EINTR) throw zmq::error_t();
    for (size_t i = 0; rc > 0 && i < watches.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      // An event is two frames: {u16 event, u32 value} and the endpoint.
      zmq::message_t head, endpoint;
      while (watches[i].events.recv(head, zmq::recv_flags::dontwait)) {
        if (head.more()) (void)watches[i].events.recv(endpoint, zmq::recv_flags::none);
        uint16_t event = 0;
        if (head.size() >= sizeof(event)) std::memcpy(&event, head.data(), sizeof(event));
        const bool was_up = watches[i].up;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) watches[i].up = true;
        if (event == ZMQ_EVENT_DISCONNECTED) watches[i].up = false;
        if (watches[i].up != was_up) watches[i].up ? ++up : --up;
      }
    }
  }
  for (Watch& w : watches) zmq_socket_monitor(w.dealer->handle(), nullptr, 0);
  return up;
}

std::unique_ptr<zmq::socket_t> ZmqRuntime::new_dealer(const std::string& server_key) {
  auto s = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  set_common_options(*s, options_);
  s->set(zmq::sockopt::sndhwm, options_.send_hwm());
  // Only a client hears anything back on its DEALERs.
  s->set(zmq::sockopt::rcvhwm, options_.client_mode() ? options_.recv_hwm() : 1);
  s->set(zmq::sockopt::immediate, 1);  // no queueing for a peer that is not connected
  s->set(zmq::sockopt::routing_id, peer_identity(self()));
  if (secure()) {
    s->set(zmq::sockopt::curve_serverkey, server_key);
    s->set(zmq::sockopt::curve_publickey, options_.curve_public_key());
    s->set(zmq::sockopt::curve_secretkey, options_.curve_secret_key());
  }
  return s;
}

zmq::socket_t* ZmqRuntime::connect(PeerId to, Destination& d, zmq::socket_t* monitor_reader) {
  if (d.socket) return d.socket.get();
  try {
    std::unique_ptr<zmq::socket_t> s = new_dealer(d.public_key);
    if (monitor_reader) {
      const std::string monitor =
          "inproc://ct-monitor-" + std::to_string(to) + "-" + std::to_string(++monitor_seq_);
      if (zmq_socket_monitor(s->handle(), monitor.c_str(),
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0) {
        throw zmq::error_t();
      }
      monitor_reader->connect(monitor);
    }
    s->connect(d.address);
    d.socket = std::move(s);
    if (options_.open_membership()) {  // a connection opens with who this peer is
      if (d.pending.empty()) d.pending_since = now();
      queue_hello(d);
      schedule_flush(to, d);
    }
  } catch (const zmq::error_t& e) {
    metrics_.count("net_connect_failed");
    metrics_.event("net_connect_failed",
                   {{"to", to}, {"address", std::string_view(d.address)}, {"error", e.what()}});
    return nullptr;
  }
  return d.socket.get();
}

Time ZmqRuntime::now() const {
  return start_offset_ +
         std::chrono::duration_cast<Time>(std::chrono::steady_clock::now() - start_);
}

TimerId ZmqRuntime::schedule(Time delay, std::function<void()> fn) {
  CT_CHECK(delay.count() >= 0);
  CT_CHECK(timers_.size() < options_.max_timers());
  const TimerId id = next_timer_++;
  timers_.emplace(id, std::move(fn));
  timer_heap_.push(TimerEntry{now() + delay, id});
  if (timer_heap_.size() > 2 * timers_.size() + 1024) compact_timers();
  return id;
}

void ZmqRuntime::cancel(TimerId id) { timers_.erase(id); }

// Drops heap entries of cancelled timers, so that cancel-heavy engines keep the heap bounded.
void ZmqRuntime::compact_timers() {
  std::vector<TimerEntry> live;
  live.reserve(timers_.size());
  while (!timer_heap_.empty()) {
    if (timers_.count(timer_heap_.top().id)) live.push_back(timer_heap_.top());
    timer_heap_.pop();
  }
  for (const TimerEntry& e : live) timer_heap_.push(e);
}

std::optional<Time> ZmqRuntime::fire_due_timers() {
  size_t fired = 0;
  const Time turn_start = now();
  while (!timer_heap_.empty()) {
    const TimerEntry top = timer_heap_.top();
    auto it = timers_.find(top.id);
    if (it == timers_.end()) {  // cancelled
      timer_heap_.pop();
      continue;
    }
    const Time t = now();
    if (top.deadline > t || fired >= options_.max_timers_per_turn() || stopped_.load() ||
        (fired > 0 && t - turn_start >= options_.max_turn_time())) {
      return top.deadline;
    }
    timer_heap_.pop();
    std::function<void()> fn = std::move(it->second);
    timers_.erase(it);
    ++fired;
    fn();
  }
  return std::nullopt;
}

void ZmqRuntime::send(PeerId to, Message msg) {
  std::optional<Time> due;
  if (has_delay_) {
    const double ms = options_.delay_ms().sample(delay_rng_);
    if (ms > 0) due = now() + from_seconds(ms * 1e-3);
  }
  send_now(to, msg, due);
}

void ZmqRuntime::send_now(PeerId to, const Message& msg, std::optional<Time> due) {
  if (msg.wire_size() > options_.max_message_bytes()) {
    metrics_.count("net_send_oversize");
    metrics_.event("net_send_oversize", {{"to", to}, {"bytes", uint64_t{msg.wire_size()}}});
    return;
  }
  Outgoing out;
  if (due) {
    const auto stamp = delay_stamp(epoch_unix_ns_ + due->count());
    out.head.assign(stamp.begin(), stamp.end());
  }
  out.body = std::make_shared<std::vector<uint8_t>>(encode(msg));
  dispatch(to, std::move(out));
}

void ZmqRuntime::dispatch(PeerId to, Outgoing out) {
  auto it = directory_.find(to);
  if (it != directory_.end()) {
    enqueue(to, it->second, std::move(out));
  } else if (options_.open_membership() && to != self()) {
    resolve(to, std::move(out));
  } else {
    metrics_.count("net_send_unknown_peer");
  }
}

void ZmqRuntime::enqueue(PeerId to, Destination& d, Outgoing out) {
  if (!d.client && !connect(to, d)) return;
  if (options_.open_membership() && !d.client && !out.control &&
      now() - d.last_heard >= options_.hello_refresh() &&
      now() - d.last_hello >= options_.hello_refresh()) {
    d.last_hello = now();  // not heard from lately: it may have restarted and forgotten this peer
    enqueue(to, d, control_message(my_hello(0)));
  }
  const size_t bytes = out.body->size() + out.head.size();
  if (d.pending.empty()) {
    if (send_to(to, d, out)) {
      count_sent(out, bytes);
      return;
    }
    d.pending_since = now();
    // The connection is down or being re-established: the peer may have restarted, and its new
    // incarnation must hear who this is before anything else (a client says hello itself).
    if (options_.open_membership() && !d.client) queue_hello(d);
  }
  // Not taken (a connection being set up or re-established, or a full pipe): it waits behind the
  // others while they make progress within connect_grace, within the queue's bounds.
  if (now() - d.pending_since < options_.connect_grace() &&
      d.pending.size() < options_.max_pending() &&
      d.pending_bytes + bytes <= options_.max_pending_bytes()) {
    d.pending_bytes += bytes;
    d.pending.push_back(std::move(out));
    schedule_flush(to, d);
    return;
  }
  metrics_.count(out.control ? "net_control_dropped" : "net_send_dropped");
}

void ZmqRuntime::queue_hello(Destination& d) {
  d.last_hello = now();
  Outgoing hello = control_message(my_hello(0));
  d.pending_bytes += hello.body->size() + hello.head.size();
  d.pending.push_front(std::move(hello));
}

bool ZmqRuntime::send_to(PeerId to, Destination& d, Outgoing& out) {
  if (d.client) return router_ && try_send(*router_, out, peer_identity(to));
  return d.socket && try_send(*d.socket, out);
}

bool ZmqRuntime::try_send(zmq::socket_t& s, Outgoing& out, const std::string& route) {
  const std::shared_ptr<std::vector<uint8_t>>& body = out.body;
  zmq::send_result_t sent;
  try {
    if (!route.empty()) {  // ROUTER_MANDATORY: refused here when the route is gone or full
      sent = s.send(zmq::buffer(route), zmq::send_flags::dontwait | zmq::send_flags::sndmore);
      if (!sent) return false;
    }
    if (!out.head.empty()) {  // the parts of a message are queued together or not at all
      sent = s.send(zmq::buffer(out.head), zmq::send_flags::dontwait | zmq::send_flags::sndmore);
      if (!sent) return false;
    }
    zmq::message_t m(body->data(), body->size(), free_encoded,
                     new std::shared_ptr<std::vector<uint8_t>>(body));
    sent = s.send(m, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    sent.reset();
  }
  return sent.has_value();
}

void ZmqRuntime::count_sent(const Outgoing& out, size_t bytes) {
  if (out.control) {
    metrics_.count("net_control_sent");
    return;
  }
  metrics_.count("messages_sent");
  metrics_.count("net_bytes_sent", static_cast<int64_t>(bytes));
}

void ZmqRuntime::schedule_flush(PeerId to, Destination& d) {
  if (d.flush_scheduled || d.pending.empty()) return;
  d.flush_scheduled = true;
  schedule(kFirstFlushRetry, [this, to] { flush(to); });
}

// Sends what waits, in order; retries shortly while the grace lasts, then drops it all.
void ZmqRuntime::flush(PeerId to) {
  auto it = directory_.find(to);
  if (it == directory_.end()) return;
  Destination& d = it->second;
  d.flush_scheduled = false;
  while (!d.pending.empty() && (d.socket || d.client)) {
    Outgoing& out = d.pending.front();
    const size_t bytes = out.body->size() + out.head.size();
    if (!send_to(to, d, out)) break;
    count_sent(out, bytes);
    d.pending_bytes -= bytes;
    d.pending.pop_front();
    d.pending_since = now();  // progress: the rest waits afresh
  }
  if (d.pending.empty()) return;
  const Time waited = now() - d.pending_since;
  if ((!d.socket && !d.client) || waited >= options_.connect_grace()) {
    for (const Outgoing& out : d.pending) {
      metrics_.count(out.control ? "net_control_dropped" : "net_send_dropped");
    }
    d.pending.clear();
    d.pending_bytes = 0;
    return;
  }
  // Retries soon at first, then less often: about four times per doubling of the wait so far.
  d.flush_scheduled = true;
  schedule(std::clamp(waited / 4, kFirstFlushRetry, Time(std::chrono::milliseconds(100))),
           [this, to] { flush(to); });
}

ZmqRuntime::Outgoing ZmqRuntime::control_message(std::vector<uint8_t> body) const {
  Outgoing out;
  out.head.assign(std::begin(kControlTag), std::end(kControlTag));
  out.body = std::make_shared<std::vector<uint8_t>>(std::move(body));
  out.control = true;
  return out;
}

std::vector<uint8_t> ZmqRuntime::my_hello(uint8_t flags) const {
  Hello h;
  h.flags = flags | (options_.client_mode() ? Hello::kClient : 0);
  if (flags & Hello::kAnswer) h.id = self();
  h.address = endpoint_;
  if (!options_.swarm_key().empty()) {
    h.mac = hello_mac(options_.swarm_key(), self(), options_.curve_public_key(), endpoint_);
  }
  return encode_hello(h);
}

void ZmqRuntime::send_control(PeerId to, std::vector<uint8_t> body) {
  dispatch(to, control_message(std::move(body)));
}

void ZmqRuntime::heard_from(PeerId from) {
  auto it = directory_.find(from);
  if (it != directory_.end()) it->second.last_heard = now();
  if (!recent_senders_.empty() && recent_senders_.front() == from) return;
  recent_senders_.erase(std::remove(recent_senders_.begin(), recent_senders_.end(), from),
                        recent_senders_.end());
  recent_senders_.push_front(from);
  if (recent_senders_.size() > kRecentSenders) recent_senders_.pop_back();
}

bool ZmqRuntime::learn_peer(PeerId id, const std::string& address, const std::string& key,
                            bool client) {
  if (!directory_.count(id) && directory_.size() >= options_.max_peers()) {
    auto oldest = directory_.end();
    for (auto it = directory_.begin(); it != directory_.end(); ++it) {
      if (!it->second.given &&
          (oldest == directory_.end() || it->second.last_heard < oldest->second.last_heard)) {
        oldest = it;
      }
    }
    if (oldest == directory_.end()) return false;
    metrics_.count("net_peers_evicted");
    directory_.erase(oldest);
  }
  const bool fresh = !directory_.count(id);
  Destination& d = directory_[id];
  if (d.address != address || d.public_key != key || d.client != client) d.socket.reset();
  if (fresh) {
    d.given = false;
    metrics_.count(client ? "net_clients_learned" : "net_peers_learned");
  }
  d.address = address;
  d.public_key = key;
  d.client = client;
  d.last_heard = now();
  if (!d.pending.empty() && (client || connect(id, d))) schedule_flush(id, d);
  return true;
}

void ZmqRuntime::on_hello(PeerId from, const std::string& key, const Hello& h) {
  auto it = directory_.find(from);
  if (it != directory_.end() && secure() && it->second.public_key != key) {
    reject("hello: identity does not match its key", peer_identity(from));
    return;
  }
  if (!options_.swarm_key().empty() &&
      h.mac != hello_mac(options_.swarm_key(), from, key, h.address)) {
    reject("hello does not prove the swarm key", peer_identity(from));
    return;
  }
  if (it == directory_.end() && !options_.open_membership()) {
    reject("unknown peer", peer_identity(from));
    return;
  }
  const bool client = h.flags & Hello::kClient;
  if (client && options_.client_mode()) {  // nobody could answer it: two clients never meet
    reject("hello: a client reached a client", peer_identity(from));
    return;
  }
  const bool is_new =
      it == directory_.end() || it->second.address != h.address || it->second.client != client;
  if (is_new && !learn_peer(from, h.address, key, client)) {
    reject("directory full", peer_identity(from));
    return;
  }
  heard_from(from);
  if (is_new) {
    metrics_.event("net_peer_joined",
                   {{"peer", from}, {"address", std::string_view(client ? "client" : h.address)}});
  }
  if (h.flags & Hello::kAnswer) answered_.push_back(from);
  if (h.flags & Hello::kAnswerMe) send_control(from, my_hello(Hello::kAnswer));
}

void ZmqRuntime::on_control(const std::string& identity, const std::string& key,
                            const zmq::message_t& body) {
  const std::optional<PeerId> from = parse_peer_identity(identity);
  if (!from) return reject("malformed identity", identity);
  Result<ControlMessage> m = decode_control(static_cast<const uint8_t*>(body.data()), body.size());
  if (!m.ok()) return reject(m.error(), identity);
  metrics_.count("net_control_received");
  if (m.value().kind == ControlKind::kHello) {
    const Hello& h = m.value().hello;
    if ((h.flags & Hello::kAnswer) && h.id != *from) {
      return reject("hello: an answer that names another peer", identity);
    }
    return on_hello(*from, key, h);
  }
  auto it = directory_.find(*from);
  if (it == directory_.end()) return reject("unknown peer", identity);
  if (secure() && it->second.public_key != key) {
    return reject("identity does not match its key", identity);
  }
  heard_from(*from);
  if (m.value().kind == ControlKind::kWho) {
    auto known = directory_.find(m.value().who);
    // A client has no address to give away: only the peers it reached can reach it.
    if (known != directory_.end() && known->first != *from && !known->second.client) {
      send_control(*from,
                   encode_is({known->first, known->second.address, known->second.public_key}));
    } else if (m.value().who == self() && !options_.client_mode()) {
      send_control(*from, encode_is({self(), endpoint_, options_.curve_public_key()}));
    }
    return;
  }
  const PeerRecord& r = m.value().is;  // an answer: used only if this peer asked
  if (!unresolved_.count(r.id) || r.id == self()) return;
  if (secure() && r.public_key.empty()) return reject("is: no public key", identity);
  if (learn_peer(r.id, r.address, r.public_key)) resolved(r.id);
}

// Asks where `to` is of the peers heard from last (then of those given), holding `out` meanwhile.
void ZmqRuntime::resolve(PeerId to, Outgoing out) {
  auto it = unresolved_.find(to);
  if (it != unresolved_.end()) {
    if (it->second.waiting.size() < options_.max_pending()) {
      it->second.waiting.push_back(std::move(out));
    } else {
      metrics_.count("net_unresolved");
    }
    return;
  }
  std::vector<PeerId> ask(recent_senders_.begin(), recent_senders_.end());
  for (const auto& [id, d] : directory_) {
    if (d.given) ask.push_back(id);
  }
  std::vector<PeerId> asked;
  for (PeerId p : ask) {
    if (asked.size() >= options_.resolve_fanout()) break;
    if (p == to || p == self() || !directory_.count(p)) continue;
    if (std::find(asked.begin(), asked.end(), p) != asked.end()) continue;
    asked.push_back(p);
  }
  if (asked.empty() || unresolved_.size() >= kMaxUnresolved) {
    metrics_.count("net_unresolved");
    return;
  }
  Unresolved& u = unresolved_[to];
  u.waiting.push_back(std::move(out));
  u.timer = schedule(options_.resolve_timeout(), [this, to] {
    auto w = unresolved_.find(to);
    if (w == unresolved_.end()) return;
    metrics_.count("net_unresolved", static_cast<int64_t>(w->second.waiting.size()));
    unresolved_.erase(w);
  });
  metrics_.count("net_resolve_asked");
  for (PeerId p : asked) send_control(p, encode_who(to));
}

void ZmqRuntime::resolved(PeerId id) {
  auto it = unresolved_.find(id);
  if (it == unresolved_.end()) return;
  Unresolved u = std::move(it->second);
  unresolved_.erase(it);
  cancel(u.timer);
  metrics_.count("net_resolved");
  auto d = directory_.find(id);
  for (Outgoing& out : u.waiting) {
    if (d == directory_.end()) break;
    enqueue(id, d->second, std::move(out));
  }
}

Result<std::vector<PeerId>> ZmqRuntime::join(const std::vector<InitialPeer>& initial, Time limit) {
  const Time deadline = now() + limit;
  std::vector<std::unique_ptr<zmq::socket_t>> sockets;
  std::vector<bool> said;
  for (const InitialPeer& p : initial) {
    if (!valid_peer_address(p.address)) {
      return Status::error("initial peer: bad address '" + p.address +
                           "' (want e.g. tcp://host:port)");
    }
    if (secure() && !valid_curve_key(p.public_key)) {
      return Status::error("initial peer " + p.address + ": a secure runtime needs its public key");
    }
    std::unique_ptr<zmq::socket_t> s = new_dealer(p.public_key);
    s->connect(p.address);
    sockets.push_back(std::move(s));
    said.push_back(false);
  }
  answered_.clear();
  while (!stopped_.load() && now() < deadline) {
    for (size_t i = 0; i < sockets.size(); ++i) {
      if (said[i]) continue;
      Outgoing hello = control_message(my_hello(Hello::kAnswerMe));
      said[i] = try_send(*sockets[i], hello);
    }
    std::sort(answered_.begin(), answered_.end());
    answered_.erase(std::unique(answered_.begin(), answered_.end()), answered_.end());
    if (answered_.size() >= initial.size()) break;
    (void)fire_due_timers();
    if (options_.client_mode()) {  // the answers come back on the sockets that asked
      receive_answers(sockets, initial);
    } else {
      poll_and_receive(static_cast<long>(to_millis(kJoinPoll)));
    }
  }
  return answered_;
}

void ZmqRuntime::compute(ComputeCost /*cost*/, std::function<void()> work,
                         std::function<void()> done) {
  // Work runs inline on the loop, after the caller returns. Timers of equal deadline fire in the
  // order they were scheduled, so calls run one at a time, in order.
  schedule(Time(0), [this, work = std::move(work), done = std::move(done)]() {
    const Time t0 = now();
    if (work) work();
    metrics_.observe("compute_ms", to_millis(now() - t0));
    if (done) done();
  });
}

void ZmqRuntime::reject(std::string_view reason, std::string_view identity) {
  metrics_.count("net_rejected_messages");
  if (rejected_logged_ >= options_.max_reject_events()) return;
  ++rejected_logged_;
  // An identity may hold any bytes: log a printable rendering of at most kMaxIdentityBytes + 1.
  std::string shown;
  for (char c : identity.substr(0, kMaxIdentityBytes + 1)) {
    shown.push_back(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?');
  }
  metrics_.event("net_reject", {{"reason", reason}, {"identity", std::string_view(shown)}});
}

void ZmqRuntime::receive_some() {
  if (!router_) return;
  for (size_t n = 0; n < options_.max_receives_per_turn() && !stopped_.load(); ++n) {
    zmq::message_t identity;
    if (!recv_waiting(*router_, identity)) return;  // nothing more
    const std::string id_bytes = identity.to_string();
    if (!identity.more()) {
      reject("no payload frame", id_bytes);
      continue;
    }
    Incoming in;
    (void)router_->recv(*in.payload, zmq::recv_flags::none);  // parts of a message arrive together
    read_rest(*router_, in);
    // Secure mode: the ZAP handler named the connection by its client's public key.
    const char* user = secure() ? zmq_msg_gets(in.payload->handle(), "User-Id") : nullptr;
    accept(id_bytes, user ? user : "", in);
  }
}

void ZmqRuntime::receive_from(PeerId peer, zmq::socket_t& s, const std::string& key) {
  for (size_t n = 0; n < options_.max_receives_per_turn() && !stopped_.load(); ++n) {
    Incoming in;
    if (!recv_waiting(s, *in.payload)) return;
    read_rest(s, in);
    // Only `peer` answers on this DEALER (in secure mode, CurveZMQ checked its key).
    accept(peer_identity(peer), key, in);
  }
}

void ZmqRuntime::read_rest(zmq::socket_t& s, Incoming& in) {
  zmq::message_t& payload = *in.payload;
  if (payload.more() && (in.due_unix_ns = parse_delay_stamp(payload))) {
    (void)s.recv(payload, zmq::recv_flags::none);  // the message the stamp holds back
  } else if (payload.more() && payload.size() == sizeof(kControlTag) &&
             std::memcmp(payload.data(), kControlTag, sizeof(kControlTag)) == 0) {
    in.control = true;
    (void)s.recv(payload, zmq::recv_flags::none);  // the membership message
  }
  if (!payload.more()) return;
  zmq::message_t rest;
  do {
    (void)s.recv(rest, zmq::recv_flags::none);
    ++in.extra_parts;
  } while (rest.more());
}

void ZmqRuntime::accept(const std::string& id_bytes, const std::string& key, Incoming& in) {
  if (in.extra_parts > 0) {
    return reject("multipart message (" + std::to_string(in.extra_parts + 1) + " payload frames)",
                  id_bytes);
  }
  if (in.control) return on_control(id_bytes, key, *in.payload);
  const std::optional<PeerId> from = parse_peer_identity(id_bytes);
  if (!from) return reject("malformed identity", id_bytes);
  auto known = directory_.find(*from);
  if (known == directory_.end()) return reject("unknown peer", id_bytes);
  if (secure() && (key.empty() || known->second.public_key != key)) {
    return reject("identity does not match its key", id_bytes);
  }
  if (options_.open_membership()) heard_from(*from);
  const std::shared_ptr<zmq::message_t>& payload = in.payload;
  metrics_.count("net_bytes_received", static_cast<int64_t>(payload->size()));
  // Decode in place when the frame is 8-aligned (tensors alias it); otherwise copy first.
  const CodecLimits limits{options_.max_message_bytes(), CodecLimits{}.max_fields};
  Result<Message> msg = Status::error("not decoded");
  if (reinterpret_cast<uintptr_t>(payload->data()) % 8 == 0) {
    Bytes b;
    b.data = static_cast<const uint8_t*>(payload->data());
    b.size = payload->size();
    b.owner = payload;
    msg = decode(b, limits);
  } else {
    msg = decode_copy(static_cast<const uint8_t*>(payload->data()), payload->size(), limits);
  }
  if (!msg.ok()) return reject(msg.error(), id_bytes);
  deliver(*from, std::move(msg).value(), in.due_unix_ns);
}

void ZmqRuntime::receive_answers(std::vector<std::unique_ptr<zmq::socket_t>>& sockets,
                                 const std::vector<InitialPeer>& initial) {
  std::vector<zmq_pollitem_t> items;
  for (auto& s : sockets) items.push_back(zmq_pollitem_t{s->handle(), 0, ZMQ_POLLIN, 0});
  const int rc = zmq_poll(items.data(), static_cast<int>(items.size()),
                          static_cast<long>(to_millis(kJoinPoll)));
  if (rc < 0 && zmq_errno() != EINTR) throw zmq::error_t();
  for (size_t i = 0; rc > 0 && i < sockets.size(); ++i) {
    if (!(items[i].revents & ZMQ_POLLIN)) continue;
    Incoming in;
    while (recv_waiting(*sockets[i], *in.payload)) {
      read_rest(*sockets[i], in);
      const auto m =
          in.control && in.extra_parts == 0
              ? decode_control(static_cast<const uint8_t*>(in.payload->data()), in.payload->size())
              : Result<ControlMessage>(Status::error("not a membership message"));
      // Only an answer says whose socket this is; anything else before it is refused.
      if (m.ok() && m.value().kind == ControlKind::kHello &&
          (m.value().hello.flags & Hello::kAnswer)) {
        on_hello(m.value().hello.id, initial[i].public_key, m.value().hello);
      } else {
        reject(m.ok() ? "initial peer: not an answer to hello" : m.error(), initial[i].address);
      }
      in = Incoming();
    }
  }
}

void ZmqRuntime::poll_and_receive(long wait_ms) {
  poll_items_.clear();  // reused: this runs every turn of the loop
  poll_peers_.clear();
  if (router_) poll_items_.push_back(zmq_pollitem_t{router_->handle(), 0, ZMQ_POLLIN, 0});
  if (options_.client_mode()) {  // a client hears its answers on its DEALERs
    for (auto& [id, d] : directory_) {
      if (!d.socket) continue;
      poll_items_.push_back(zmq_pollitem_t{d.socket->handle(), 0, ZMQ_POLLIN, 0});
      poll_peers_.push_back(id);
    }
  }
  const int rc = zmq_poll(poll_items_.data(), static_cast<int>(poll_items_.size()), wait_ms);
  if (rc < 0) {
    if (zmq_errno() == EINTR) return;  // a signal: stop() may have been called
    throw zmq::error_t();
  }
  if (rc == 0) return;
  size_t i = 0;
  if (router_ && (poll_items_[i++].revents & ZMQ_POLLIN)) receive_some();
  // Reading may change the directory (a hello, an eviction): look each peer up again.
  for (PeerId id : poll_peers_) {
    const bool ready = poll_items_[i++].revents & ZMQ_POLLIN;
    auto it = directory_.find(id);
    if (ready && it != directory_.end() && it->second.socket) {
      receive_from(id, *it->second.socket, it->second.public_key);
    }
  }
}

void ZmqRuntime::deliver(PeerId from, Message msg, std::optional<int64_t> due_unix_ns) {
  if (due_unix_ns) {
    const Time ahead = Time(*due_unix_ns - epoch_unix_ns_) - now();
    if (ahead > options_.max_delay_hold()) {
      reject("delay stamp " + std::to_string(to_seconds(ahead)) + " s ahead (at most " +
                 std::to_string(to_seconds(options_.max_delay_hold())) + " s)",
             peer_identity(from));
      return;
    }
    if (ahead.count() > 0) {
      auto held = std::make_shared<Message>(std::move(msg));
      schedule(ahead, [this, from, held] { deliver(from, std::move(*held), std::nullopt); });
      return;
    }
  }
  if (!handler_) {
    const size_t bytes = msg.wire_size();
    if (early_.size() >= kMaxEarlyMessages || early_bytes_ + bytes > kMaxEarlyBytes) {
      metrics_.count("net_undelivered");
    } else {
      early_bytes_ += bytes;
      early_.emplace_back(from, std::move(msg));
    }
    return;
  }
  metrics_.count("messages_delivered");
  handler_(from, std::move(msg));
}

void ZmqRuntime::set_handler(Handler handler) {
  handler_ = std::move(handler);
  if (!handler_ || early_.empty()) return;
  schedule(Time(0), [this] {  // not from inside the caller's own set-up
    while (!early_.empty() && handler_) {
      auto [from, msg] = std::move(early_.front());
      early_.pop_front();
      early_bytes_ -= std::min(early_bytes_, msg.wire_size());
      metrics_.count("messages_delivered");
      handler_(from, std::move(msg));
    }
  });
}

void ZmqRuntime::run_until(Time end) {
  while (!stopped_.load()) {
    const std::optional<Time> next = fire_due_timers();
    if (stopped_.load()) break;
    const Time t = now();
    if (t >= end) break;
    // Sleep until the next timer or the end, at most kMaxPoll (so a stop() from another thread is
    // seen). zmq_poll counts milliseconds: round up, so that a timer due in 0.3 ms is not a busy
    // spin.
    Time wait = std::min({end, next.value_or(end), t + kMaxPoll}) - t;
    if (wait.count() < 0) wait = Time(0);
    poll_and_receive(static_cast<long>((wait.count() + 999999) / 1000000));
    report_refusals();
  }
}

// The ZAP handler (RFC 27): bound before the ROUTER so that no connection is let in unchecked.
Status ZmqRuntime::start_authenticator() {
  try {
    zap_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::rep);
    zap_->set(zmq::sockopt::linger, 0);
    zap_->bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    zap_.reset();
    return Status::error(std::string("zmq runtime: cannot start the authenticator: ") + e.what());
  }
  auth_thread_ = std::thread([this] { authenticate_loop(zap_.get()); });
  return Status::ok_status();
}

// Request: version, request id, domain, address, routing id, mechanism, client key (32 bytes).
// Reply: version, request id, status code, status text, user id (the key's peer), metadata.
void ZmqRuntime::authenticate_loop(zmq::socket_t* zap) {
  while (!auth_stop_.load()) {
    zmq_pollitem_t item{zap->handle(), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, kZapPollMs) <= 0 || !(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> frames;
    do {
      frames.emplace_back();
      if (!zap->recv(frames.back(), zmq::recv_flags::none)) break;
    } while (frames.back().more() && frames.size() < 16);
    std::string user;
    bool ok = false;
    if (frames.size() >= 7 && frames[5].to_string() == "CURVE" && frames[6].size() == 32) {
      char z85[41];
      zmq_z85_encode(z85, static_cast<const uint8_t*>(frames[6].data()), 32);
      std::lock_guard<std::mutex> lock(auth_mu_);
      // With a swarm key anyone may connect: a peer is let in by its hello's proof of the key.
      ok = allowed_keys_.count(z85) > 0 || !options_.swarm_key().empty();
      if (ok) user = z85;
    }
    if (!ok) auth_refused_.fetch_add(1);
    const std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
    const std::string reply[] = {
        "1.0", request_id, ok ? "200" : "400", ok ? "OK" : "key not in the peer directory",
        user,  ""};
    for (size_t i = 0; i < 6; ++i) {
      zap->send(zmq::buffer(reply[i]), i < 5 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

void ZmqRuntime::report_refusals() {
  const uint64_t refused = auth_refused_.load();
  if (refused == auth_refused_reported_) return;
  metrics_.count("net_auth_refused", static_cast<int64_t>(refused - auth_refused_reported_));
  metrics_.event("net_auth_refused", {{"total", refused}});
  auth_refused_reported_ = refused;
}

}  // namespace crowdtrain::net
