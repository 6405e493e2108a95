// Our butterfly all-reduce (core/averaging/allreduce.h) between processes on loopback, in the same
// harness as gloo_allreduce.cpp so that analysis/run_allreduce_vs_gloo.sh compares like with like:
// one process per rank, a fixed peer list of ZmqRuntimes (plain, or CurveZMQ with `curve`), then
// `reps` all-reduces of `floats` float32, each after a barrier (every rank tells rank 0 it is
// ready, rank 0 says go), each checked (every rank holds the exact mean). Rank 0 prints one CSV
// line per repetition: crowdtrain_<plain|curve>,processes,floats,rep,ms,complete — the slowest
// rank's time, which every rank sends to rank 0.
// usage: allreduce_processes RANK SIZE BASE_PORT KEY_DIR FLOATS REPS plain|curve
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "core/allocator.h"
#include "core/averaging/allreduce.h"
#include "core/message.h"
#include "core/metrics.h"
#include "net/curve_keys.h"
#include "net/zmq_runtime.h"

namespace ct = crowdtrain;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kTagRep = 16, kTagMs = 17;

int usage() {
  std::fprintf(stderr,
               "usage: allreduce_processes RANK SIZE BASE_PORT KEY_DIR FLOATS REPS plain|curve\n");
  return 2;
}

std::string address(int base, int rank) { return "tcp://127.0.0.1:" + std::to_string(base + rank); }

// Rank r's public key, once it has written it (its keypair file is KEY_DIR/r).
std::string public_key_of(const std::string& dir, int rank) {
  const std::string path = dir + "/" + std::to_string(rank) + ".pub";
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(path);
    std::string key;
    if (in >> key && ct::net::valid_curve_key(key)) return key;
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "allreduce_processes: no public key at %s\n", path.c_str());
  std::exit(1);
}

struct Rank {
  int rank = 0, size = 0;
  ct::MetricsSink sink;
  std::unique_ptr<ct::net::ZmqRuntime> rt;
  std::unique_ptr<ct::AllReduceRound> round;
  std::map<uint64_t, std::set<ct::PeerId>> ready;  // rank 0: the ranks ready, per repetition
  std::set<uint64_t> released;                     // rank 0: repetitions it said go to
  std::map<uint64_t, std::vector<double>> times;   // rank 0: reported times per repetition
  std::map<uint64_t, bool> go;                     // others: go received per repetition

  // All-reduce messages that came before this rank started their round (another rank heard go
  // first): handed to the next round once it has started.
  std::vector<std::pair<ct::PeerId, ct::Message>> early;

