// Host side of the row-kernel choice: the device facts the rule reads, the process-wide settings
// (environment defaults, distill_loss_cuda_set_row_kernel) and the rule itself (docs/gpu.md,
// "Choosing the row kernel"). distill_loss_cuda.cu then checks a chosen cluster against the
// occupancy API and launches.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "distill_loss_cluster.cuh"
#include "distill_loss_cuda.h"

namespace sdvp {
namespace cuda_detail {

// Bytes of S and T one block stages by default: three such blocks (and their 1 KB reservations)
// fit the 228 KB of an sm_90 SM, so one block's barriers overlap two others' copies.
constexpr int64_t kDefaultStageBytes = 72 * 1024;

struct DeviceFacts {
  int cc_major = 0;
  int sms = 0;
  int64_t l2_bytes = 0;
  int64_t smem_optin = 0;  // the most dynamic shared memory one block may ask for
};

// The current device's facts, read once per device.
inline DeviceFacts device_facts() {
#ifdef SDVP_CUDA_EMULATE
  // The emulation stands in for an H100 (the kernels' logic does not depend on these).
  DeviceFacts f;
  f.cc_major = 9;
  f.sms = 132;
  f.l2_bytes = 50ll << 20;
  f.smem_optin = 227 * 1024;
  return f;
#else
  constexpr int kDevices = 64;
  static std::mutex mutex;
  static DeviceFacts facts[kDevices];
  static bool known[kDevices] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kDevices) {
    (void)cudaGetLastError();
    return DeviceFacts{};
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (!known[device]) {
    DeviceFacts f;
    int value = 0;
    if (cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess)
      f.cc_major = value;
    if (cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device) == cudaSuccess)
      f.sms = value;
    if (cudaDeviceGetAttribute(&value, cudaDevAttrL2CacheSize, device) == cudaSuccess)
      f.l2_bytes = value;
    if (cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) ==
        cudaSuccess)
      f.smem_optin = value;
    (void)cudaGetLastError();
    facts[device] = f;
    known[device] = true;
  }
  return facts[device];
#endif
}

// ---- settings
// -------------------------------------------------------------------------------------

struct RowKernelSettings {
  CudaRowKernel choice = CudaRowKernel::kAuto;
  int32_t cluster_size = 0;  // 0: by the rule
  int64_t stage_bytes = 0;   // 0: kDefaultStageBytes
};

inline bool valid_cluster_size(int64_t c) {
  return c == 0 || c == 1 || c == 2 || c == 4 || c == 8 || c == kMaxClusterSize;
}

class RowKernelSettingsStore {
 public:
  RowKernelSettings get() {
    std::call_once(env_once_, [this] { from_environment(); });
    RowKernelSettings s;
    s.choice = static_cast<CudaRowKernel>(choice_.load());
    s.cluster_size = cluster_size_.load();
    s.stage_bytes = stage_bytes_.load();
    return s;
  }

  bool set(CudaRowKernel choice, int32_t cluster_size, int64_t stage_bytes) {
    const int32_t c = static_cast<int32_t>(choice);
    if (c < 0 || c > 2 || !valid_cluster_size(cluster_size) || stage_bytes < 0) return false;
    std::call_once(env_once_, [this] { from_environment(); });
    choice_.store(c);
    cluster_size_.store(cluster_size);
    stage_bytes_.store(stage_bytes);
    return true;
  }

 private:
  // Unknown or malformed values leave the default in place (the plan's reason names the choice).
  void from_environment() {
    if (const char* v = std::getenv("SDVP_CUDA_ROW_KERNEL")) {
      if (std::strcmp(v, "block") == 0) choice_.store(static_cast<int32_t>(CudaRowKernel::kBlock));
      if (std::strcmp(v, "cluster") == 0)
        choice_.store(static_cast<int32_t>(CudaRowKernel::kCluster));
    }
    if (const char* v = std::getenv("SDVP_CUDA_CLUSTER_SIZE")) {
      const long c = std::strtol(v, nullptr, 10);
      if (valid_cluster_size(c)) cluster_size_.store(static_cast<int32_t>(c));
    }
    if (const char* v = std::getenv("SDVP_CUDA_STAGE_BYTES")) {
      const long long b = std::strtoll(v, nullptr, 10);
      if (b > 0) stage_bytes_.store(b);
    }
  }

  std::once_flag env_once_;
  std::atomic<int32_t> choice_{0};
  std::atomic<int32_t> cluster_size_{0};
  std::atomic<int64_t> stage_bytes_{0};
};

inline RowKernelSettingsStore& row_kernel_settings() {
  static RowKernelSettingsStore store;
  return store;
}

// ---- the rule
// ------------------------------------------------------------------------------------

