// Process-wide allocator settings for tensor work. glibc's malloc hands blocks above its mmap
// threshold (dynamic, up to 32 MiB) back to the kernel on free and trims the heap's top, so every
// LibTorch temporary of a few MiB (a weight gradient of a 512x2048 layer is 4 MiB) came back as
// fresh pages the kernel had to fault in and zero: an expert's backward at batch 4 spent most of
// its time in page faults (docs/benchmarks.md, "Allocator"). keep_freed_memory() keeps freed
// memory in the process for reuse. Call it once, first thing in main(); a no-op off glibc, and
// when the environment sets CROWDTRAIN_MALLOC_DEFAULTS (to measure the difference).
#pragma once

namespace crowdtrain {

void keep_freed_memory();

}  // namespace crowdtrain