  void on_message(ct::PeerId from, ct::Message m) {
    if (round && round->handle(from, m)) return;
    if (m.type == ct::MsgType::kAvgPart || m.type == ct::MsgType::kAvgResult ||
        m.type == ct::MsgType::kAvgRefuse) {
      if (early.size() < 4096) early.emplace_back(from, std::move(m));
      return;
    }
    if (m.type != ct::MsgType::kProbeRequest && m.type != ct::MsgType::kProbeResponse) return;
    uint64_t rep = 0;
    double ms = -1;
    for (const ct::Field& f : m.fields) {
      if (f.tag == kTagRep) rep = std::get<uint64_t>(f.value);
      if (f.tag == kTagMs) ms = std::get<double>(f.value);
    }
    if (m.type == ct::MsgType::kProbeResponse) {
      go[rep] = true;
    } else if (ms >= 0) {
      times[rep].push_back(ms);
    } else {
      ready[rep].insert(from);
      if (released.count(rep)) send(static_cast<int>(from), ct::MsgType::kProbeResponse, rep);
    }
  }
  // Runs the loop until `cond`; false when `limit` passed first.
  bool run_until(const std::function<bool()>& cond, ct::Time limit = std::chrono::seconds(60)) {
    const ct::Time end = rt->now() + limit;
    while (!cond()) {
      if (rt->now() >= end) return false;
      rt->run_until(rt->now() + 1ms);
    }
    return true;
  }
  void send(int to, ct::MsgType type, uint64_t rep, double ms = -1) {
    ct::Message m(type);
    m.add_u64(kTagRep, rep);
    if (ms >= 0) m.add_f64(kTagMs, ms);
    rt->send(static_cast<ct::PeerId>(to), std::move(m));
  }
  // Every rank ready, then all start together (as gloo's barrier). A rank says ready again every
  // 200 ms until it hears go: a message sent while the secure handshake was still being refused
  // (the other rank did not know this one's key yet) is dropped after the connect grace.
  void barrier(uint64_t rep) {
    if (rank == 0) {
      if (!run_until([&] { return static_cast<int>(ready[rep].size()) == size - 1; })) {
        std::fprintf(stderr, "allreduce_processes: rank 0: not every rank ready for %llu\n",
                     static_cast<unsigned long long>(rep));
        std::exit(1);
      }
      released.insert(rep);
      for (int r = 1; r < size; ++r) send(r, ct::MsgType::kProbeResponse, rep);
      return;
    }
    const ct::Time give_up = rt->now() + std::chrono::seconds(60);
    while (!go[rep]) {
      if (rt->now() >= give_up) {
        std::fprintf(stderr, "allreduce_processes: rank %d: no go for %llu\n", rank,
                     static_cast<unsigned long long>(rep));
        std::exit(1);
      }
      send(0, ct::MsgType::kProbeRequest, rep);
      const auto until = rt->now() + 200ms;
      while (!go[rep] && rt->now() < until) rt->run_until(rt->now() + 1ms);
    }
  }
};

// The rank's runtime, connected to every other rank (plain, or CurveZMQ with every rank's key).
bool connect(Rank& me, int base, const std::string& key_dir, const std::string& mode) {
  auto options = ct::net::ZmqRuntimeOptions()
                     .id(static_cast<ct::PeerId>(me.rank))
                     .listen(address(base, me.rank));
  if (mode == "curve") {
    auto keys = ct::net::load_or_create_keypair(key_dir + "/" + std::to_string(me.rank));
    if (!keys.ok()) return std::fprintf(stderr, "%s\n", keys.error().c_str()), false;
    options.curve_public_key(keys->public_key).curve_secret_key(keys->secret_key);
    std::ofstream(key_dir + "/" + std::to_string(me.rank) + ".pub") << keys->public_key << "\n";
  }
  // Every key before any socket: a rank that connected while the other did not know its key yet
  // was refused by the other's ZAP handler, and that direction never came up (libzmq 4.3.4 does
  // not retry a refused handshake).
  std::map<int, std::string> keys;
  for (int r = 0; r < me.size; ++r) {
    if (r != me.rank) keys[r] = mode == "curve" ? public_key_of(key_dir, r) : "";
  }
  auto created = ct::net::ZmqRuntime::create(options, me.sink);
  if (!created.ok()) return std::fprintf(stderr, "%s\n", created.error().c_str()), false;
  me.rt = std::move(created.value());
  for (const auto& [r, key] : keys) {
    (void)me.rt->add_peer(static_cast<ct::PeerId>(r), address(base, r), key);
  }
  me.rt->set_handler([&me](ct::PeerId from, ct::Message m) { me.on_message(from, std::move(m)); });
  if (!me.rt->await_connections(60s).ok()) return std::fprintf(stderr, "no connections\n"), false;
  return true;
}

