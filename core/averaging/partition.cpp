#include "core/averaging/partition.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace crowdtrain {

std::vector<Span> part_spans(const std::vector<int64_t>& part_sizes) {
  std::vector<Span> spans;
  spans.reserve(part_sizes.size());
  int64_t offset = 0;
  for (int64_t size : part_sizes) {
    CT_CHECK(size >= 0);
    spans.push_back({offset, size});
    offset += size;
  }
  return spans;
}

int64_t chunk_elements(size_t chunk_bytes, double bytes_per_element, size_t overhead_bytes) {
  CT_CHECK(bytes_per_element > 0);
  if (chunk_bytes <= overhead_bytes) return 1;
  const double n =
      std::floor(static_cast<double>(chunk_bytes - overhead_bytes) / bytes_per_element);
  return std::max<int64_t>(1, static_cast<int64_t>(n));
}

int64_t chunk_count(int64_t part_size, int64_t max_elements) {
  CT_CHECK(part_size >= 0 && max_elements > 0);
  return (part_size + max_elements - 1) / max_elements;
}

Span chunk_span(const Span& part, int64_t max_elements, int64_t k) {
  CT_CHECK(k >= 0 && k < chunk_count(part.size, max_elements));
  const int64_t begin = k * max_elements;
  return {part.offset + begin, std::min(max_elements, part.size - begin)};
}

std::vector<Span> chunk_spans(const Span& part, int64_t max_elements) {
  const int64_t n = chunk_count(part.size, max_elements);
  std::vector<Span> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) out.push_back(chunk_span(part, max_elements, k));
  return out;
}

}  // namespace crowdtrain
