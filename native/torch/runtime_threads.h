// Thread settings of the runtime: the count set by set_threads() applied to whichever thread runs a
// model (LibTorch's OpenMP count is per calling thread), and the count the CPU fused kernel uses.
#pragma once

#include <cstdint>

namespace sdvp::torch_runtime {

// Applies the configured intra-op thread count (when one was configured) and the graph-optimisation
// switch to the calling thread, when they differ from what this thread last applied.
void apply_thread_settings();

// Threads for the CPU fused kernel: the configured count, or 1 (the objective on one batch is tiny
// next to the model, and per-call threads would cost more than they save).
int32_t kernel_threads();

}  // namespace sdvp::torch_runtime
