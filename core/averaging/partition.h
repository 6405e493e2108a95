// How a flat vector is cut for butterfly all-reduce (hivemind's partition): member j's part is the
// contiguous range [offset_j, offset_j + size_j) of the vector, and each part travels as chunks of
// at most `chunk_bytes` on the wire (512 KiB by default), numbered from 0 in vector order. Pure
// functions over sizes; the tensors themselves are sliced by the all-reduce. No state, no threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace crowdtrain {

constexpr size_t kDefaultChunkBytes = 512u << 10;

struct Span {
  int64_t offset = 0;  // first element, from the start of the whole vector
  int64_t size = 0;    // elements
  bool operator==(const Span& o) const { return offset == o.offset && size == o.size; }
};

// Member j's part, for part sizes that sum to the vector length.
std::vector<Span> part_spans(const std::vector<int64_t>& part_sizes);

// How many elements fit in one chunk: (chunk_bytes - overhead_bytes) / bytes_per_element, at
// least 1. `overhead_bytes` is what a codec adds per chunk (an 8-bit codebook, say).
int64_t chunk_elements(size_t chunk_bytes, double bytes_per_element, size_t overhead_bytes);

// The chunks of `part`: consecutive spans of at most `max_elements` (> 0), covering it exactly.
// An empty part has no chunks.
std::vector<Span> chunk_spans(const Span& part, int64_t max_elements);
// Their number without building them.
int64_t chunk_count(int64_t part_size, int64_t max_elements);
// Chunk `k` of `part` (k < chunk_count).
Span chunk_span(const Span& part, int64_t max_elements, int64_t k);

}  // namespace crowdtrain
