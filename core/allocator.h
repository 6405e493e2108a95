// Process-wide allocator settings for tensor work.
//
// glibc's malloc hands blocks above its mmap threshold (dynamic, up to 32 MiB) back to the kernel
// on free and trims the heap's top, so every LibTorch temporary of a few MiB (a weight gradient of
// a 512x2048 layer is 4 MiB) came back as fresh pages the kernel had to fault in and zero: an
// expert's backward at batch 4 spent most of its time in page faults (docs/benchmarks.md,
// "Allocator"). keep_freed_memory() keeps freed memory in the process for reuse.
//
// Blocks above 32 MiB are always mapped afresh, and on a virtual machine a 4 KiB page fault can
// cost ~10 us: a 64 MiB tensor took 190 ms to allocate and fill where memcpy took 4.7 ms. Large
// blocks (kHugeBlockBytes and up) are therefore aligned to 2 MiB and advised as transparent huge
// pages (MADV_HUGEPAGE; the kernel's default THP mode "madvise" honours it), one fault per 2 MiB:
// keep_freed_memory() installs a LibTorch CPU allocator that does so, and alloc_bytes() gives
// message buffers the same. Freed blocks above 32 MiB (which glibc would unmap) are kept, up to
// 256 MiB in all, for the next allocation of the same size: a tensor made every round (an
// all-reduce's delta) reuses its pages instead of faulting in and zeroing fresh ones.
//
// Call keep_freed_memory() once, first thing in main(); a no-op off glibc/Linux, and when the
// environment sets CROWDTRAIN_MALLOC_DEFAULTS (to measure the difference).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace crowdtrain {

constexpr size_t kHugeBlockBytes = size_t{4} << 20;

void keep_freed_memory();

// An uninitialised buffer of `size` bytes (64-byte aligned; large ones as above).
std::shared_ptr<uint8_t> alloc_bytes(size_t size);

// Bytes of freed big blocks kept for reuse (at most 256 MiB).
size_t cached_block_bytes();

// Whether large blocks are advised as huge pages (on by default; off to measure the difference in
// one process, e.g. the averaging benchmark).
void set_huge_blocks(bool on);
bool huge_blocks();

}  // namespace crowdtrain
