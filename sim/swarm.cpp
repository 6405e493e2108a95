// `crowdtrain swarm`: see swarm.h.
#include "sim/swarm.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/invariants.h"
#include "core/run_output.h"
#include "sim/sim_world.h"

namespace crowdtrain::sim {

namespace {

using Clock = std::chrono::steady_clock;

// Child exit codes: what the seed's run found.
constexpr int kPassed = 0;
constexpr int kRunFailed = 1;
constexpr int kBrokenScenario = 2;
constexpr int kViolated = 3;
constexpr int kLivenessMissed = 4;

std::string seed_dir(const SwarmOptions& o, uint64_t seed) {
  return o.out_dir + "/seed-" + std::to_string(seed);
}

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// The verdict of a finished run from its summary: violated invariants first, then the goal.
int verdict_of(const nlohmann::json& summary) {
  if (summary.value("/invariants/violations"_json_pointer, int64_t{0}) > 0) return kViolated;
  const auto met = summary.find("liveness");
  if (met != summary.end() && (*met)["met"].is_boolean() && !(*met)["met"].get<bool>()) {
    return kLivenessMissed;
  }
  return kPassed;
}

// The child: runs one seed, its output in the seed's folder; never returns.
[[noreturn]] void run_child(const SwarmOptions& o, const Scenario& base, uint64_t seed) {
  const std::string dir = seed_dir(o, seed);
  std::filesystem::create_directories(dir);
  const std::string log = dir + "/run.log";
  if (std::freopen(log.c_str(), "w", stdout) == nullptr ||
      std::freopen(log.c_str(), "a", stderr) == nullptr) {
    _exit(kRunFailed);
  }
  const std::vector<std::string> overrides = swarm_overrides(base, seed, o);
  auto s = load_scenario(o.scenario_path, overrides);
  if (!s.ok()) {
    std::fprintf(stderr, "crowdtrain swarm: %s\n", s.error().c_str());
    std::fflush(nullptr);
    _exit(kBrokenScenario);
  }
  SimOptions so;
  so.out_dir = dir;
  so.overrides = overrides;
  so.progress = false;
  auto sum = run_simulation(*s, so);
  int code = kRunFailed;
  if (sum.ok()) {
    code = verdict_of(sum.value());
  } else {
    std::fprintf(stderr, "crowdtrain swarm: run failed: %s\n", sum.error().c_str());
  }
  std::fflush(nullptr);
  _exit(code);
}

struct Running {
  uint64_t seed;
  Clock::time_point started;
};

struct Outcome {
  uint64_t seed = 0;
  int code = 0;  // a child exit code, or -signal
  bool hung = false;
  double wall_s = 0;
};

// The first "invariant_violated" event of a run's log: its invariant and detail.
std::string first_violation(const std::string& dir) {
  std::ifstream in(dir + "/events.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"invariant_violated\"") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return line;
    return j.value("invariant", std::string("?")) +
           " at t=" + fmt(j.value("t_ns", int64_t{0}) / 1e9) + " s, peer " +
           std::to_string(j.value("peer", int64_t{-1})) + ": " + j.value("detail", std::string());
  }
  return "";
}

nlohmann::json read_summary(const std::string& dir) {
  std::ifstream in(dir + "/summary.json");
  if (!in) return nullptr;
  auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

// What failed, in one line (empty when the seed passed).
std::string failure_text(const Outcome& r, const nlohmann::json& summary, const std::string& dir) {
  if (r.hung) return "hung: still running after the time limit";
  if (r.code < 0)
    return "crashed: signal " + std::to_string(-r.code) + " (" + strsignal(-r.code) + ")";
  switch (r.code) {
    case kPassed:
      return "";
    case kBrokenScenario:
      return "the scenario with this seed's plan is refused (see run.log)";
    case kViolated: {
      std::string names;
      for (const auto& [name, n] : summary["invariants"]["violated"].items()) {
        names += (names.empty() ? "" : ", ") + name + " x" + std::to_string(n.get<int64_t>());
      }
      return "invariant violated: " + names + "; first: " + first_violation(dir);
    }
    case kLivenessMissed:
      return "liveness goal missed: " + summary["liveness"].dump();
    default:
      return "the run failed (exit " + std::to_string(r.code) + ", see run.log)";
  }
}

const char* verdict_name(const Outcome& r) {
  if (r.hung) return "hung";
  if (r.code < 0) return "crashed";
  switch (r.code) {
    case kPassed:
      return "passed";
    case kViolated:
      return "violated";
    case kLivenessMissed:
      return "liveness_missed";
    case kBrokenScenario:
      return "refused";
    default:
      return "run_failed";
  }
}

}  // namespace

std::vector<std::string> swarm_overrides(const Scenario& base, uint64_t seed,
                                         const SwarmOptions& o) {
  // Quiet output unless the caller's --set asks for more (output.events="all" to debug a seed).
  std::vector<std::string> out = {"output.progress=false", "output.events=\"lifecycle\""};
  out.insert(out.end(), o.overrides.begin(), o.overrides.end());
  const double duration = o.plan.safety_s + o.liveness_s;
  out.push_back("seed=" + std::to_string(seed));
  out.push_back("duration_s=" + fmt(duration));
  out.push_back("churn.model=\"none\"");
  out.push_back("liveness.from_s=" + fmt(o.plan.safety_s + o.grace_s));
  out.push_back("faults=" + fault_plan_json(draw_fault_plan(base, seed, o.plan)).dump());
  return out;
}

std::string swarm_replay_command(const SwarmOptions& o, uint64_t seed) {
  std::string cmd = "./crowdtrain swarm " + shell_quote(o.scenario_path) + " --seed " +
                    std::to_string(seed) + " --warmup-s " + fmt(o.plan.warmup_s) + " --safety-s " +
                    fmt(o.plan.safety_s) + " --liveness-s " + fmt(o.liveness_s) + " --grace-s " +
                    fmt(o.grace_s) + " --faults " + std::to_string(o.plan.min_faults) + "-" +
                    std::to_string(o.plan.max_faults);
  for (const std::string& s : o.overrides) cmd += " --set " + shell_quote(s);
  return cmd;
}

namespace {

// Starts seed's child; returns its pid (or -1).
pid_t spawn(const SwarmOptions& o, const Scenario& base, uint64_t seed) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) run_child(o, base, seed);
  return pid;
}

