// Intra-op thread settings shared by every model of the process, applied per worker thread.
#include "runtime_threads.h"

#include <ATen/Parallel.h>

#include <atomic>

#include "torch_runtime.h"

namespace sdvp::torch_runtime {

namespace {
std::atomic<int32_t> configured_threads{0};
thread_local int32_t applied_threads = 0;
}  // namespace

void set_threads(int32_t count) {
  configured_threads.store(count < 0 ? 0 : count);
  apply_thread_settings();
}

int32_t threads() {
  const int32_t count = configured_threads.load();
  return count > 0 ? count : static_cast<int32_t>(at::get_num_threads());
}

void apply_thread_settings() {
  const int32_t count = configured_threads.load();
  if (count > 0 && count != applied_threads) {
    at::set_num_threads(count);
    applied_threads = count;
  }
}

int32_t kernel_threads() {
  const int32_t count = configured_threads.load();
  return count > 0 ? count : 1;
}

}  // namespace sdvp::torch_runtime
