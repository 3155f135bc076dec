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
