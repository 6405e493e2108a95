// gloo's all-reduce between processes on loopback, the reference that issue 14 measures our live
// butterfly all-reduce against (analysis/run_allreduce_vs_gloo.sh runs both in one invocation).
// One process per rank: they meet through a file store in a shared folder, connect a full mesh of
// TCP pairs, then run `reps` all-reduces of `floats` float32 (sum), each after a barrier, and rank
// 0 prints one CSV line per repetition: algorithm,processes,floats,rep,ms,1 (the slowest rank's
// time: every rank reports to rank 0 through the store; 1: complete, the sum checked).
// usage: gloo_allreduce RANK SIZE STORE_DIR FLOATS REPS ring|halving_doubling
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/barrier_all_to_one.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: gloo_allreduce RANK SIZE STORE_DIR FLOATS REPS ring|halving_doubling\n");
  return 2;
}

std::unique_ptr<gloo::Algorithm> make_algorithm(const std::string& name,
                                                const std::shared_ptr<gloo::Context>& ctx,
                                                float* data, int count) {
  if (name == "ring")
    return std::make_unique<gloo::AllreduceRing<float>>(ctx, std::vector<float*>{data}, count);
  if (name == "halving_doubling") {
    return std::make_unique<gloo::AllreduceHalvingDoubling<float>>(ctx, std::vector<float*>{data},
                                                                   count);
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) return usage();
  const int rank = std::atoi(argv[1]), size = std::atoi(argv[2]);
  const std::string dir = argv[3], algorithm = argv[6];
  const long floats = std::atol(argv[4]);
  const int reps = std::atoi(argv[5]);
  if (rank < 0 || size < 2 || rank >= size || floats <= 0 || reps <= 0) return usage();

  gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.1";
  auto device = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(dir);
  auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
  context->setTimeout(std::chrono::seconds(120));
  context->connectFullMesh(store, device);

  std::vector<float> data(static_cast<size_t>(floats));
  auto allreduce = make_algorithm(algorithm, context, data.data(), static_cast<int>(floats));
  if (!allreduce) return usage();
  gloo::BarrierAllToOne barrier(context);
  for (int rep = 0; rep < reps; ++rep) {
    std::fill(data.begin(), data.end(), static_cast<float>(rank + 1));
    barrier.run();
    const auto t0 = std::chrono::steady_clock::now();
    allreduce->run();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const float want = static_cast<float>(size) * (size + 1) / 2;
    if (data.front() != want || data.back() != want) {
      std::fprintf(stderr, "gloo_allreduce: rank %d got %g, want %g\n", rank, data.front(), want);
      return 1;
    }
    // The slowest rank's time: each rank puts its own under a key, rank 0 reads them all.
    const std::string mine = std::to_string(ms);
    store.set("t" + std::to_string(rep) + "." + std::to_string(rank),
              std::vector<char>(mine.begin(), mine.end()));
    if (rank == 0) {
      double slowest = 0;
      for (int r = 0; r < size; ++r) {
        auto v = store.get("t" + std::to_string(rep) + "." + std::to_string(r));
        slowest = std::max(slowest, std::atof(std::string(v.begin(), v.end()).c_str()));
      }
      std::printf("gloo_%s,%d,%ld,%d,%.3f,1\n", algorithm.c_str(), size, floats, rep, slowest);
      std::fflush(stdout);
    }
  }
  return 0;
}
