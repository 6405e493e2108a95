// main() of the benchmarks that run with the crowdtrain binary's allocator settings
// (keep_freed_memory, core/allocator.h), as a peer does.
#include <benchmark/benchmark.h>

#include "core/allocator.h"

int main(int argc, char** argv) {
  crowdtrain::keep_freed_memory();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
