// CUDA entry points of the fused distillation objective: three launches per call, no host sync.
//   prepare   1 block: error key reset, label range check, valid-row count, normaliser
//   rows      the block kernel (1 block per row; a fixed grid with a row loop for huge top-k
//             vocabularies) or the cluster kernel (1 thread-block cluster per row, sm_90), chosen
//             by row_kernel_choice.cuh
//   finalize  1 block: deterministic double sum of the row losses, status, the device result
#include "distill_loss_cuda.h"

#include <climits>
#include <mutex>
#include <vector>

#include "distill_loss_cluster.cuh"
#include "distill_loss_kernels.cuh"
#include "row_kernel_choice.cuh"

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

template <bool kCluster, DType D, TeacherKind TK, Divergence DV>
RowKernelFn kernel_of() {
  if constexpr (kCluster) {
    return cuda_detail::distill_cluster_kernel<D, TK, DV>;
  } else {
    return cuda_detail::distill_rows_kernel<D, TK, DV>;
  }
}

template <bool kCluster, DType D, TeacherKind TK>
RowKernelFn pick_divergence(Divergence dv) {
  switch (dv) {
    case Divergence::kReverseKL:
      return kernel_of<kCluster, D, TK, Divergence::kReverseKL>();
    case Divergence::kJSD:
      return kernel_of<kCluster, D, TK, Divergence::kJSD>();
    default:
      return kernel_of<kCluster, D, TK, Divergence::kForwardKL>();
  }
}

template <bool kCluster, DType D>
RowKernelFn pick_teacher(const DistillLossSpec& spec) {
  switch (spec.teacher_kind) {
    case TeacherKind::kDense:
      return pick_divergence<kCluster, D, TeacherKind::kDense>(spec.divergence);
    case TeacherKind::kTopK:
      return pick_divergence<kCluster, D, TeacherKind::kTopK>(spec.divergence);
    default:  // no teacher: the divergence is irrelevant, one instantiation serves
      return kernel_of<kCluster, D, TeacherKind::kNone, Divergence::kForwardKL>();
  }
}

template <bool kCluster>
RowKernelFn pick_kernel(const DistillLossSpec& spec) {
  return spec.dtype == DType::kBF16 ? pick_teacher<kCluster, DType::kBF16>(spec)
                                    : pick_teacher<kCluster, DType::kF32>(spec);
}

RowKernelFn pick_row_kernel(const DistillLossSpec& spec, bool cluster) {
  return cluster ? pick_kernel<true>(spec) : pick_kernel<false>(spec);
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

#ifndef SDVP_CUDA_EMULATE
// The launch configuration of `rows` clusters of `cluster` blocks each (`attribute` holds the
// cluster dimension the configuration points to).
cudaLaunchConfig_t cluster_config(int64_t rows, int cluster, int block, size_t smem,
                                  cudaStream_t stream, cudaLaunchAttribute& attribute) {
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = static_cast<unsigned>(cluster);
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(rows * cluster), 1, 1);
  config.blockDim = dim3(static_cast<unsigned>(block), 1, 1);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return config;
}
#endif

// A launch of `rows` clusters of `cluster` blocks each.
int launch_cluster(RowKernelFn kernel, int64_t rows, int cluster, int block, size_t smem,
                   cudaStream_t stream, const KernelParams& p) {
#ifdef SDVP_CUDA_EMULATE
  emu::launch_cluster(kernel, rows * cluster, block, cluster, smem, p);
  return 0;
#else
  cudaLaunchAttribute attribute;
  const cudaLaunchConfig_t config = cluster_config(rows, cluster, block, smem, stream, attribute);
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, p);
  return static_cast<int>(err != cudaSuccess ? err : cudaGetLastError());
#endif
}

// Whether a cluster launch of `kernel` fits the current device: the function attributes it needs
// are set (dynamic shared memory up to the device's opt-in limit, so that every launch shape is
// allowed; the largest shared-memory carveout; 16-block clusters), then the occupancy API must
// place at least one cluster. Remembered per (device, kernel, launch shape).
bool cluster_fits(RowKernelFn kernel, int cluster, int block, size_t smem, int64_t smem_optin) {
#ifdef SDVP_CUDA_EMULATE
  (void)kernel;
  (void)cluster;
  (void)block;
  (void)smem;
  (void)smem_optin;
  return true;
#else
  struct Entry {
    int device;
    RowKernelFn kernel;
    int cluster, block;
    size_t smem;
    bool fits;
  };
  static std::mutex mutex;
  static std::vector<Entry> entries;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  std::lock_guard<std::mutex> lock(mutex);
  for (const Entry& e : entries) {
    if (e.device == device && e.kernel == kernel && e.cluster == cluster && e.block == block &&
        e.smem == smem)
      return e.fits;
  }
  bool fits = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(smem_optin)) == cudaSuccess;
  // All of the SM's unified L1/shared memory as shared memory: the staged slices are the point.
  fits = fits && cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      cudaSharedmemCarveoutMaxShared) == cudaSuccess;
  if (fits && cluster > 8) {
    fits = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) ==
           cudaSuccess;
  }
  if (fits) {
    cudaLaunchAttribute attribute;
    const cudaLaunchConfig_t config = cluster_config(1, cluster, block, smem, nullptr, attribute);
    int clusters = 0;
    fits =
        cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) == cudaSuccess && clusters >= 1;
  }
  (void)cudaGetLastError();  // a refused attribute or query must not fail the next launch
  entries.push_back({device, kernel, cluster, block, smem, fits});
  return fits;
