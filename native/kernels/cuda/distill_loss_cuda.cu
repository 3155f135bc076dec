// CUDA entry points of the fused distillation objective: three launches per call, no host sync.
//   prepare   1 block: error key reset, label range check, valid-row count, normaliser
//   rows      1 block per row (a fixed grid with a row loop for huge top-k vocabularies)
//   finalize  1 block: deterministic double sum of the row losses, status, the device result
#include "distill_loss_cuda.h"

#include <climits>

#include "distill_loss_kernels.cuh"

namespace sdvp {
namespace {

using cuda_detail::KernelParams;
using cuda_detail::kGlobalBitmapBlocks;
using cuda_detail::kRowLossOffset;
using cuda_detail::kSideThreads;
using cuda_detail::kSmemBitmapBytes;
using cuda_detail::WorkspaceHeader;

using RowKernelFn = void (*)(KernelParams);

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int64_t bitmap_words(int64_t vocab) { return (vocab + 31) / 32 + 1; }

bool bitmap_in_smem(int64_t vocab) {
  return bitmap_words(vocab) * static_cast<int64_t>(sizeof(uint32_t)) <= kSmemBitmapBytes;
}

int64_t row_grid(const DistillLossSpec& spec) {
  int64_t grid = spec.rows < INT_MAX ? spec.rows : INT_MAX;
  if (spec.teacher_kind == TeacherKind::kTopK && !bitmap_in_smem(spec.vocab) &&
      grid > kGlobalBitmapBlocks) {
    grid = kGlobalBitmapBlocks;
  }
  return grid;
}

// Enough threads that each moves a few 16-byte vectors per row; fewer for short rows, where most
// threads of a large block would idle through every barrier.
int row_threads(const DistillLossSpec& spec) {
  const int64_t vec = spec.dtype == DType::kBF16 ? 8 : 4;
  const int64_t vectors = spec.vocab / vec;
  return vectors >= 1024 ? cuda_detail::kMaxThreads : 128;
}

template <DType D, TeacherKind TK>
RowKernelFn pick_divergence(Divergence dv) {
  switch (dv) {
    case Divergence::kReverseKL:
      return cuda_detail::distill_rows_kernel<D, TK, Divergence::kReverseKL>;
    case Divergence::kJSD:
      return cuda_detail::distill_rows_kernel<D, TK, Divergence::kJSD>;
    default:
      return cuda_detail::distill_rows_kernel<D, TK, Divergence::kForwardKL>;
  }
}

template <DType D>
RowKernelFn pick_teacher(const DistillLossSpec& spec) {
  switch (spec.teacher_kind) {
    case TeacherKind::kDense:
      return pick_divergence<D, TeacherKind::kDense>(spec.divergence);
    case TeacherKind::kTopK:
      return pick_divergence<D, TeacherKind::kTopK>(spec.divergence);
    default:  // no teacher: the divergence is irrelevant, one instantiation serves
      return cuda_detail::distill_rows_kernel<D, TeacherKind::kNone, Divergence::kForwardKL>;
  }
}

RowKernelFn pick_row_kernel(const DistillLossSpec& spec) {
  return spec.dtype == DType::kBF16 ? pick_teacher<DType::kBF16>(spec)
                                    : pick_teacher<DType::kF32>(spec);
}

// The one place kernels are launched (the CPU emulation of bench/gpu/emu substitutes it).
int launch(RowKernelFn kernel, int64_t grid, int block, size_t smem, cudaStream_t stream,
           const KernelParams& p) {
#ifdef SDVP_CUDA_EMULATE
  emu::launch(kernel, grid, block, smem, p);
#else
  // clang-format 14 splits the launch chevrons into "> > >".
  // clang-format off
  kernel<<<static_cast<unsigned>(grid), static_cast<unsigned>(block), smem, stream>>>(p);
  // clang-format on
#endif
  return static_cast<int>(cudaGetLastError());
}

bool spec_is_usable(const DistillLossSpec& spec) {
  const bool dense = spec.teacher_kind == TeacherKind::kDense;
  const bool topk = spec.teacher_kind == TeacherKind::kTopK;
  // The same rejections as the CPU kernel's kInvalidSpec (reported here as cudaErrorInvalidValue).
  return spec.rows >= 1 && spec.vocab >= 1 && spec.vocab <= INT_MAX && spec.student != nullptr &&
         (spec.dtype == DType::kF32 || spec.dtype == DType::kBF16) &&
         (!dense || spec.teacher_logits) &&
         (!topk ||
          (spec.topk_indices && spec.topk_logprobs && spec.topk >= 1 && spec.topk <= spec.vocab)) &&
         spec.temperature > 0 && (spec.reduction != Reduction::kNone || spec.row_loss != nullptr) &&
         (!spec.has_normalizer || spec.normalizer > 0) &&
         !(topk && spec.topk_missing == TopKMissing::kRenormalize &&
           spec.divergence == Divergence::kReverseKL && spec.topk < spec.vocab);
}

}  // namespace

size_t distill_loss_cuda_workspace_bytes(const DistillLossSpec& spec) {
  const int64_t rows = spec.rows > 0 ? spec.rows : 0;
  size_t bytes = kRowLossOffset + align_up(static_cast<size_t>(rows) * sizeof(float), 256);
  if (spec.teacher_kind == TeacherKind::kTopK && spec.vocab > 0 && !bitmap_in_smem(spec.vocab)) {
    bytes += static_cast<size_t>(row_grid(spec)) * static_cast<size_t>(bitmap_words(spec.vocab)) *
             sizeof(uint32_t);
  }
  return bytes;
}

int distill_loss_cuda(const DistillLossSpec& spec, DistillLossDeviceResult* result, void* workspace,
                      void* stream_ptr) {
  static_assert(sizeof(WorkspaceHeader) <= kRowLossOffset, "the row losses follow the header");
  if (!spec_is_usable(spec) || result == nullptr || workspace == nullptr) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const bool dense = spec.teacher_kind == TeacherKind::kDense;
  const bool topk = spec.teacher_kind == TeacherKind::kTopK;
  const float tau = spec.temperature;

  KernelParams p{};
  p.rows = spec.rows;
  p.vocab = spec.vocab;
  p.student = spec.student;
  p.teacher = dense ? spec.teacher_logits : nullptr;
  p.topk_indices = topk ? spec.topk_indices : nullptr;
  p.topk_logprobs = topk ? spec.topk_logprobs : nullptr;
  p.topk = topk ? spec.topk : 0;
  p.topk_tail = spec.topk_missing == TopKMissing::kTailBucket;
  p.has_teacher = dense || topk;
  p.labels = spec.labels;
  p.ignore_index = spec.ignore_index;
  p.row_weights = spec.row_weights;
  p.ce_weight = spec.ce_weight;
  p.kd_scale = spec.kd_weight * (spec.t2 ? tau * tau : 1.0f);
  p.tau = tau;
  p.inv_tau = 1.0f / tau;
  p.k_tau = cuda_detail::kLog2e / tau;
  p.same_tau = tau == 1.0f;
  p.jsd_beta = spec.jsd_beta;
  p.jsd_degenerate = spec.jsd_beta <= 0.0f || spec.jsd_beta >= 1.0f;
  p.label_smoothing = spec.label_smoothing;
  p.z_loss = spec.z_loss;
  p.grad_scale = spec.grad_scale;
  p.grad = spec.grad;
  p.row_loss = spec.row_loss;
  p.stats_lse = spec.stats_lse;
  p.stats_ce = spec.stats_ce;
  p.stats_kd = spec.stats_kd;
  p.stats_argmax = spec.stats_argmax;
  p.reduction = spec.reduction;
  p.has_normalizer = spec.has_normalizer;
  p.normalizer = spec.normalizer;
  p.result = result;

  // Vector loads need S, T and dS to share one misalignment mod 16 bytes (then every row does,
  // since all three have the same row stride); the element size must divide the base addresses
  // anyway.
  const uintptr_t mis = reinterpret_cast<uintptr_t>(spec.student) & 15u;
  p.co_aligned = (!dense || (reinterpret_cast<uintptr_t>(spec.teacher_logits) & 15u) == mis) &&
                 (spec.grad == nullptr || (reinterpret_cast<uintptr_t>(spec.grad) & 15u) == mis);

  char* ws = static_cast<char*>(workspace);
  p.header = reinterpret_cast<WorkspaceHeader*>(ws);
  p.row_partials = reinterpret_cast<float*>(ws + kRowLossOffset);
  const int64_t rows_clamped = spec.rows > 0 ? spec.rows : 0;
  p.bitmap_words = topk ? bitmap_words(spec.vocab) : 0;
  const bool smem_bitmap = topk && bitmap_in_smem(spec.vocab);
  p.global_bitmap = topk && !smem_bitmap
                        ? reinterpret_cast<uint32_t*>(
                              ws + kRowLossOffset +
                              align_up(static_cast<size_t>(rows_clamped) * sizeof(float), 256))
                        : nullptr;

  int err = launch(cuda_detail::prepare_kernel, 1, kSideThreads, 0, stream, p);
  if (err != 0) return err;
  const size_t smem = smem_bitmap ? static_cast<size_t>(p.bitmap_words) * sizeof(uint32_t) : 0;
  err = launch(pick_row_kernel(spec), row_grid(spec), row_threads(spec), smem, stream, p);
  if (err != 0) return err;
  return launch(cuda_detail::finalize_kernel, 1, kSideThreads, 0, stream, p);
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: clear the error so later calls start clean
    return 0;
  }
  return count;
}

int cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace sdvp
