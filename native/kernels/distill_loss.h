// The fused distillation objective (CE + temperature-softened KL/JSD, forward and gradient in one
// call): the one contract shared by the CPU and CUDA kernels, the Node addon, the torch runtime and
// the GPU harness.
//
// For student logits S[N,V], an optional teacher (dense logits T[N,V] or top-k log-probabilities
// over the student vocabulary), optional hard labels y[N] and per-row weights w[N]:
//
//   loss = sum_r w_r * ( ce_weight * CE_r + kd_weight * tau^(2 if t2) * D_r ) / normalizer
//
//   CE_r = (1 - eps) * (lse_r - S[r,y_r]) + eps * (lse_r - mean_j S[r,j]) + z_loss * lse_r^2
//          (lse_r = logsumexp of the row at temperature 1; zero when y_r == ignore_index or no
//          labels)
//   D_r  = divergence(P_T^tau || P_S^tau) over the row's categories (see TeacherKind and
//   TopKMissing)
//
// Numerics: fp32 accumulation whatever the storage dtype (double for the cross-row sum); -inf
// logits are allowed (0 * log 0 = 0); a NaN logit gives a NaN loss; a batch with no valid row gives
// loss 0 and a zero gradient; a label outside [0, V) that is not the ignore index is reported as
// Status::kLabelOutOfRange (never read out of bounds); offsets are int64.
#pragma once

#include <cstdint>

namespace sdvp {

enum class DType : int32_t { kF32 = 0, kBF16 = 1 };

enum class Divergence : int32_t {
  kForwardKL = 0,  // KL(P_T || P_S)
  kReverseKL = 1,  // KL(P_S || P_T)
  // Generalised Jensen-Shannon: beta*KL(P_T||M) + (1-beta)*KL(P_S||M), M = beta*P_T + (1-beta)*P_S.
  // Continuous in beta on [0, 1]; it is 0 at both ends (M equals one of the two distributions).
  kJSD = 2,
};

enum class Reduction : int32_t {
  kMean = 0,       // divide by the number of valid rows (a label or a teacher, and weight > 0)
  kSum = 1,        // divide by 1
  kBatchMean = 2,  // divide by N
  kNone = 3,       // per-row losses in row_loss; the gradient is that of their sum
};

enum class TeacherKind : int32_t { kNone = 0, kDense = 1, kTopK = 2 };

// How a top-k teacher's missing probability mass (1 - sum_k exp(logprob)) is treated.
enum class TopKMissing : int32_t {
  // The teacher is renormalised over its k entries and is zero elsewhere; the student keeps its
  // full
  // softmax over V. The divergence is taken over V categories. (Reverse KL is then infinite when k
  // < V.)
  kRenormalize = 0,
  // The missing mass is one extra category, the "tail"; the student's tail is the sum of its
  // probabilities outside the k indices. The divergence is taken over k + 1 categories.
  kTailBucket = 1,
};

enum class Status : int32_t {
  kOk = 0,
  kLabelOutOfRange = 1,   // bad_row / bad_value say where
  kTopKIndexInvalid = 2,  // an index outside [0, V) or repeated within its row
  kCancelled = 3,         // the cancel flag was raised; outputs are incomplete
  kInvalidSpec = 4,       // null pointers or sizes that cannot be (the caller validates first)
  kCudaError = 5,
};

struct DistillLossSpec {
  int64_t rows = 0;
  int64_t vocab = 0;
  DType dtype = DType::kF32;
  const void* student = nullptr;  // [rows, vocab] of dtype (bf16 as raw uint16 bits)

  TeacherKind teacher_kind = TeacherKind::kNone;
  const void* teacher_logits = nullptr;   // kDense: [rows, vocab] of dtype
  const int32_t* topk_indices = nullptr;  // kTopK: [rows, topk], distinct within a row, in [0, V)
  const float* topk_logprobs = nullptr;   // kTopK: [rows, topk], teacher log-probabilities at tau=1
  int64_t topk = 0;                       // kTopK: 1 <= topk <= vocab
  TopKMissing topk_missing = TopKMissing::kTailBucket;

  const int32_t* labels = nullptr;  // [rows] or null (no CE term)
  int32_t ignore_index = -100;

  float ce_weight = 1.0f;
  float kd_weight = 1.0f;
  float temperature = 1.0f;  // > 0
  bool t2 = true;            // multiply the divergence by temperature^2
  Divergence divergence = Divergence::kForwardKL;
  float jsd_beta = 0.5f;               // in [0, 1]
  float label_smoothing = 0;           // in [0, 1]
  float z_loss = 0;                    // >= 0, weight on lse^2
  const float* row_weights = nullptr;  // [rows] or null (all 1); must be >= 0

  Reduction reduction = Reduction::kMean;
  bool has_normalizer = false;  // when true, `normalizer` overrides the reduction's divisor
  double normalizer = 1.0;

  void* grad = nullptr;  // [rows, vocab] of dtype, or null (no gradient); may equal `student`
  float grad_scale = 1.0f;

  float* row_loss = nullptr;        // [rows], optional; required for kNone
  float* stats_lse = nullptr;       // [rows], optional
  float* stats_ce = nullptr;        // [rows], optional: CE_r without weights (z-loss included)
  float* stats_kd = nullptr;        // [rows], optional: D_r without tau^2 or weights
  int32_t* stats_argmax = nullptr;  // [rows], optional: first index of the largest student logit

  int32_t threads = 0;  // CPU only: 0 = every core
  // CPU only: polled between chunks of rows; when it becomes non-zero the call stops with
  // kCancelled.
  const volatile int32_t* cancel = nullptr;
};

struct DistillLossResult {
  Status status = Status::kOk;
  double loss = 0;         // the reduced loss (for kNone, the sum of row losses)
  double normalizer = 1;   // the divisor that was applied
  int64_t valid_rows = 0;  // rows with a label or a teacher, and weight > 0
  int64_t bad_row = -1;    // with an error status: the first offending row
  int64_t bad_value = 0;   // with an error status: the offending label or index
};

// Runs the fused objective on the CPU with run-time dispatched SIMD, rows spread over `threads`
// cores.
DistillLossResult distill_loss_cpu(const DistillLossSpec& spec);

// The SIMD target chosen at run time for this CPU, e.g. "AVX3", "AVX2", "SSE4", "EMU128".
const char* cpu_simd_target();

// The number of hardware threads the CPU kernels use when spec.threads == 0.
int32_t cpu_default_threads();

// Memory-floor probe: out[i] = a[i] + b[i] over n floats using `threads` cores, the same bytes a
// dense fp32 call moves (read S and T, write dS). Used by the benchmark to measure this machine's
// floor.
void memory_floor_probe(const float* a, const float* b, float* out, int64_t n, int32_t threads);

}  // namespace sdvp
