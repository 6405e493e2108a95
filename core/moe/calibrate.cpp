// time_expert and `crowdtrain calibrate` (calibrate.h).

#include "core/moe/calibrate.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/moe/moe_options.h"
#include "core/random.h"

namespace crowdtrain::moe {

namespace {

TensorData random_batch(std::vector<int64_t> shape, Rng& rng) {
  TensorData t;
  t.shape = std::move(shape);
  std::vector<uint8_t> bytes(static_cast<size_t>(t.numel()) * sizeof(float));
  for (size_t i = 0; i < bytes.size(); i += sizeof(float)) {
    const float v = static_cast<float>(rng.normal());
    std::memcpy(bytes.data() + i, &v, sizeof v);
  }
  t.bytes = Bytes::adopt(std::move(bytes));
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Seconds of one call of `fn` (which returns a Result); an error stops the timing.
template <typename Fn>
Result<double> timed(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = fn();
  const auto t1 = std::chrono::steady_clock::now();
  if (!r.ok()) return r.status();
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace

Result<ExpertTiming> time_expert(const ExpertConfig& config, int64_t batch, int reps, int experts) {
  if (batch < 1 || reps < 1 || experts < 1) {
    return Status::error("calibrate: batch, reps and experts must be >= 1");
  }
  std::vector<std::unique_ptr<Expert>> pool;
  for (int i = 0; i < experts; ++i) {
    auto e = make_expert(ExpertConfig(config).seed(config.seed() + static_cast<uint64_t>(i)));
    if (!e.ok()) return e.status();
    pool.push_back(std::move(e.value()));
  }
  const ExpertInfo& info = pool.front()->info();
  Rng rng(derive_seed(config.seed(), "calibrate"));
  std::vector<int64_t> in{batch}, out{batch};
  in.insert(in.end(), info.input_shape.begin(), info.input_shape.end());
  out.insert(out.end(), info.output_shape.begin(), info.output_shape.end());
  const TensorData x = random_batch(in, rng);
  const TensorData g = random_batch(out, rng);
  std::vector<double> fwd, bwd;
  // Round 0 warms every expert up; the experts take turns, as on a server hosting several.
  for (int i = 0; i <= reps; ++i) {
    for (auto& e : pool) {
      auto f = timed([&] { return e->forward(x); });
      if (!f.ok()) return f.status();
      auto b = timed([&] { return e->backward(x, g); });
      if (!b.ok()) return b.status();
      if (i > 0) fwd.push_back(f.value()), bwd.push_back(b.value());
    }
  }
  ExpertTiming t;
  t.device = config.device();
  t.threads = torch::get_num_threads();
  t.batch = batch;
  t.reps = reps;
  t.experts = experts;
  t.forward_s = median(fwd);
  t.backward_s = median(bwd);
  t.forward_flops = info.forward_flops_per_sample * static_cast<double>(batch);
  t.backward_flops = info.backward_flops_per_sample * static_cast<double>(batch);
  return t;
}

namespace {

constexpr int kMaxExperts = 8;  // enough distinct weights that none stay in the caches

struct CalibrateArgs {
  std::string scenario;
  std::vector<std::string> overrides;
  int reps = 3;
  int64_t batch = 0;  // 0 = the scenario's chain.batch
  int experts = 0;    // 0 = as many as a server of the scenario hosts, at most kMaxExperts
};

std::string parse_args(const std::vector<std::string>& args, CalibrateArgs& a) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& x = args[i];
    const bool has_value = i + 1 < args.size();
    if ((x == "--set" || x == "--reps" || x == "--batch") && !has_value)
      return x + " needs a value";
    if (x == "--set") {
      a.overrides.push_back(args[++i]);
    } else if (x == "--reps") {
      a.reps = std::atoi(args[++i].c_str());
      if (a.reps < 1 || a.reps > 1000) return "--reps must be in [1, 1000]";
    } else if (x == "--batch") {
      a.batch = std::atoll(args[++i].c_str());
      if (a.batch < 1 || a.batch > (1 << 20)) return "--batch must be in [1, 1048576]";
    } else if (x == "--experts") {
      a.experts = std::atoi(args[++i].c_str());
      if (a.experts < 1 || a.experts > 64) return "--experts must be in [1, 64]";
    } else if (!x.empty() && x[0] != '-' && a.scenario.empty()) {
      a.scenario = x;
    } else {
      return "unexpected argument '" + x + "'";
    }
  }
  return a.scenario.empty() ? "no scenario given" : "";
}

// A server's share of the placements (every layer's experts times replicas), capped.
int hosted_per_server(const MoeOptions& o) {
  uint64_t per_layer = o.experts;
  if (per_layer == 0) {
    per_layer = 1;
    for (uint32_t size : o.grid_sizes) per_layer *= size;
  }
  const uint64_t placements = per_layer * o.trainer.layers * o.replicas;
  const uint64_t mine = (placements + o.servers - 1) / o.servers;
  return static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>(mine, kMaxExperts)));
}

void print_rows(const ExpertConfig& c, const ExpertTiming& t) {
  std::printf(
      "kind,hidden,ffn_dim,seq_len,device,threads,experts,batch,phase,seconds,flops,"
      "flops_per_s\n");
  const char* fmt = "%s,%lld,%lld,%lld,%s,%d,%d,%lld,%s,%.6g,%.6g,%.6g\n";
  auto row = [&](const char* phase, double s, double f) {
    std::printf(fmt, c.kind().c_str(), static_cast<long long>(c.hidden()),
                static_cast<long long>(c.ffn_dim()), static_cast<long long>(c.seq_len()),
                t.device.c_str(), t.threads, t.experts, static_cast<long long>(t.batch), phase, s,
                f, f / s);
  };
  row("forward", t.forward_s, t.forward_flops);
  row("backward", t.backward_s, t.backward_flops);
  row("step", t.forward_s + t.backward_s, t.forward_flops + t.backward_flops);
}

}  // namespace

int calibrate_main(const std::vector<std::string>& args) {
  CalibrateArgs a;
  if (std::string e = parse_args(args, a); !e.empty()) {
    std::fprintf(stderr,
                 "crowdtrain calibrate: %s\nusage: crowdtrain calibrate SCENARIO "
                 "[--set key=value]... [--reps N] [--batch N] [--experts N]\n",
                 e.c_str());
    return 2;
  }
  auto s = load_scenario(a.scenario, a.overrides);
  if (!s.ok()) {
    std::fprintf(stderr, "crowdtrain: %s\n", s.error().c_str());
    return 2;
  }
  if (s->workload.kind != "moe") {
    std::fprintf(stderr, "crowdtrain calibrate: %s: workload.kind must be \"moe\"\n",
                 a.scenario.c_str());
    return 2;
  }
  const MoeOptions& o = s->workload.options_of<MoeOptions>("moe");
  const int64_t batch = a.batch ? a.batch : o.chain.batch;
  auto t = time_expert(o.expert, batch, a.reps, a.experts ? a.experts : hosted_per_server(o));
  if (!t.ok()) {
    std::fprintf(stderr, "crowdtrain calibrate: %s\n", t.status().message().c_str());
    return 1;
  }
  print_rows(o.expert, t.value());
  return 0;
}

}  // namespace crowdtrain::moe
