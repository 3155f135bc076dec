// CUDA entry points of the fused distillation objective: same DistillLossSpec, device pointers, no
// host sync.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../distill_loss.h"

namespace sdvp {

// Device-side result of one call, written by the kernels (the host reads it only when it wants to).
struct DistillLossDeviceResult {
  float loss;          // reduced loss (kNone: sum of row losses)
  float normalizer;    // divisor applied
  int32_t status;      // a Status value; kOk unless a label or top-k index was out of range
  int32_t bad_row;     // first offending row, or -1
  int64_t bad_value;   // offending label / index
  int64_t valid_rows;  // rows with a label or a teacher, and weight > 0
};

// Bytes of device workspace a call with this spec needs (per-row partial losses and counters).
size_t distill_loss_cuda_workspace_bytes(const DistillLossSpec& spec);

// Enqueues the fused objective on `stream` (a cudaStream_t; null = the default stream). Every
// pointer in `spec` (student, teacher, labels, weights, grad, row_loss, stats) is a device pointer;
// `result` and `workspace` are device memory of sizeof(DistillLossDeviceResult) and
// distill_loss_cuda_workspace_bytes(spec). spec.threads and spec.cancel are ignored.
// Returns 0 on a successful launch, otherwise the cudaError_t value of the failure.
int distill_loss_cuda(const DistillLossSpec& spec, DistillLossDeviceResult* result, void* workspace,
                      void* stream);

// The row kernels (docs/gpu.md): kBlock reads a whole row per block and re-reads it for the
// gradient (from L2 when the rows in flight fit there); kCluster splits each row across a
// thread-block cluster (sm_90) that stages it in shared memory, so S and T are read once. kAuto
// takes the rule of docs/gpu.md, "Choosing the row kernel".
enum class CudaRowKernel : int32_t { kAuto = 0, kBlock = 1, kCluster = 2 };

// Sets the process-wide choice (every later call; thread-safe). cluster_size: 0 = by the rule, else
// 1, 2, 4, 8 or 16 blocks per row; stage_bytes: the most bytes of S and T one block stages (0 =
// the default, 72 KiB, which leaves room for three blocks per SM). The defaults come from the
// environment: SDVP_CUDA_ROW_KERNEL (auto|block|cluster), SDVP_CUDA_CLUSTER_SIZE,
// SDVP_CUDA_STAGE_BYTES. Returns false (and changes nothing) for an unknown choice or size.
bool distill_loss_cuda_set_row_kernel(CudaRowKernel choice, int32_t cluster_size,
                                      int64_t stage_bytes);

// The launch a call with this spec would make on the current device, and why.
struct DistillLossCudaPlan {
  CudaRowKernel kernel;  // kBlock or kCluster
  int32_t cluster_size;  // blocks per row (1 for kBlock)
  int32_t threads;       // per block
  int64_t smem_bytes;    // dynamic shared memory per block
  const char* reason;    // a static string
};
DistillLossCudaPlan distill_loss_cuda_plan(const DistillLossSpec& spec);

// Number of CUDA devices visible to the runtime (0 when there is no driver or no GPU).
int cuda_device_count();

// CUDA runtime version this library was compiled against, e.g. 13000.
int cuda_runtime_version();

}  // namespace sdvp