#endif
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

// S, T and dS share one misalignment mod 16 bytes (then every row does, since all three have the
// same row stride): the rows can be read and written in 16-byte vectors after a scalar head.
bool co_aligned(const DistillLossSpec& spec) {
  const uintptr_t mis = reinterpret_cast<uintptr_t>(spec.student) & 15u;
  const bool dense = spec.teacher_kind == TeacherKind::kDense;
  return (!dense || (reinterpret_cast<uintptr_t>(spec.teacher_logits) & 15u) == mis) &&
         (spec.grad == nullptr || (reinterpret_cast<uintptr_t>(spec.grad) & 15u) == mis);
}

// The row kernel and launch shape for a usable spec: the rule of row_kernel_choice.cuh, then the
// occupancy check for a cluster.
struct RowLaunch {
  cuda_detail::RowChoice choice;
  RowKernelFn kernel;
};

RowLaunch plan_row_launch(const DistillLossSpec& spec) {
  cuda_detail::RowShape shape;
  shape.rows = spec.rows;
  shape.vocab = spec.vocab;
  shape.elem_bytes = spec.dtype == DType::kBF16 ? 2 : 4;
  shape.dense = spec.teacher_kind == TeacherKind::kDense;
  shape.topk = spec.teacher_kind == TeacherKind::kTopK;
  shape.grad = spec.grad != nullptr;
  shape.co_aligned = co_aligned(spec);
  const cuda_detail::DeviceFacts dev = cuda_detail::device_facts();
  RowLaunch launch;
  launch.choice =
      cuda_detail::choose_row_kernel(shape, dev, cuda_detail::row_kernel_settings().get());
  if (launch.choice.cluster) {
    launch.kernel = pick_row_kernel(spec, true);
    if (cluster_fits(launch.kernel, launch.choice.cluster_size, launch.choice.threads,
                     launch.choice.smem, dev.smem_optin)) {
      return launch;
    }
    launch.choice = cuda_detail::RowChoice{};
    launch.choice.reason = "no cluster of this shape fits on the device (occupancy API)";
  }
  launch.kernel = pick_row_kernel(spec, false);
  launch.choice.threads = row_threads(spec);
  const bool smem_bitmap = spec.teacher_kind == TeacherKind::kTopK && bitmap_in_smem(spec.vocab);
  launch.choice.smem =
      smem_bitmap ? static_cast<size_t>(bitmap_words(spec.vocab)) * sizeof(uint32_t) : 0;
  return launch;
}

}  // namespace

bool distill_loss_cuda_set_row_kernel(CudaRowKernel choice, int32_t cluster_size,
                                      int64_t stage_bytes) {
  return cuda_detail::row_kernel_settings().set(choice, cluster_size, stage_bytes);
}

DistillLossCudaPlan distill_loss_cuda_plan(const DistillLossSpec& spec) {
  DistillLossCudaPlan plan{CudaRowKernel::kBlock, 1, 0, 0, "the spec is not usable"};
  if (!spec_is_usable(spec)) return plan;
  const RowLaunch launch = plan_row_launch(spec);
  plan.kernel = launch.choice.cluster ? CudaRowKernel::kCluster : CudaRowKernel::kBlock;
  plan.cluster_size = launch.choice.cluster_size;
  plan.threads = launch.choice.threads;
  plan.smem_bytes = static_cast<int64_t>(launch.choice.smem);
  plan.reason = launch.choice.reason;
  return plan;
}

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

  p.co_aligned = co_aligned(spec);

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

  const RowLaunch rows = plan_row_launch(spec);
  p.stage_vectors = rows.choice.stage_vectors;
  p.slice_bitmap_words = rows.choice.bitmap_words;

  int err = launch(cuda_detail::prepare_kernel, 1, kSideThreads, 0, stream, p);
  if (err != 0) return err;
  if (rows.choice.cluster) {
    err = launch_cluster(rows.kernel, spec.rows, rows.choice.cluster_size, rows.choice.threads,
                         rows.choice.smem, stream, p);
  } else {
    err = launch(rows.kernel, row_grid(spec), rows.choice.threads, rows.choice.smem, stream, p);
  }
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
