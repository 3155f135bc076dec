// Process-wide settings of the runtime: the thread count set by set_threads() and the
// graph-optimisation switch, applied to whichever thread runs a model (both are per-thread in
// LibTorch); the thread count of the CPU fused kernel; and the allocator tuning every run benefits
// from.
#pragma once

#include <cstdint>

namespace sdvp::torch_runtime {

// Applies the configured intra-op thread count (when one was configured) and the graph-optimisation
// switch to the calling thread, when they differ from what this thread last applied.
void apply_thread_settings();

// Once per process, on glibc: keeps allocations up to 32 MiB on the heap and freed memory there for
// the next step (mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD). With glibc's defaults every train
// step maps and unmaps its activations afresh, and the page faults cost more than the convolutions
// on a small model (a quarter of the step for tiny-vlm). SDVP_MALLOC_TUNING=0 in the environment
// skips it.
void tune_allocator_once();

// Threads for the CPU fused kernel: the configured count, or 1 (the objective on one batch is tiny
// next to the model, and per-call threads would cost more than they save).
int32_t kernel_threads();

}  // namespace sdvp::torch_runtime
