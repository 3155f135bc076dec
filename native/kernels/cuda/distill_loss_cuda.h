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

// Number of CUDA devices visible to the runtime (0 when there is no driver or no GPU).
int cuda_device_count();

// CUDA runtime version this library was compiled against, e.g. 13000.
int cuda_runtime_version();

}  // namespace sdvp
