// See allocator.h.
#include "core/allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdlib>  // defines __GLIBC__ (features.h)
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace crowdtrain {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
std::atomic<bool> g_huge{true};

// Blocks above glibc's largest mmap threshold are mapped afresh by every allocation and unmapped
// by every free, so a tensor of that size made each round (an all-reduce's 40 MB delta) faulted
// in and zeroed its pages each time. Freed ones are kept here, up to kBigCacheBytes, for the next
// allocation of the same rounded size.
constexpr size_t kGlibcMmapMax = size_t{32} << 20;
constexpr size_t kBigCacheBytes = size_t{256} << 20;

struct BigBlocks {
  std::mutex mu;
  std::unordered_map<void*, size_t> size_of;  // every live or cached big block
  std::multimap<size_t, void*> free;          // cached, by rounded size
  size_t cached = 0;
};
BigBlocks& big_blocks() {
  static auto* b = new BigBlocks;  // never destroyed: frees may come during exit
  return *b;
}
std::atomic<size_t> g_big_live{0};  // big blocks allocated and not returned to glibc

void* alloc_block(size_t n) {
  void* p = nullptr;
  if (n >= kHugeBlockBytes && g_huge.load(std::memory_order_relaxed)) {
    const size_t rounded = (n + kHugePage - 1) / kHugePage * kHugePage;
    const bool big = rounded > kGlibcMmapMax;
    if (big) {
      BigBlocks& b = big_blocks();
      std::lock_guard<std::mutex> lock(b.mu);
      auto it = b.free.find(rounded);
      if (it != b.free.end()) {
        p = it->second;
        b.free.erase(it);
        b.cached -= rounded;
        return p;
      }
    }
    if (posix_memalign(&p, kHugePage, rounded) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, rounded, MADV_HUGEPAGE);  // advice: ignored where huge pages are off
#endif
    if (big) {
      BigBlocks& b = big_blocks();
      std::lock_guard<std::mutex> lock(b.mu);
      b.size_of[p] = rounded;
      g_big_live.fetch_add(1, std::memory_order_relaxed);
    }
    return p;
  }
  if (posix_memalign(&p, 64, n == 0 ? 1 : n) != 0) throw std::bad_alloc();
  return p;
}

void free_block(void* p) {
  if (p != nullptr && g_big_live.load(std::memory_order_relaxed) > 0) {
    BigBlocks& b = big_blocks();
    std::lock_guard<std::mutex> lock(b.mu);
    auto it = b.size_of.find(p);
    if (it != b.size_of.end()) {
      if (b.cached + it->second <= kBigCacheBytes) {
        b.free.emplace(it->second, p);
        b.cached += it->second;
        return;
      }
      b.size_of.erase(it);
      g_big_live.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  std::free(p);
}

// LibTorch's CPU tensors through alloc_block (its default allocator: posix_memalign, 64 bytes).
class HugeBlockCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    void* p = n == 0 ? nullptr : alloc_block(n);
    return {p, p, &free_block, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &free_block; }
};

HugeBlockCpuAllocator g_cpu_allocator;

}  // namespace

void keep_freed_memory() {
  // For side-by-side measurements (docs/benchmarks.md): glibc's and LibTorch's defaults.
  if (std::getenv("CROWDTRAIN_MALLOC_DEFAULTS") != nullptr) {
    set_huge_blocks(false);
    return;
  }
#if defined(__GLIBC__)
  // Blocks up to 32 MiB (glibc's largest threshold on 64-bit) come from the heap, and the heap's
  // top is never trimmed: memory freed by one tensor is reused by the next one, not returned.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
  c10::SetCPUAllocator(&g_cpu_allocator, /*priority=*/1);
}

std::shared_ptr<uint8_t> alloc_bytes(size_t size) {
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(alloc_block(size)), &free_block);
}

size_t cached_block_bytes() {
  BigBlocks& b = big_blocks();
  std::lock_guard<std::mutex> lock(b.mu);
  return b.cached;
}

void set_huge_blocks(bool on) { g_huge.store(on, std::memory_order_relaxed); }
bool huge_blocks() { return g_huge.load(std::memory_order_relaxed); }

}  // namespace crowdtrain
