// A flat C ABI over the CUDA distillation kernels for the Python ctypes harness: plain arguments
// in, the C++ spec struct is filled here, so Python never has to mirror DistillLossSpec's layout.
#include <cstddef>
#include <cstdint>

#include "cuda/distill_loss_cuda.h"

#ifdef SDVP_CUDA_EMULATE
#include "cuda_emu.h"
#else
#include <cuda_runtime.h>
#endif

namespace {

// The row-kernel plan of the last sdvp_gpu_distill_loss call (the harness's tables name it).
sdvp::DistillLossCudaPlan last_plan{sdvp::CudaRowKernel::kBlock, 1, 0, 0, "no call yet"};

sdvp::DistillLossSpec make_spec(int64_t rows, int64_t vocab, int32_t dtype, int32_t teacher_kind,
                                int64_t topk) {
  sdvp::DistillLossSpec spec;
  spec.rows = rows;
  spec.vocab = vocab;
  spec.dtype = static_cast<sdvp::DType>(dtype);
  spec.teacher_kind = static_cast<sdvp::TeacherKind>(teacher_kind);
  spec.topk = topk;
  return spec;
}

}  // namespace

extern "C" {

int sdvp_gpu_distill_loss(int64_t rows, int64_t vocab, int32_t dtype, const void* student,
                          int32_t teacher_kind, const void* teacher_logits,
                          const int32_t* topk_indices, const float* topk_logprobs, int64_t topk,
                          int32_t topk_missing, const int32_t* labels, int32_t ignore_index,
                          float ce_weight, float kd_weight, float temperature, int32_t t2,
                          int32_t divergence, float jsd_beta, float label_smoothing, float z_loss,
                          const float* row_weights, int32_t reduction, int32_t has_normalizer,
                          double normalizer, void* grad, float grad_scale, float* row_loss,
                          float* stats_lse, float* stats_ce, float* stats_kd, int32_t* stats_argmax,
                          void* result, void* workspace, void* stream) {
  sdvp::DistillLossSpec spec = make_spec(rows, vocab, dtype, teacher_kind, topk);
  spec.student = student;
  spec.teacher_logits = teacher_logits;
  spec.topk_indices = topk_indices;
  spec.topk_logprobs = topk_logprobs;
  spec.topk_missing = static_cast<sdvp::TopKMissing>(topk_missing);
  spec.labels = labels;
  spec.ignore_index = ignore_index;
  spec.ce_weight = ce_weight;
  spec.kd_weight = kd_weight;
  spec.temperature = temperature;
  spec.t2 = t2 != 0;
  spec.divergence = static_cast<sdvp::Divergence>(divergence);
  spec.jsd_beta = jsd_beta;
  spec.label_smoothing = label_smoothing;
  spec.z_loss = z_loss;
  spec.row_weights = row_weights;
  spec.reduction = static_cast<sdvp::Reduction>(reduction);
  spec.has_normalizer = has_normalizer != 0;
  spec.normalizer = normalizer;
  spec.grad = grad;
  spec.grad_scale = grad_scale;
  spec.row_loss = row_loss;
  spec.stats_lse = stats_lse;
  spec.stats_ce = stats_ce;
  spec.stats_kd = stats_kd;
  spec.stats_argmax = stats_argmax;
  last_plan = sdvp::distill_loss_cuda_plan(spec);
  return sdvp::distill_loss_cuda(spec, static_cast<sdvp::DistillLossDeviceResult*>(result),
                                 workspace, stream);
}

size_t sdvp_gpu_workspace_bytes(int64_t rows, int64_t vocab, int32_t dtype, int32_t teacher_kind,
                                int64_t topk) {
  return sdvp::distill_loss_cuda_workspace_bytes(make_spec(rows, vocab, dtype, teacher_kind, topk));
}

// sizeof(DistillLossDeviceResult) and the offsets of loss, normalizer, status, bad_row, bad_value,
// valid_rows, so the harness can check its decoding instead of trusting it.
void sdvp_gpu_result_layout(int64_t* out7) {
  using R = sdvp::DistillLossDeviceResult;
  out7[0] = sizeof(R);
  out7[1] = offsetof(R, loss);
  out7[2] = offsetof(R, normalizer);
  out7[3] = offsetof(R, status);
  out7[4] = offsetof(R, bad_row);
  out7[5] = offsetof(R, bad_value);
  out7[6] = offsetof(R, valid_rows);
}

// Sets the row-kernel choice for later calls: choice 0 auto, 1 block, 2 cluster; cluster_size 0 (by
// the rule) or 1..16; stage_bytes 0 (the default) or the most bytes of S and T one block stages.
// Returns 0, or -1 for an unknown choice or size.
int sdvp_gpu_set_row_kernel(int32_t choice, int32_t cluster_size, int64_t stage_bytes) {
  return sdvp::distill_loss_cuda_set_row_kernel(static_cast<sdvp::CudaRowKernel>(choice),
                                                cluster_size, stage_bytes)
             ? 0
             : -1;
}

// The last call's plan: out4 = kernel (1 block, 2 cluster), cluster size, threads, shared memory
// bytes per block; returns the reason.
const char* sdvp_gpu_last_plan(int64_t* out4) {
  out4[0] = static_cast<int64_t>(last_plan.kernel);
  out4[1] = last_plan.cluster_size;
  out4[2] = last_plan.threads;
  out4[3] = last_plan.smem_bytes;
  return last_plan.reason;
}

// The plan a call of this shape would get on the current device (16-byte aligned buffers; nothing
// is read or launched): out4 as sdvp_gpu_last_plan; returns the reason.
const char* sdvp_gpu_plan(int64_t rows, int64_t vocab, int32_t dtype, int32_t teacher_kind,
                          int64_t topk, int32_t with_grad, int64_t* out4) {
  sdvp::DistillLossSpec spec = make_spec(rows, vocab, dtype, teacher_kind, topk);
  alignas(16) static const unsigned char placeholder[16] = {};  // an address, never dereferenced
  spec.student = placeholder;
  spec.teacher_logits = placeholder;
  static int32_t indices_placeholder;
  static float logprobs_placeholder;
  spec.topk_indices = &indices_placeholder;
  spec.topk_logprobs = &logprobs_placeholder;
  spec.grad = with_grad ? const_cast<unsigned char*>(placeholder) : nullptr;
  const sdvp::DistillLossCudaPlan plan = sdvp::distill_loss_cuda_plan(spec);
  out4[0] = static_cast<int64_t>(plan.kernel);
  out4[1] = plan.cluster_size;
  out4[2] = plan.threads;
  out4[3] = plan.smem_bytes;
  return plan.reason;
}

int sdvp_gpu_device_count() { return sdvp::cuda_device_count(); }

// The cudaError_t of cudaGetDeviceCount, to tell "no driver / driver too old" from "no GPU".
int sdvp_gpu_probe() {
  int count = 0;
  const int err = static_cast<int>(cudaGetDeviceCount(&count));
  (void)cudaGetLastError();
  return err;
}

int sdvp_gpu_runtime_version() { return sdvp::cuda_runtime_version(); }

const char* sdvp_gpu_error_string(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

}  // extern "C"
