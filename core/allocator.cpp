// See allocator.h.
#include "core/allocator.h"

#include <cstdlib>  // defines __GLIBC__ (features.h)

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace crowdtrain {

void keep_freed_memory() {
#if defined(__GLIBC__)
  // For side-by-side measurements (docs/benchmarks.md): glibc's defaults when this is set.
  if (std::getenv("CROWDTRAIN_MALLOC_DEFAULTS") != nullptr) return;
  // Blocks up to 32 MiB (glibc's largest threshold on 64-bit) come from the heap, and the heap's
  // top is never trimmed: memory freed by one tensor is reused by the next one, not returned.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
}

}  // namespace crowdtrain