// Waits for one child to end or time out (kills it then); fills `r`. False when none is running.
bool reap_one(const SwarmOptions& o, std::map<pid_t, Running>& running, Outcome& r) {
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid)) {
      const Running run = running[pid];
      running.erase(pid);
      r = Outcome{run.seed, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), false,
                  std::chrono::duration<double>(Clock::now() - run.started).count()};
      return true;
    }
    for (auto& [p, run] : running) {
      const double wall = std::chrono::duration<double>(Clock::now() - run.started).count();
      if (wall > o.timeout_s) {
        kill(p, SIGKILL);
        waitpid(p, &status, 0);
        r = Outcome{run.seed, -SIGKILL, true, wall};
        running.erase(p);
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

struct Tally {
  uint64_t done = 0, failed = 0;
  std::map<std::string, uint64_t> by_verdict;
};

// Records one finished seed: the CSV row, the failure report, its folder kept or removed.
void record(const SwarmOptions& o, const Scenario& base, const Outcome& r, std::ofstream& csv,
            Tally& tally) {
  const std::string dir = seed_dir(o, r.seed);
  const nlohmann::json summary = read_summary(dir);
  const std::string why = failure_text(r, summary, dir);
  const auto plan = draw_fault_plan(base, r.seed, o.plan);
  std::map<FaultKind, int> kinds;
  for (const FaultSpec& f : plan) ++kinds[f.kind];
  const int64_t checks =
      summary.is_object() ? summary.value("/invariants/checks"_json_pointer, int64_t{0}) : 0;
  csv << r.seed << "," << verdict_name(r) << "," << plan.size() << "," << kinds[FaultKind::kKill]
      << "," << kinds[FaultKind::kPartition] << "," << kinds[FaultKind::kClog] << ","
      << kinds[FaultKind::kLoss] << "," << checks << "," << fmt(r.wall_s) << "\n";
  csv.flush();
  ++tally.done;
  ++tally.by_verdict[verdict_name(r)];
  if (why.empty()) {
    if (!o.keep_all) std::filesystem::remove_all(dir);
    return;
  }
  ++tally.failed;
  std::fprintf(stderr, "swarm: seed %llu FAILED: %s\n  replay: %s\n  run folder: %s\n",
               static_cast<unsigned long long>(r.seed), why.c_str(),
               swarm_replay_command(o, r.seed).c_str(), dir.c_str());
}

}  // namespace

namespace {

// Runs every seed, `jobs` at a time, recording each as it ends.
Tally run_seeds(const SwarmOptions& o, const Scenario& base, std::ofstream& csv) {
  std::map<pid_t, Running> running;
  Tally tally;
  uint64_t next = o.first_seed;
  const uint64_t end = o.first_seed + o.seeds;
  auto last_note = Clock::now();
  while (next < end || !running.empty()) {
    while (next < end && running.size() < o.jobs) {
      const pid_t pid = spawn(o, base, next);
      if (pid < 0) {
        std::fprintf(stderr, "crowdtrain swarm: fork failed; waiting for the running seeds\n");
        next = end;
        break;
      }
      running[pid] = Running{next++, Clock::now()};
    }
    Outcome r;
    if (reap_one(o, running, r)) record(o, base, r, csv, tally);
    if (Clock::now() - last_note > std::chrono::seconds(10)) {
      last_note = Clock::now();
      std::fprintf(stderr, "swarm: %llu/%llu seeds done, %llu failed\n",
                   static_cast<unsigned long long>(tally.done),
                   static_cast<unsigned long long>(o.seeds),
                   static_cast<unsigned long long>(tally.failed));
    }
  }
  return tally;
}

}  // namespace

int run_swarm(const SwarmOptions& opt) {
  SwarmOptions o = opt;
  if (Status st = check_fault_plan_options(o.plan); !st.ok()) {
    std::fprintf(stderr, "crowdtrain swarm: %s\n", st.message().c_str());
    return kBrokenScenario;
  }
  auto base = load_scenario(o.scenario_path, o.overrides);
  if (!base.ok()) {
    std::fprintf(stderr, "crowdtrain: %s: %s\n", o.scenario_path.c_str(), base.error().c_str());
    return kBrokenScenario;
  }
  if (o.out_dir.empty()) o.out_dir = "runs/swarm-" + base->name;
  if (o.jobs == 0) o.jobs = std::max(1u, std::thread::hardware_concurrency());
  std::filesystem::create_directories(o.out_dir);
  std::ofstream csv(o.out_dir + "/swarm.csv");
  csv << "seed,verdict,faults,kills,partitions,clogs,losses,invariant_checks,wall_s\n";
  std::fprintf(stderr, "swarm: %s, seeds %llu..%llu, %u at a time, into %s\n",
               o.scenario_path.c_str(), static_cast<unsigned long long>(o.first_seed),
               static_cast<unsigned long long>(o.first_seed + o.seeds - 1), o.jobs,
               o.out_dir.c_str());
  const auto start = Clock::now();
  const Tally tally = run_seeds(o, *base, csv);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::string verdicts;
  for (const auto& [v, n] : tally.by_verdict) verdicts += " " + v + "=" + std::to_string(n);
  std::printf("swarm: %llu seeds, %llu failed (%s ) in %.0f s; %s/swarm.csv\n",
              static_cast<unsigned long long>(tally.done),
              static_cast<unsigned long long>(tally.failed), verdicts.c_str(), wall,
              o.out_dir.c_str());
  return tally.failed == 0 && tally.done == o.seeds ? 0 : 1;
}

namespace {

constexpr const char* kSwarmUsage =
    "usage: crowdtrain swarm SCENARIO [--seeds N] [--first-seed S | --seed S] [--jobs J]\n"
    "         [--warmup-s T] [--safety-s T] [--liveness-s T] [--grace-s T] [--faults MIN-MAX]\n"
    "         [--max-share F] [--max-fault-s T] [--timeout-s T] [--out DIR] [--keep]\n"
    "         [--set key=value]...\n";

int swarm_usage(const std::string& why) {
  std::fprintf(stderr, "crowdtrain swarm: %s\n%s", why.c_str(), kSwarmUsage);
  return 2;
}

// A number option's value; false (with `error` set) when it is not a finite number.
bool number_arg(const std::string& flag, const std::string& text, double& out, std::string& error) {
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(out) || out < 0) {
    error = flag + " needs a number >= 0, got \"" + text + "\"";
    return false;
  }
  return true;
}

// Parses "MIN-MAX" faults per plan.
bool faults_arg(const std::string& text, FaultPlanOptions& plan, std::string& error) {
  unsigned lo = 0, hi = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%u-%u%c", &lo, &hi, &tail) != 2) {
    error = "--faults needs MIN-MAX, e.g. 1-6, got \"" + text + "\"";
    return false;
  }
  plan.min_faults = lo;
  plan.max_faults = hi;
  return true;
}

