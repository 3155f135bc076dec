// The memory-floor probe: out = a + b, the same traffic as a dense fp32 call (read S and T, write
// dS), spread over threads exactly like the kernel so the benchmark compares like with like.
#include <algorithm>

#include "../distill_loss.h"
#include "parallel_for.h"

namespace sdvp {

void memory_floor_probe(const float* a, const float* b, float* out, int64_t n, int32_t threads) {
  constexpr int64_t kChunk = 1 << 16;  // 256 KiB of each array per chunk
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, threads <= 0 ? hardware_threads() : threads, [&](int64_t chunk, int32_t) {
    const int64_t begin = chunk * kChunk;
    const int64_t end = std::min(n, begin + kChunk);
    for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
  });
}

}  // namespace sdvp
