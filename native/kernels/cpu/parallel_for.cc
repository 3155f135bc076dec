// parallel_for: dynamic chunk scheduling over per-call threads. Per-call threads keep every entry
// point reentrant (two async calls may run at once) at a cost of tens of microseconds, which the
// callers avoid for small problems by asking for one thread.
#include "parallel_for.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sdvp {

int32_t hardware_threads() {
  // Asked once: std::thread::hardware_concurrency() is a system call, and small calls come often.
  static const int32_t count = [] {
    const unsigned value = std::thread::hardware_concurrency();
    return value == 0 ? 1 : static_cast<int32_t>(value);
  }();
  return count;
}

void parallel_for(int64_t chunks, int32_t threads,
                  const std::function<void(int64_t, int32_t)>& body) {
  if (chunks <= 0) return;
  if (threads < 1) threads = 1;
  if (threads > chunks) threads = static_cast<int32_t>(chunks);
  if (threads == 1) {
    for (int64_t chunk = 0; chunk < chunks; ++chunk) body(chunk, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto work = [&](int32_t worker) {
    try {
      for (int64_t chunk = next.fetch_add(1); chunk < chunks; chunk = next.fetch_add(1))
        body(chunk, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
      next.store(chunks);  // stop handing out work
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(static_cast<size_t>(threads - 1));
  for (int32_t worker = 1; worker < threads; ++worker) helpers.emplace_back(work, worker);
  work(0);
  for (auto& helper : helpers) helper.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace sdvp