// One option with its value: false with `error` set when it is wrong or unknown.
bool swarm_option(const std::string& flag, const std::string& v, SwarmOptions& o,
                  std::string& error) {
  double x = 0;
  const std::map<std::string, double*> numbers = {{"--warmup-s", &o.plan.warmup_s},
                                                  {"--safety-s", &o.plan.safety_s},
                                                  {"--liveness-s", &o.liveness_s},
                                                  {"--grace-s", &o.grace_s},
                                                  {"--max-share", &o.plan.max_kill_fraction},
                                                  {"--max-fault-s", &o.plan.max_fault_s},
                                                  {"--timeout-s", &o.timeout_s}};
  if (auto it = numbers.find(flag); it != numbers.end()) {
    if (!number_arg(flag, v, x, error)) return false;
    *it->second = x;
    return true;
  }
  if (flag == "--faults") return faults_arg(v, o.plan, error);
  if (flag == "--set") {
    o.overrides.push_back(v);
    return true;
  }
  if (flag == "--out") {
    o.out_dir = v;
    return true;
  }
  // Whole numbers: the smallest each takes.
  const std::map<std::string, double> wholes = {
      {"--seeds", 1}, {"--jobs", 1}, {"--first-seed", 0}, {"--seed", 0}};
  const auto whole = wholes.find(flag);
  if (whole == wholes.end()) {
    error = "unknown option " + flag;
    return false;
  }
  if (!number_arg(flag, v, x, error) || x != std::floor(x) || x < whole->second) {
    error = flag + " needs a whole number >= " + fmt(whole->second) + ", got \"" + v + "\"";
    return false;
  }
  if (flag == "--seeds") o.seeds = static_cast<uint64_t>(x);
  if (flag == "--first-seed") o.first_seed = static_cast<uint64_t>(x);
  if (flag == "--jobs") o.jobs = static_cast<uint32_t>(x);
  if (flag == "--seed") {  // replay one seed, keeping its folder
    o.first_seed = static_cast<uint64_t>(x);
    o.seeds = 1;
    o.keep_all = true;
  }
  return true;
}

}  // namespace

int swarm_main(const std::vector<std::string>& args) {
  SwarmOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string error;
    if (a == "--help" || a == "-h") {
      std::printf("%s", kSwarmUsage);
      return 0;
    }
    if (a == "--keep") {
      o.keep_all = true;
    } else if (!a.empty() && a[0] == '-') {
      if (i + 1 >= args.size()) return swarm_usage(a + " needs a value");
      if (!swarm_option(a, args[++i], o, error)) return swarm_usage(error);
    } else if (o.scenario_path.empty()) {
      o.scenario_path = a;
    } else {
      return swarm_usage("more than one scenario given (" + o.scenario_path + ", " + a + ")");
    }
  }
  if (o.scenario_path.empty()) return swarm_usage("no scenario given");
  if (!(o.grace_s < o.liveness_s)) return swarm_usage("--grace-s must be < --liveness-s");
  return run_swarm(o);
}

}  // namespace crowdtrain::sim