// What the rule needs to know about a call.
struct RowShape {
  int64_t rows = 0, vocab = 0;
  int elem_bytes = 4;
  bool dense = false, topk = false, grad = false, co_aligned = false;
};

struct RowChoice {
  bool cluster = false;
  int cluster_size = 1;
  int threads = 0;
  int64_t stage_vectors = 0, bitmap_words = 0;
  int64_t slice_bytes = 0;  // the bytes of S (and T) one block owns: staged when co-aligned
  size_t smem = 0;
  const char* reason = "";
};

// The cluster launch for `c` blocks per row: staged vectors, bitmap, threads and shared memory.
inline RowChoice cluster_launch(const RowShape& shape, int c) {
  RowChoice r;
  r.cluster = true;
  r.cluster_size = c;
  const int64_t vec = 16 / shape.elem_bytes;
  const int64_t row_vectors = shape.vocab / vec;  // at least the row's whole aligned vectors
  r.stage_vectors = shape.co_aligned ? (row_vectors + c - 1) / c : 0;
  const int64_t span =
      shape.co_aligned ? r.stage_vectors * vec + 2 * vec : (shape.vocab + c - 1) / c;
  r.bitmap_words = shape.topk ? (span + 31) / 32 + 2 : 0;
  r.slice_bytes =
      (shape.co_aligned ? r.stage_vectors * 16 : span * shape.elem_bytes) * (shape.dense ? 2 : 1);
  r.threads = (r.stage_vectors >= 1024 || (!shape.co_aligned && span >= 4096)) ? kMaxThreads : 128;
  r.smem = cluster_smem_layout(r.stage_vectors, shape.dense, r.bitmap_words).total;
  return r;
}

// Returns the cluster launch to use, or one with cluster = false and the reason for the block
// kernel. The occupancy check comes after (it needs the kernel).
inline RowChoice choose_row_kernel(const RowShape& shape, const DeviceFacts& dev,
                                   const RowKernelSettings& settings) {
  RowChoice block;
  const bool forced = settings.choice == CudaRowKernel::kCluster;
  auto no = [&](const char* why) {
    block.reason = why;
    return block;
  };
  if (settings.choice == CudaRowKernel::kBlock) return no("block kernel chosen by the settings");
  if (dev.cc_major < 9) return no("thread-block clusters need sm_90 or newer");
  if (!forced && !shape.grad) return no("no gradient: the block kernel reads S and T once");
  if (!forced && !shape.co_aligned)
    return no("S, T and dS rows are not equally aligned: no 16-byte vectors to stage");

  const int64_t budget = settings.stage_bytes > 0 ? settings.stage_bytes : kDefaultStageBytes;
  RowChoice chosen;
  if (settings.cluster_size > 0) {
    chosen = cluster_launch(shape, settings.cluster_size);
    if (static_cast<int64_t>(chosen.smem) > dev.smem_optin)
      return no("the requested cluster size leaves a slice larger than a block's shared memory");
  } else {
    bool found = false;
    for (int c = 1; c <= kMaxClusterSize && !found; c *= 2) {
      chosen = cluster_launch(shape, c);
      found = chosen.slice_bytes <= budget && static_cast<int64_t>(chosen.smem) <= dev.smem_optin;
    }
    if (!found) {
      chosen = cluster_launch(shape, kMaxClusterSize);
      if (static_cast<int64_t>(chosen.smem) > dev.smem_optin)
        return no("the row is too long to stage in the shared memory of 16 blocks");
    }
  }
  if (shape.rows > INT_MAX / chosen.cluster_size)
    return no("rows x cluster size exceeds the grid limit");
  if (forced) {
    chosen.reason = "cluster kernel chosen by the settings";
    return chosen;
  }
  // The block kernel keeps up to kMinBlocksPerSm rows per SM in flight; when they exceed half the
  // L2, pass 2's re-read of S and T comes mostly from HBM and the cluster kernel's single read
  // wins.
  const int64_t row_bytes = shape.vocab * shape.elem_bytes * (shape.dense ? 2 : 1);
  const int64_t in_flight = shape.rows < int64_t{kMinBlocksPerSm} * dev.sms
                                ? shape.rows
                                : int64_t{kMinBlocksPerSm} * dev.sms;
  if (in_flight * row_bytes > dev.l2_bytes / 2) {
    chosen.reason = "rows in flight exceed half the L2: stage each row once in a cluster";
    return chosen;
  }
  if (shape.rows < dev.sms && chosen.cluster_size >= 2) {
    chosen.reason = "fewer rows than SMs: a cluster spreads each row over several SMs";
    return chosen;
  }
  return no("rows in flight fit in half the L2: the block kernel's re-read hits L2");
}

}  // namespace cuda_detail
}  // namespace sdvp
