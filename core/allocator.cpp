// See allocator.h.
#include "core/allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdlib>  // defines __GLIBC__ (features.h)
#include <new>

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

void* alloc_block(size_t n) {
  void* p = nullptr;
  if (n >= kHugeBlockBytes && g_huge.load(std::memory_order_relaxed)) {
    const size_t rounded = (n + kHugePage - 1) / kHugePage * kHugePage;
    if (posix_memalign(&p, kHugePage, rounded) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, rounded, MADV_HUGEPAGE);  // advice: ignored where huge pages are off
#endif
    return p;
  }
  if (posix_memalign(&p, 64, n == 0 ? 1 : n) != 0) throw std::bad_alloc();
  return p;
}

void free_block(void* p) { std::free(p); }

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

void set_huge_blocks(bool on) { g_huge.store(on, std::memory_order_relaxed); }
bool huge_blocks() { return g_huge.load(std::memory_order_relaxed); }

}  // namespace crowdtrain
