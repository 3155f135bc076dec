// Process-wide runtime settings: intra-op threads and graph optimisation applied per running
// thread, and the allocator tuning.
#include "runtime_settings.h"

#include <ATen/Parallel.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "torch_runtime.h"

namespace sdvp::torch_runtime {

namespace {
std::atomic<int32_t> configured_threads{0};
std::atomic<bool> configured_optimization{false};
thread_local int32_t applied_threads = 0;
thread_local int applied_optimization = -1;
}  // namespace

void set_threads(int32_t count) {
  configured_threads.store(count < 0 ? 0 : count);
  apply_thread_settings();
}

int32_t threads() {
  const int32_t count = configured_threads.load();
  return count > 0 ? count : static_cast<int32_t>(at::get_num_threads());
}

void set_graph_optimization(bool enabled) { configured_optimization.store(enabled); }

bool graph_optimization() { return configured_optimization.load(); }

void apply_thread_settings() {
  const int32_t count = configured_threads.load();
  if (count > 0 && count != applied_threads) {
    at::set_num_threads(count);
    applied_threads = count;
  }
  // TorchScript's optimising executor is a per-thread switch.
  const int optimization = configured_optimization.load() ? 1 : 0;
  if (optimization != applied_optimization) {
    torch::jit::setGraphExecutorOptimize(optimization == 1);
    applied_optimization = optimization;
  }
}

void tune_allocator_once() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    const char* setting = std::getenv("SDVP_MALLOC_TUNING");
    if (setting != nullptr && std::strcmp(setting, "0") == 0) return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  });
}

int32_t kernel_threads() {
  const int32_t count = configured_threads.load();
  return count > 0 ? count : 1;
}

}  // namespace sdvp::torch_runtime
