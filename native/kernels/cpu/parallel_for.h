// Spreads chunks of work over CPU threads: the calling thread works too, the rest are spawned per
// call.
#pragma once

#include <cstdint>
#include <functional>

namespace sdvp {

// Calls body(chunk, worker) for every chunk in [0, chunks) on up to `threads` threads (worker in
// [0, threads)). Chunks are handed out dynamically. Returns once every started chunk has finished.
// Exceptions thrown by `body` are rethrown on the calling thread (the first one wins).
void parallel_for(int64_t chunks, int32_t threads,
                  const std::function<void(int64_t, int32_t)>& body);

// Number of hardware threads (at least 1).
int32_t hardware_threads();

}  // namespace sdvp
