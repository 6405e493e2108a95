// The crowdtrain program: `run` (simulate a scenario), `check` (validate one), `swarm` (many seeds
// under random fault plans, sim/swarm.h), `live` (one live peer), `calibrate` (time a MoE
// scenario's expert for the compute-time model). Exit codes: 0
// success, 1 a run failed, 2 bad arguments or a broken scenario.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/moe/calibrate.h"
#include "core/run_output.h"
#include "core/scenario.h"
#if CROWDTRAIN_WITH_SIM
#include "sim/calibration.h"
#include "sim/sim_world.h"
#include "sim/swarm.h"
#endif
#if CROWDTRAIN_WITH_NET
#include "net/live.h"
#endif

namespace ct = crowdtrain;

namespace {

const char* kUsage =
    "usage: crowdtrain run SCENARIO [--set key=value]... [--seed N] [--out DIR] [--quiet]\n"
    "       crowdtrain check SCENARIO [--set key=value]...\n"
    "       crowdtrain swarm SCENARIO [--seeds N] [--jobs J] [--seed S] ... (crowdtrain swarm "
    "--help)\n"
    "       crowdtrain live [SCENARIO] --id N --listen ADDR --peers ID=ADDR,... [--duration S]\n"
    "                       [--epoch UNIX_SECONDS] [--out DIR] [--seed N] [--set key=value]...\n"
    "       crowdtrain calibrate SCENARIO [--set key=value]... [--reps N] [--batch N]\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "crowdtrain: %s\n%s", why.c_str(), kUsage);
  return 2;
}

// A broken scenario: the error names the JSON path (and the file, unless it already does); exit 2.
int scenario_error(const std::string& file, const std::string& error) {
  if (error.rfind(file, 0) == 0) {
    std::fprintf(stderr, "crowdtrain: %s\n", error.c_str());
  } else {
    std::fprintf(stderr, "crowdtrain: %s: %s\n", file.c_str(), error.c_str());
  }
  return 2;
}

struct CommonArgs {
  std::string scenario;
  std::vector<std::string> overrides;
  std::string out_dir;
  bool quiet = false;
};

// Parses SCENARIO, --set, --seed, --out, --quiet. Returns an error message or "".
std::string parse_common(const std::vector<std::string>& args, CommonArgs& a) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& x = args[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= args.size()) return false;
      into = args[++i];
      return true;
    };
    std::string v;
    if (x == "--set") {
      if (!value(v)) return "--set needs key=value";
      a.overrides.push_back(v);
    } else if (x.rfind("--set=", 0) == 0) {
      a.overrides.push_back(x.substr(6));
    } else if (x == "--seed") {
      if (!value(v)) return "--seed needs a number";
      a.overrides.push_back("seed=" + v);
    } else if (x == "--out") {
      if (!value(a.out_dir)) return "--out needs a folder";
    } else if (x == "--quiet") {
      a.quiet = true;
    } else if (!x.empty() && x[0] == '-') {
      return "unknown option " + x;
    } else if (a.scenario.empty()) {
      a.scenario = x;
    } else {
      return "more than one scenario given (" + a.scenario + ", " + x + ")";
    }
  }
  if (a.scenario.empty()) return "no scenario given";
  return "";
}

int cmd_check(const std::vector<std::string>& args) {
  CommonArgs a;
  if (auto e = parse_common(args, a); !e.empty()) return usage_error(e);
  auto s = ct::load_scenario(a.scenario, a.overrides);
  if (!s.ok()) return scenario_error(a.scenario, s.error());
  std::printf("ok: %s (%u peers, %s fidelity, %g s, workload %s, seed %llu)\n", s->name.c_str(),
              s->peers.count, ct::enum_name(ct::fidelity_names(), s->network.fidelity).c_str(),
              s->duration_s, s->workload.kind.c_str(), static_cast<unsigned long long>(s->seed));
  return 0;
}

int cmd_run(const std::vector<std::string>& args) {
  CommonArgs a;
  if (auto e = parse_common(args, a); !e.empty()) return usage_error(e);
  auto s = ct::load_scenario(a.scenario, a.overrides);
  if (!s.ok()) return scenario_error(a.scenario, s.error());
#if CROWDTRAIN_WITH_SIM
  if (s->workload.kind == "transfers") {
    const std::string dir = a.out_dir.empty() ? ct::output_dir_for(*s) : a.out_dir;
    ct::Status st = ct::sim::run_calibration(*s, dir);
    if (!st.ok()) {
      std::fprintf(stderr, "crowdtrain: %s\n", st.message().c_str());
      return 1;
    }
    return 0;
  }
  ct::sim::SimOptions o;
  o.out_dir = a.out_dir;
  o.overrides = a.overrides;
  o.progress = !a.quiet;
  auto sum = ct::sim::run_simulation(*s, o);
  if (!sum.ok()) {
    std::fprintf(stderr, "crowdtrain: run failed: %s\n", sum.error().c_str());
    return 1;
  }
  nlohmann::json brief = sum.value();
  brief.erase("scenario_resolved");
  brief.erase("counters");
  brief.erase("samples");
  std::printf("%s\n", brief.dump(2).c_str());
  return 0;
#else
  return usage_error("this build has no simulated world (CROWDTRAIN_WITH_SIM=OFF)");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  ct::keep_freed_memory();
  if (argc < 2) return usage_error("no command given");
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "run") return cmd_run(args);
  if (cmd == "check") return cmd_check(args);
  if (cmd == "calibrate") return ct::moe::calibrate_main(args);
  if (cmd == "swarm") {
#if CROWDTRAIN_WITH_SIM
    return ct::sim::swarm_main(args);
#else
    return usage_error("this build has no simulated world (CROWDTRAIN_WITH_SIM=OFF)");
#endif
  }
  if (cmd == "live") {
#if CROWDTRAIN_WITH_NET
    return ct::net::live_main(args);
#else
    return usage_error("this build has no live world (CROWDTRAIN_WITH_NET=OFF)");
#endif
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::printf("%s", kUsage);
    return 0;
  }
  return usage_error("unknown command '" + cmd + "'");
}