// One all-reduce of `local` (after the barrier); its time in ms, or nullopt when it did not end
// with every rank holding the exact mean `want` (what went wrong goes to stderr).
std::optional<double> one_round(Rank& me, const at::Tensor& local, float want, int rep) {
  me.barrier(static_cast<uint64_t>(rep));
  std::vector<ct::GroupMember> members;
  for (int r = 0; r < me.size; ++r) members.push_back(ct::GroupMember{static_cast<ct::PeerId>(r)});
  std::optional<ct::Result<ct::AllReduceOutcome>> out;
  const auto t0 = std::chrono::steady_clock::now();
  me.round = std::make_unique<ct::AllReduceRound>(
      *me.rt,
      ct::AllReduceGroup{1000 + static_cast<uint64_t>(rep), static_cast<uint64_t>(rep), members},
      local, ct::AllReduceOptions().timeout(10s),
      [&out](ct::Result<ct::AllReduceOutcome> r) { out = std::move(r); });
  me.round->start();
  for (auto& [from, m] : std::exchange(me.early, {})) me.round->handle(from, m);
  me.run_until([&] { return out.has_value(); });
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!out->ok()) {
    std::fprintf(stderr, "rank %d rep %d: %s\n", me.rank, rep, out->error().c_str());
    return std::nullopt;
  }
  const ct::AllReduceStats& stats = (*out)->stats;
  for (const auto& [why, n] : stats.refused_by_reason) {
    std::fprintf(stderr, "rank %d rep %d: refused %s x%lld\n", me.rank, rep, why.c_str(),
                 static_cast<long long>(n));
  }
  if (stats.elements_local != 0) {
    std::fprintf(stderr, "rank %d rep %d: %lld elements left local\n", me.rank, rep,
                 static_cast<long long>(stats.elements_local));
    return std::nullopt;
  }
  const at::Tensor mean = local + *(*out)->delta;
  const float first = mean[0].item<float>(), last = mean[-1].item<float>();
  if (first != want || last != want) {
    std::fprintf(stderr, "rank %d rep %d: mean %g .. %g, want %g\n", me.rank, rep, first, last,
                 want);
    return std::nullopt;
  }
  return ms;
}

// Rank 0 prints the slowest rank's time of repetition `rep`; the others send theirs to it.
void report(Rank& me, int rep, std::optional<double> ms, const std::string& mode, long floats) {
  const double mine = ms.value_or(1e9);
  if (me.rank != 0) {
    me.send(0, ct::MsgType::kProbeRequest, static_cast<uint64_t>(rep), mine);
    return;
  }
  me.times[rep].push_back(mine);
  me.run_until([&] { return static_cast<int>(me.times[rep].size()) == me.size; }, 15s);
  if (static_cast<int>(me.times[rep].size()) < me.size) me.times[rep].push_back(1e9);
  double slowest = 0;
  for (double t : me.times[rep]) slowest = std::max(slowest, t);
  std::printf("crowdtrain_%s,%d,%ld,%d,%.3f,%d\n", mode.c_str(), me.size, floats, rep,
              slowest < 1e9 ? slowest : 0.0, slowest < 1e9 ? 1 : 0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  ct::keep_freed_memory();
  if (argc != 8) return usage();
  Rank me;
  me.rank = std::atoi(argv[1]);
  me.size = std::atoi(argv[2]);
  const int base = std::atoi(argv[3]);
  const std::string key_dir = argv[4], mode = argv[7];
  const long floats = std::atol(argv[5]);
  const int reps = std::atoi(argv[6]);
  if (me.rank < 0 || me.size < 2 || me.rank >= me.size || base <= 0 || floats <= 0 || reps <= 0 ||
      (mode != "plain" && mode != "curve")) {
    return usage();
  }
  torch::set_num_threads(1);
  if (!connect(me, base, key_dir, mode)) return 1;
  const at::Tensor local = torch::full({floats}, static_cast<float>(me.rank + 1));
  const float want = static_cast<float>(me.size + 1) / 2;
  for (int rep = 0; rep < reps; ++rep)
    report(me, rep, one_round(me, local, want, rep), mode, floats);
  me.rt->run_until(me.rt->now() + 300ms);  // let the last messages leave before the sockets close
  return 0;
}
