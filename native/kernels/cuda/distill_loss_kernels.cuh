// Device code of the fused distillation objective (docs/objective.md): the row arithmetic
// (RowKernel, written against a "part" of a row), the block row kernel (BlockRow: one thread block
// per row, straight from global memory) and the prepare/finalize kernels. The cluster row kernel
// (distill_loss_cluster.cuh) runs the same RowKernel on a slice of a row staged in shared memory.
//
// Per row, in fp32, with exponents in base 2 ((x - max) * log2(e) / tau, then exp2):
//   pass 1   online softmax: running max of S (and T), rescaled exp-sums at tau = 1 and at tau, the
//            student's exp-sum outside the top-k indices, the sum of S, the argmax, and for KL /
//            reverse KL the cross term that gives the divergence without another pass
//   pass 1b  JSD only: the divergence and sum_c q_c g_c (they need the final normalisers)
//   pass 2   the gradient, written once; it walks the row backwards so that the end of the row,
//            read last by pass 1, is re-read while it is still in L2
// Only pass 1 reads with normal cache priority: later reads and the gradient stores are marked
// evict-first so they do not push the rest of the row out of L2 before it is re-read.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../distill_loss.h"

#ifdef SDVP_CUDA_EMULATE
#include "cuda_emu.h"  // bench/gpu/emu: runs this code on the CPU for the harness's self-test
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

namespace sdvp {
namespace cuda_detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kInf = __builtin_huge_valf();
constexpr int kMaxThreads = 256;
constexpr int kMaxWarps = kMaxThreads / 32;
// Three resident rows per SM (80 registers, no spills): while one block waits at a row's barriers
// the others keep streaming. Two 512-thread blocks would cap registers at 64 and spill.
constexpr int kMinBlocksPerSm = 3;
constexpr int kSideThreads = 1024;  // the single-block prepare and finalize kernels
// A top-k row's membership bitmap lives in shared memory up to this size (with the static scratch
// it stays under the 48 KB that needs no opt-in); beyond it (vocab > ~327K) each block uses a slice
// of the workspace instead.
constexpr int64_t kSmemBitmapBytes = 40 * 1024;
constexpr int kGlobalBitmapBlocks = 256;

// The workspace starts with this header; per-row losses follow at kRowLossOffset.
struct WorkspaceHeader {
  unsigned long long error_key;  // min over bad rows of (row << 33 | kind << 32 | value); ~0 = none
  long long valid_rows;
  double normalizer;
  float inv_normalizer;  // 0 when the normalizer is 0 (mean over no valid row)
};
constexpr size_t kRowLossOffset = 256;

// Everything a kernel needs, passed by value (kernel parameter space) so that no host copy is made.
struct KernelParams {
  int64_t rows, vocab;
  const void* student;
  const void* teacher;
  const int32_t* topk_indices;
  const float* topk_logprobs;
  int64_t topk;
  bool topk_tail;
  bool has_teacher;
  const int32_t* labels;
  int32_t ignore_index;
  const float* row_weights;
  float ce_weight;
  float kd_scale;  // kd_weight * tau^2 (t2) or kd_weight
  float tau;
  float inv_tau;
  float k_tau;  // log2(e) / tau
  bool same_tau;
  float jsd_beta;
  bool jsd_degenerate;  // beta is 0 or 1: the JSD and its gradient are exactly 0
  float label_smoothing;
  float z_loss;
  float grad_scale;
  bool co_aligned;  // S, T and dS rows share one alignment mod 16 bytes: vector loads after a head
  void* grad;
  float* row_loss;
  float* stats_lse;
  float* stats_ce;
  float* stats_kd;
  int32_t* stats_argmax;
  Reduction reduction;
  bool has_normalizer;
  double normalizer;
  WorkspaceHeader* header;
  float* row_partials;
  uint32_t* global_bitmap;  // null when the bitmap fits in shared memory
  int64_t bitmap_words;     // per row: ceil(V / 32) + 1, the extra zero word read by funnel shifts
  // Cluster row kernel only (distill_loss_cluster.cuh): the most 16-byte vectors of S (and of T)
  // one block stages, and the words of one block's top-k membership bitmap.
  int64_t stage_vectors;
  int64_t slice_bitmap_words;
  DistillLossDeviceResult* result;
};

__device__ __forceinline__ unsigned long long error_key(int64_t row, int kind, int64_t value) {
  const unsigned long long r = static_cast<unsigned long long>(row < 0x7fffffff ? row : 0x7fffffff);
  return (r << 33) | (static_cast<unsigned long long>(kind) << 32) |
         static_cast<unsigned long long>(static_cast<uint32_t>(static_cast<int32_t>(value)));
}

// ---- storage types -----------------------------------------------------------------------------

template <DType D>
struct Storage;

template <>
struct Storage<DType::kF32> {
  using Scalar = float;
  static constexpr int kVec = 4;  // elements per 16-byte vector
  static __device__ __forceinline__ float load(const float* p) { return *p; }
  static __device__ __forceinline__ void store(float* p, float v) { *p = v; }
  static __device__ __forceinline__ void unpack(const uint4& v, float (&x)[4]) {
    x[0] = __uint_as_float(v.x);
    x[1] = __uint_as_float(v.y);
    x[2] = __uint_as_float(v.z);
    x[3] = __uint_as_float(v.w);
  }
  static __device__ __forceinline__ uint4 pack(const float (&g)[4]) {
    return make_uint4(__float_as_uint(g[0]), __float_as_uint(g[1]), __float_as_uint(g[2]),
                      __float_as_uint(g[3]));
  }
};

template <>
struct Storage<DType::kBF16> {
  using Scalar = uint16_t;
  static constexpr int kVec = 8;
  static __device__ __forceinline__ float widen(uint32_t bits16) {
    return __uint_as_float(bits16 << 16);
  }
  static __device__ __forceinline__ float load(const uint16_t* p) { return widen(*p); }
  static __device__ __forceinline__ void store(uint16_t* p, float v) {
    *p = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
  static __device__ __forceinline__ void unpack(const uint4& v, float (&x)[8]) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      x[2 * i] = __uint_as_float(w[i] << 16);
      x[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
  static __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    // Round to nearest even; NaN stays NaN.
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t bits;
    memcpy(&bits, &h, sizeof(bits));
    return bits;
  }
  static __device__ __forceinline__ uint4 pack(const float (&g)[8]) {
    return make_uint4(pack2(g[0], g[1]), pack2(g[2], g[3]), pack2(g[4], g[5]), pack2(g[6], g[7]));
  }
};

// Where one row's vectors start: `head` scalar elements bring S to a 16-byte boundary, then `nvec`
// whole vectors, then the scalar tail. Without co-alignment every element is a scalar (head = V).
struct RowLayout {
  int64_t head, nvec, tail_begin, vocab;
};

template <DType D>
__device__ __forceinline__ RowLayout row_layout(const void* row_start, int64_t vocab,
                                                bool co_aligned) {
  using St = Storage<D>;
  RowLayout l;
  l.vocab = vocab;
  if (!co_aligned) {
    l.head = vocab;
    l.nvec = 0;
  } else {
    const uint32_t mis = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(row_start) & 15u);
    const int64_t head = static_cast<int64_t>(((16u - mis) & 15u) / sizeof(typename St::Scalar));
    l.head = head < vocab ? head : vocab;
    l.nvec = (vocab - l.head) / St::kVec;
  }
  l.tail_begin = l.head + l.nvec * St::kVec;
  return l;
}

// ---- block reductions --------------------------------------------------------------------------

template <class T>
__device__ __forceinline__ T shfl_xor_struct(const T& v, int lane_mask) {
  static_assert(sizeof(T) % 4 == 0, "shuffled structs are whole 32-bit words");
#ifdef SDVP_CUDA_EMULATE
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);  // the emulation moves whole structs at once
#else
  constexpr int kWords = sizeof(T) / 4;
  uint32_t w[kWords];
  memcpy(w, &v, sizeof(T));
#pragma unroll
  for (int i = 0; i < kWords; ++i) w[i] = __shfl_xor_sync(0xffffffffu, w[i], lane_mask);
  T r;
  memcpy(&r, w, sizeof(T));
  return r;
#endif
}

// Every thread gets the same result: lane 0 of each warp publishes its warp's value and each thread
// folds them in warp order, so the result is bit-identical across threads and across runs.
template <class T, class Merge>
__device__ __forceinline__ T block_allreduce(T v, Merge merge, T* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = merge(v, shfl_xor_struct(v, o));
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if ((threadIdx.x & 31u) == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  const int warps = static_cast<int>(blockDim.x) >> 5;
  for (int w = 1; w < warps; ++w) r = merge(r, scratch[w]);
  __syncthreads();
  return r;
}

struct Sum2 {
  float a, b;
};

__device__ __forceinline__ Sum2 merge_sum2(Sum2 x, Sum2 y) { return {x.a + y.a, x.b + y.b}; }

// ---- pass-1 accumulator ------------------------------------------------------------------------
//
// Sums are kept relative to the running maxima m (student) and mt (teacher): z1 = sum exp(s - m),
// zs = sum exp((s - m)/tau), zt = sum exp((t - mt)/tau). The difference (s - m) is formed before
// scaling so the max element contributes exactly 1. While a max is still -inf the shift is 0
// instead (so -inf logits give exp2(-inf) = 0, never exp2(NaN)). The KL cross term in log2 units is
// acc = sum_j eT_j (xt_j - xs_j) (forward) or sum_j eS_j (xs_j - xt_j) (reverse), with
// xs = (s - m)*k, xt = (t - mt)*k, k = log2(e)/tau; a change of max moves every difference by a
// constant, which is folded in exactly. Plain-old-data so it can live in a shared-memory union.
struct RowAcc {
  float m, z1, zs, ztail, sum;
  float mt, zt, acc;
  int32_t arg;  // first index of the largest student logit, -1 while none (all NaN)
};

__device__ __forceinline__ RowAcc row_acc_identity() {
  RowAcc a;
  a.m = -kInf;
  a.z1 = a.zs = a.ztail = a.sum = 0.f;
  a.mt = -kInf;
  a.zt = a.acc = 0.f;
  a.arg = -1;
  return a;
}

// The shift sums are relative to: the max, or 0 while the max is -inf.
__device__ __forceinline__ float shift_of(float m) { return m == -kInf ? 0.f : m; }

template <bool kDense, Divergence DV>
__device__ __forceinline__ void raise_student(RowAcc& a, float nm, float k_tau) {
  // While the max was -inf every sum is 0 (or NaN, which must survive): scale by 0, not
  // exp2(-inf+x).
  const bool was_empty = a.m == -kInf;
  const float d = a.m - nm;
  const float f1 = was_empty ? 0.f : exp2f(d * kLog2e);
  const float fs = was_empty ? 0.f : exp2f(d * k_tau);
  if constexpr (kDense) {
    const float dsh = (shift_of(a.m) - nm) * k_tau;  // every xs grows by dsh
    if constexpr (DV == Divergence::kForwardKL) {
      a.acc -= a.zt * dsh;
    } else if constexpr (DV == Divergence::kReverseKL) {
      a.acc = fs * (a.acc + a.zs * dsh);
    }
  }
  a.z1 *= f1;
  a.zs *= fs;
  a.ztail *= fs;
  a.m = nm;
}

template <Divergence DV>
__device__ __forceinline__ void raise_teacher(RowAcc& a, float nmt, float k_tau) {
  const float ft = a.mt == -kInf ? 0.f : exp2f((a.mt - nmt) * k_tau);
  const float dsh = (shift_of(a.mt) - nmt) * k_tau;  // every xt grows by dsh
  if constexpr (DV == Divergence::kForwardKL) {
    a.acc = ft * (a.acc + a.zt * dsh);
  } else if constexpr (DV == Divergence::kReverseKL) {
    a.acc -= a.zs * dsh;
  }
  a.zt *= ft;
  a.mt = nmt;
}

template <bool kDense, Divergence DV>
__device__ __forceinline__ RowAcc merge_row_acc(RowAcc a, RowAcc b, float k_tau) {
  if (b.arg >= 0 && (a.arg < 0 || b.m > a.m || (b.m == a.m && b.arg < a.arg))) a.arg = b.arg;
  const float nm = fmaxf(a.m, b.m);
  if (nm > a.m) raise_student<kDense, DV>(a, nm, k_tau);
  if (nm > b.m) raise_student<kDense, DV>(b, nm, k_tau);
  if constexpr (kDense) {
    const float nmt = fmaxf(a.mt, b.mt);
    if (nmt > a.mt) raise_teacher<DV>(a, nmt, k_tau);
    if (nmt > b.mt) raise_teacher<DV>(b, nmt, k_tau);
    a.zt += b.zt;
    a.acc += b.acc;
  }
  a.z1 += b.z1;
  a.zs += b.zs;
  a.ztail += b.ztail;
  a.sum += b.sum;
  return a;
}

// How the student's exponentials at temperature 1 and at tau relate. Exponentials (MUFU.EX2, 16 per
// clock per SM) bound these kernels' arithmetic near the memory floor, so one serves both where it
// can: at tau = 1 they are the same value, at tau = 2 exp(x) = exp(x / 2)^2 is a multiply.
enum class TauMode { kAny, kOne, kTwo };

// Adds N consecutive elements starting at row index j0. `outside` has bit i set when element i is
// not one of the top-k indices.
template <bool kKD, bool kDense, bool kTopK, Divergence DV, TauMode M, int N>
__device__ __forceinline__ void accumulate(RowAcc& a, const float (&x)[N], const float (&y)[N],
                                           uint32_t outside, int64_t j0, float k_tau) {
  float vmax = x[0];
#pragma unroll
  for (int i = 1; i < N; ++i) vmax = fmaxf(vmax, x[i]);
  if (vmax > a.m || (a.arg < 0 && vmax == vmax)) {
    if (vmax > a.m) raise_student<kDense, DV>(a, vmax, k_tau);
    int first = 0;
#pragma unroll
    for (int i = N - 1; i >= 0; --i) first = x[i] == vmax ? i : first;
    a.arg = static_cast<int32_t>(j0 + first);
  }
  if constexpr (kDense) {
    float tmax = y[0];
#pragma unroll
    for (int i = 1; i < N; ++i) tmax = fmaxf(tmax, y[i]);
    if (tmax > a.mt) raise_teacher<DV>(a, tmax, k_tau);
  }
  const float ms = shift_of(a.m);
  [[maybe_unused]] const float mts = shift_of(a.mt);
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float ds = x[i] - ms;  // <= 0: the exponentials are at most 1
    float e1, xs = 0.f, es = 0.f;
    if constexpr (kKD && M == TauMode::kTwo) {
      xs = ds * k_tau;  // exactly half of ds * log2(e)
      es = exp2f(xs);
      e1 = es * es;
    } else {
      const float x1 = ds * kLog2e;
      e1 = exp2f(x1);
      if constexpr (kKD) {
        xs = M == TauMode::kOne ? x1 : ds * k_tau;
        es = M == TauMode::kOne ? e1 : exp2f(xs);
      }
    }
    a.z1 += e1;
    a.sum += x[i];
    if constexpr (kKD) {
      a.zs += es;
      if constexpr (kTopK) a.ztail += ((outside >> i) & 1u) ? es : 0.f;
      if constexpr (kDense) {
        const float xt = (y[i] - mts) * k_tau;
        const float et = exp2f(xt);
        a.zt += et;
        // 0 * log 0 = 0: a zero probability contributes nothing even where the log-ratio is
        // infinite.
        if constexpr (DV == Divergence::kForwardKL) {
          a.acc = fmaf(et, et > 0.f ? xt - xs : 0.f, a.acc);
        } else if constexpr (DV == Divergence::kReverseKL) {
          a.acc = fmaf(es, es > 0.f ? xs - xt : 0.f, a.acc);
        }
      }
    }
  }
}

// ---- per-category divergence terms (log2 units) ------------------------------------------------

// Adds one category's contribution to D (log2 units) and, for JSD, to sum_c q_c g_c (in `sg`, log2
// units, without the (1-b) factor folded out: it is exactly the (1-b) q log2(q/M) part).
template <Divergence DV>
__device__ __forceinline__ void category_terms(float p, float lp2, float q, float lq2, float b,
                                               float& d, float& sg) {
  if constexpr (DV == Divergence::kForwardKL) {
    d += p > 0.f ? p * (lp2 - lq2) : 0.f;
  } else if constexpr (DV == Divergence::kReverseKL) {
    d += q > 0.f ? q * (lq2 - lp2) : 0.f;
  } else {
    const float mix = fmaf(b, p, (1.f - b) * q);
    const float lm2 = __log2f(mix);
    const float tp = p > 0.f ? b * p * (lp2 - lm2) : 0.f;
    const float tq = q > 0.f ? (1.f - b) * q * (lq2 - lm2) : 0.f;
    d += tp + tq;
    sg += tq;
  }
}

// dD/dz for one element of category c with student probability q (the element's own) and category
// values (pc, lp2c, qc, lq2c): forward KL q - p for a single element, otherwise q * (g_c - sum q
// g).
template <Divergence DV>
__device__ __forceinline__ float element_kd_grad(float q, float p, float lp2, float lq2, float b,
                                                 float d, float sg) {
  if constexpr (DV == Divergence::kForwardKL) {
    return q - p;
  } else if constexpr (DV == Divergence::kReverseKL) {
    return q > 0.f ? q * ((lq2 - lp2) * kLn2 - d) : 0.f;
  } else {
    const float mix = fmaf(b, p, (1.f - b) * q);
    const float g = (1.f - b) * (lq2 - __log2f(mix)) * kLn2;
    return q > 0.f ? q * (g - sg) : 0.f;
  }
}

// ---- row iteration -----------------------------------------------------------------------------

template <class T>
__device__ __forceinline__ const uint4* as_vectors(const T* p) {
  return reinterpret_cast<const uint4*>(p);
}

// Widens one 16-byte vector of S into x and, with a teacher, one of T into y (else y = 0).
template <DType D, bool kTeacher>
__device__ __forceinline__ void unpack_pair(const uint4& s, const uint4& t,
                                            float (&x)[Storage<D>::kVec],
                                            float (&y)[Storage<D>::kVec]) {
  Storage<D>::unpack(s, x);
  if constexpr (kTeacher) {
    Storage<D>::unpack(t, y);
  } else {
#pragma unroll
    for (int i = 0; i < Storage<D>::kVec; ++i) y[i] = 0.f;
  }
}

// Calls f(j0, x[N], y[N]) for every element of the row in chunks: scalars (N = 1) for the head and
// tail, 16-byte vectors otherwise. kStream marks the loads evict-first (a last read); kBackward
// walks the vectors from the end of the row.
template <DType D, bool kTeacher, bool kStream, bool kBackward, class F>
__device__ __forceinline__ void for_each_read(const RowLayout& l,
                                              const typename Storage<D>::Scalar* s,
                                              const typename Storage<D>::Scalar* t, F&& f) {
  using St = Storage<D>;
  constexpr int kVec = St::kVec;
  constexpr int kUnroll = 2;  // two vectors of S (and T) in flight per thread before any math
  const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
  auto scalar = [&](int64_t j) {
    float x[1] = {St::load(s + j)};
    float y[1] = {kTeacher ? St::load(t + j) : 0.f};
    f(j, x, y);
  };
  for (int64_t j = tid; j < l.head; j += bs) scalar(j);
  const uint4* sv = as_vectors(s + l.head);
  const uint4* tv = kTeacher ? as_vectors(t + l.head) : nullptr;
  const int64_t step = static_cast<int64_t>(bs) * kUnroll;
  for (int64_t v0 = kBackward ? l.nvec - 1 - tid : tid; kBackward ? v0 >= 0 : v0 < l.nvec;
       v0 += kBackward ? -step : step) {
    uint4 rs[kUnroll], rt[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v =
          kBackward ? v0 - static_cast<int64_t>(u) * bs : v0 + static_cast<int64_t>(u) * bs;
      if (kBackward ? v >= 0 : v < l.nvec) {
        rs[u] = kStream ? __ldcs(sv + v) : sv[v];
        if (kTeacher) rt[u] = kStream ? __ldcs(tv + v) : tv[v];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v =
          kBackward ? v0 - static_cast<int64_t>(u) * bs : v0 + static_cast<int64_t>(u) * bs;
      if (kBackward ? v >= 0 : v < l.nvec) {
        float x[kVec], y[kVec];
        unpack_pair<D, kTeacher>(rs[u], rt[u], x, y);
        f(l.head + v * kVec, x, y);
      }
    }
  }
  for (int64_t j = l.tail_begin + tid; j < l.vocab; j += bs) scalar(j);
}

// Like for_each_read, but f(j0, x[N], y[N], g[N]) fills g, which is stored (evict-first) over the
// gradient row. In place (g == s) each element is read before it is written, by the same thread.
template <DType D, bool kTeacher, class F>
__device__ __forceinline__ void for_each_write(const RowLayout& l,
                                               const typename Storage<D>::Scalar* s,
                                               const typename Storage<D>::Scalar* t,
                                               typename Storage<D>::Scalar* g, F&& f) {
  using St = Storage<D>;
  constexpr int kVec = St::kVec;
  constexpr int kUnroll = 2;
  const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
  auto scalar = [&](int64_t j) {
    float x[1] = {St::load(s + j)};
    float y[1] = {kTeacher ? St::load(t + j) : 0.f};
    float out[1];
    f(j, x, y, out);
    St::store(g + j, out[0]);
  };
  for (int64_t j = tid; j < l.head; j += bs) scalar(j);
  const uint4* sv = as_vectors(s + l.head);
  const uint4* tv = kTeacher ? as_vectors(t + l.head) : nullptr;
  uint4* gv = reinterpret_cast<uint4*>(g + l.head);
  const int64_t step = static_cast<int64_t>(bs) * kUnroll;
  for (int64_t v0 = l.nvec - 1 - tid; v0 >= 0; v0 -= step) {
    uint4 rs[kUnroll], rt[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = v0 - static_cast<int64_t>(u) * bs;
      if (v >= 0) {
        rs[u] = __ldcs(sv + v);
        if (kTeacher) rt[u] = __ldcs(tv + v);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = v0 - static_cast<int64_t>(u) * bs;
      if (v >= 0) {
        float x[kVec], y[kVec], out[kVec];
        unpack_pair<D, kTeacher>(rs[u], rt[u], x, y);
        f(l.head + v * kVec, x, y, out);
        __stcs(gv + v, St::pack(out));
      }
    }
  }
  for (int64_t j = l.tail_begin + tid; j < l.vocab; j += bs) scalar(j);
}

// Fills a gradient row with one value (0 for rows that do not count, NaN for rows with a bad
// input).
template <DType D>
__device__ __forceinline__ void fill_row(const RowLayout& l, typename Storage<D>::Scalar* g,
                                         float value) {
  using St = Storage<D>;
  constexpr int kVec = St::kVec;
  const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
  for (int64_t j = tid; j < l.head; j += bs) St::store(g + j, value);
  float vals[kVec];
#pragma unroll
  for (int i = 0; i < kVec; ++i) vals[i] = value;
  const uint4 packed = St::pack(vals);
  uint4* gv = reinterpret_cast<uint4*>(g + l.head);
  for (int64_t v = tid; v < l.nvec; v += bs) __stcs(gv + v, packed);
  for (int64_t j = l.tail_begin + tid; j < l.vocab; j += bs) St::store(g + j, value);
}

// Bits [j0, j0 + N) of the membership bitmap, inverted: bit i set when element j0 + i is outside K.
template <int N>
__device__ __forceinline__ uint32_t outside_bits(const uint32_t* bitmap, int64_t j0) {
  const int64_t w = j0 >> 5;
  const uint32_t bits = __funnelshift_r(bitmap[w], bitmap[w + 1], static_cast<uint32_t>(j0 & 31));
  constexpr uint32_t kMask = N >= 32 ? 0xffffffffu : ((1u << N) - 1u);
  return ~bits & kMask;
}

// The block's dynamic shared memory, 16-byte aligned (the cluster kernel stages 16-byte vectors
// and keeps 8-byte mbarriers there).
__device__ __forceinline__ unsigned char* dynamic_smem() {
#ifdef SDVP_CUDA_EMULATE
  return emu::dynamic_shared<unsigned char>();
#else
  extern __shared__ __align__(16) unsigned char sdvp_dynamic_smem[];
  return sdvp_dynamic_smem;
#endif
}

// ---- the part of a row one block handles
// ---------------------------------------------------------
//
// RowKernel::run_row is written against this interface; BlockRow is the whole row read from
// global memory by one block, ClusterSlice (distill_loss_cluster.cuh) one block's slice of a row
// staged in shared memory, the row statistics merged across the thread-block cluster.
//   owns(j), leader()           element j belongs to this part; the thread that writes row outputs
//   student(j)                  S at an owned element (top-k member terms and fix-up)
//   member_word(j), outside<N>  the top-k membership bitmap of the owned elements
//   stage()                     start moving the part's elements close (before the first read)
//   read<kTeacher, kBackward>   f(j0, x[N], y[N]) over the owned elements
//   write<kTeacher>             f(j0, x[N], y[N], out[N]), out stored into the gradient
//   fill(value)                 the owned gradient elements set to one value
//   allreduce(v, merge, tmp)    merge over the whole row, the same value in every thread
//   any(flag)                   a block-uniform flag OR-ed over the whole row
//   finish()                    before the block leaves the row
template <DType D>
struct BlockRow {
  using St = Storage<D>;
  using Scalar = typename St::Scalar;
  RowLayout l;
  const Scalar* s;
  const Scalar* t;
  Scalar* g;
  uint32_t* bitmap;  // top-k membership of the whole row
  int64_t bitmap_words;

  __device__ __forceinline__ bool owns(int64_t) const { return true; }
  __device__ __forceinline__ bool leader() const { return threadIdx.x == 0; }
  __device__ __forceinline__ float student(int64_t j) const { return St::load(s + j); }
  __device__ __forceinline__ uint32_t* member_word(int64_t j) const { return bitmap + (j >> 5); }
  template <int N>
  __device__ __forceinline__ uint32_t outside(int64_t j0) const {
    return outside_bits<N>(bitmap, j0);
  }
  __device__ __forceinline__ void clear_bitmap() const {
    for (int64_t w = threadIdx.x; w < bitmap_words; w += blockDim.x) bitmap[w] = 0u;
  }
  __device__ __forceinline__ void stage() const {}
  template <bool kTeacher, bool kBackward, class F>
  __device__ __forceinline__ void read(F&& f) const {
    for_each_read<D, kTeacher, false, kBackward>(l, s, t, f);
  }
  template <bool kTeacher, class F>
  __device__ __forceinline__ void write(F&& f) const {
    for_each_write<D, kTeacher>(l, s, t, g, f);
  }
  __device__ __forceinline__ void fill(float value) const { fill_row<D>(l, g, value); }
  template <class T, class Merge>
  __device__ __forceinline__ T allreduce(T v, Merge merge, T* scratch) const {
    return block_allreduce(v, merge, scratch);
  }
  __device__ __forceinline__ bool any(bool block_flag) const { return block_flag; }
  __device__ __forceinline__ void finish() const {}
};

// ---- the row kernel ----------------------------------------------------------------------------

struct TopKTeacherAcc {
  float mt;  // max of the log-probabilities l_i
  float zt;  // sum of exp((l_i - shift_of(mt)) / tau)
  float s1;  // sum of exp(l_i): the teacher's mass on the k entries
};

__device__ __forceinline__ TopKTeacherAcc merge_topk_teacher(TopKTeacherAcc a, TopKTeacherAcc b,
                                                             float k_tau) {
  const float nm = fmaxf(a.mt, b.mt);
  const float sa = a.mt == -kInf ? 0.f : exp2f((a.mt - nm) * k_tau);
  const float sb = b.mt == -kInf ? 0.f : exp2f((b.mt - nm) * k_tau);
  return {nm, a.zt * sa + b.zt * sb, a.s1 + b.s1};
}

union RowScratch {
  RowAcc row[kMaxWarps];
  TopKTeacherAcc topk[kMaxWarps];
  Sum2 sum2[kMaxWarps];
};

// Values of one row that pass 2 and the top-k fix-up need, the same in every thread. With
// k = log2(e)/tau: log2 softmax(s)_j = (s_j - lse) * log2(e), log2 q_j = (s_j - ls) * k and
// log2 p_c = (t_c - lt) * k, where ls and lt are tau * logsumexp(x / tau), in logit units.
struct RowConsts {
  float lse;  // logsumexp of the student row
  float ls;   // tau * logsumexp(s / tau)
  float lt;   // tau * logsumexp(t / tau) over the teacher's categories (dense logits or top-k
              // log-probs)
  float c_soft, c_uniform, c_label, c_kd;  // gradient coefficients (scale folded in)
  float p1_scale;   // TauMode::kTwo: softmax(s)_j = q_j^2 * p1_scale, p1_scale = exp(ls - lse)
  float d, sg;      // the divergence and sum_c q_c g_c, natural units
  float tail_coef;  // top-k: dD/dz_j = q_j * tail_coef outside K
  int32_t label;    // -1 when the row has no CE term
};

template <DType D, TeacherKind TK, Divergence DV>
struct RowKernel {
  using St = Storage<D>;
  using Scalar = typename St::Scalar;
  static constexpr bool kKD = TK != TeacherKind::kNone;
  static constexpr bool kDense = TK == TeacherKind::kDense;
  static constexpr bool kTopK = TK == TeacherKind::kTopK;
  static constexpr bool kJsd = DV == Divergence::kJSD;

  template <TauMode M, class Part>
  static __device__ RowAcc pass1(const KernelParams& p, Part& part, RowScratch& scratch) {
    RowAcc a = row_acc_identity();
    const float k = p.k_tau;
    part.template read<kDense, false>([&](int64_t j0, const auto& x, const auto& y) {
      constexpr int N = static_cast<int>(std::extent<std::remove_reference_t<decltype(x)>>::value);
      uint32_t outside = 0;
      if constexpr (kTopK) outside = part.template outside<N>(j0);
      accumulate<kKD, kDense, kTopK, DV, M, N>(a, x, y, outside, j0, k);
    });
    return part.allreduce(
        a, [k](const RowAcc& u, const RowAcc& v) { return merge_row_acc<kDense, DV>(u, v, k); },
        scratch.row);
  }

  // Dense JSD: D and sum_c q_c g_c over the row, from the final normalisers.
  template <class Part>
  static __device__ Sum2 jsd_sums(const KernelParams& p, Part& part, float ls, float lt,
                                  RowScratch& scratch) {
    Sum2 acc{0.f, 0.f};
    const float k = p.k_tau, b = p.jsd_beta;
    part.template read<true, true>([&](int64_t, const auto& x, const auto& y) {
      constexpr int N = static_cast<int>(std::extent<std::remove_reference_t<decltype(x)>>::value);
#pragma unroll
      for (int i = 0; i < N; ++i) {
        const float lq2 = (x[i] - ls) * k, lp2 = (y[i] - lt) * k;
        category_terms<DV>(exp2f(lp2), lp2, exp2f(lq2), lq2, b, acc.a, acc.b);
      }
    });
    return part.allreduce(acc, merge_sum2, scratch.sum2);
  }

  // The CE part of one element's gradient; p1 = softmax(s)_j, reused as q_j when tau is 1.
  template <bool kCE>
  static __device__ __forceinline__ float ce_grad(float x, const RowConsts& c, float& p1) {
    if constexpr (kCE) {
      p1 = exp2f((x - c.lse) * kLog2e);
      return fmaf(p1, c.c_soft, -c.c_uniform);
    } else {
      p1 = 0.f;
      return 0.f;
    }
  }

  template <bool kCE, TauMode M, class Part>
  static __device__ void pass2(const KernelParams& p, Part& part, const RowConsts& c, bool kd_on) {
    // One exponential for both softmaxes at tau = 2 (q first, p1 from it).
    constexpr bool kSquare = kCE && kKD && M == TauMode::kTwo;
    const float k = p.k_tau, b = p.jsd_beta;
    part.template write<kDense>([&](int64_t j0, const auto& x, const auto& y, auto& out) {
      constexpr int N = static_cast<int>(std::extent<std::remove_reference_t<decltype(x)>>::value);
      [[maybe_unused]] uint32_t outside = 0;
      if constexpr (kTopK) outside = part.template outside<N>(j0);
#pragma unroll
      for (int i = 0; i < N; ++i) {
        const float lq2 = (x[i] - c.ls) * k;
        float p1, gi;
        [[maybe_unused]] float q = 0.f;
        if constexpr (kSquare) {
          q = exp2f(lq2);
          p1 = q * q * c.p1_scale;
          gi = fmaf(p1, c.c_soft, -c.c_uniform);
        } else {
          gi = ce_grad<kCE>(x[i], c, p1);
        }
        if constexpr (kKD) {
          if (kd_on) {
            if constexpr (!kSquare) q = (kCE && M == TauMode::kOne) ? p1 : exp2f(lq2);
            float gk;
            if constexpr (kDense) {
              const float lp2 = (y[i] - c.lt) * k;
              gk = element_kd_grad<DV>(q, DV == Divergence::kReverseKL ? 0.f : exp2f(lp2), lp2, lq2,
                                       b, c.d, c.sg);
            } else {
              gk = q > 0.f ? q * c.tail_coef : 0.f;
            }
            gi = fmaf(c.c_kd, gk, gi);
          }
        }
        if constexpr (kCE) gi = (j0 + i == c.label) ? gi - c.c_label : gi;
        // Top-k members keep their logit for now: the fix-up after pass 2 reads it back (in place,
        // the student element is still intact) and writes the member's real gradient.
        if constexpr (kTopK) gi = ((outside >> i) & 1u) ? gi : x[i];
        out[i] = gi;
      }
    });
  }

  // One row (or, for ClusterSlice, one block's share of it). Every block that handles the row
  // takes the same branches: they depend on the row's label, weight and teacher only.
  template <class Part>
  static __device__ void run_row(const KernelParams& p, int64_t row, Part& part,
                                 RowScratch& scratch) {
    const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
    const int64_t V = p.vocab;
    Scalar* g = part.g;

    const int32_t label = p.labels ? p.labels[row] : p.ignore_index;
    const bool has_label = p.labels != nullptr && label != p.ignore_index;
    const bool bad_label = has_label && (label < 0 || static_cast<int64_t>(label) >= V);
    const float w = p.row_weights ? p.row_weights[row] : 1.f;
    const bool valid = (has_label || kKD) && w > 0.f;
    const bool want_stats = p.stats_lse || p.stats_ce || p.stats_kd || p.stats_argmax;
    // Read before any thread can overwrite it (in-place gradient): gradients are written only after
    // pass 1, which every block of the row finishes first. (Rows that fill their gradient early
    // never use it.)
    const float s_label = has_label && !bad_label ? St::load(part.s + label) : 0.f;

    // ---- top-k: membership bitmap, index checks, teacher normaliser ----------------------------
    const int64_t K = p.topk;
    const int32_t* kidx = kTopK ? p.topk_indices + row * K : nullptr;
    const float* klp = kTopK ? p.topk_logprobs + row * K : nullptr;
    TopKTeacherAcc tk{-kInf, 0.f, 0.f};
    const float k_tau = p.k_tau;
    bool bad_topk = false;
    if constexpr (kTopK) {
      part.clear_bitmap();
      __syncthreads();
      int bad = 0;
      for (int64_t i = tid; i < K; i += bs) {
        const int32_t j = kidx[i];
        if (j < 0 || static_cast<int64_t>(j) >= V) {
          bad = 1;
          atomicMin(&p.header->error_key, error_key(row, 1, j));
          continue;
        }
        const uint32_t bit = 1u << (j & 31);
        if (part.owns(j) && (atomicOr(part.member_word(j), bit) & bit)) {  // a repeated index
          bad = 1;
          atomicMin(&p.header->error_key, error_key(row, 1, j));
        }
        // Online softmax over l_i / tau, shifted by the running max (0 while that is -inf).
        const float lp = klp[i];
        if (lp > tk.mt) {
          tk.zt *= tk.mt == -kInf ? 0.f : exp2f((tk.mt - lp) * k_tau);
          tk.mt = lp;
        }
        tk.zt += exp2f((lp - shift_of(tk.mt)) * k_tau);
        tk.s1 += exp2f(lp * kLog2e);
      }
      bad_topk = part.any(__syncthreads_or(bad) != 0);
      if (!bad_topk) {
        tk = block_allreduce(
            tk,
            [k_tau](TopKTeacherAcc u, TopKTeacherAcc v) { return merge_topk_teacher(u, v, k_tau); },
            scratch.topk);
      }
    }

    const float nan = __int_as_float(0x7fc00000);
    if (bad_label || bad_topk) {  // reported through the error key; the row's outputs are NaN
      if (part.leader()) {
        p.row_partials[row] = nan;
        if (p.row_loss) p.row_loss[row] = nan;
        if (p.stats_lse) p.stats_lse[row] = nan;
        if (p.stats_ce) p.stats_ce[row] = nan;
        if (p.stats_kd) p.stats_kd[row] = nan;
        if (p.stats_argmax) p.stats_argmax[row] = -1;
      }
      if (g) part.fill(nan);
      return;
    }
    if (!valid && !want_stats) {
      if (part.leader()) {
        p.row_partials[row] = 0.f;
        if (p.row_loss) p.row_loss[row] = 0.f;
      }
      if (g) part.fill(0.f);
      return;
    }

    // ---- pass 1 --------------------------------------------------------------------------------
    part.stage();
    const TauMode mode =
        p.same_tau ? TauMode::kOne : (kKD && p.tau == 2.f ? TauMode::kTwo : TauMode::kAny);
    const RowAcc a = mode == TauMode::kOne   ? pass1<TauMode::kOne>(p, part, scratch)
                     : mode == TauMode::kTwo ? pass1<TauMode::kTwo>(p, part, scratch)
                                             : pass1<TauMode::kAny>(p, part, scratch);
    RowConsts c;
    const float tau = p.tau;
    const float lse = shift_of(a.m) + kLn2 * __log2f(a.z1);
    c.lse = lse;
    // Equal to lse when tau is 1 (zs is then z1), so q_j = softmax(s)_j bit for bit.
    c.ls = p.same_tau ? lse : shift_of(a.m) + tau * kLn2 * __log2f(a.zs);

    float ce = 0.f;
    if (has_label) {
      const float eps = p.label_smoothing;
      // Guarded products: a zero weight times an infinite term (a -inf logit) contributes nothing.
      if (eps < 1.f) ce += (1.f - eps) * (lse - s_label);
      if (eps > 0.f) ce += eps * (lse - a.sum / static_cast<float>(V));
      if (p.z_loss > 0.f) ce += p.z_loss * lse * lse;
    }

    // ---- divergence ----------------------------------------------------------------------------
    float d = 0.f, sg = 0.f, tail_coef = 0.f;
    const bool kd_on = kKD && !(kJsd && p.jsd_degenerate);
    const float b = p.jsd_beta;
    if constexpr (kDense) {
      c.lt = shift_of(a.mt) + tau * kLn2 * __log2f(a.zt);
      if (kd_on) {
        if constexpr (DV == Divergence::kForwardKL) {
          d = kLn2 * (a.acc / a.zt - __log2f(a.zt) + __log2f(a.zs));
        } else if constexpr (DV == Divergence::kReverseKL) {
          d = kLn2 * (a.acc / a.zs - __log2f(a.zs) + __log2f(a.zt));
        } else {
          const Sum2 js = jsd_sums(p, part, c.ls, c.lt, scratch);
          d = kLn2 * js.a;
          sg = kLn2 * js.b;
        }
      }
    } else if constexpr (kTopK) {
      // Teacher categories: l_i / tau and, in tail mode with missing mass, log(mass) / tau.
      const bool has_tail = K < V;
      const float mass = 1.f - tk.s1;
      const bool teacher_tail = p.topk_tail && has_tail && mass > 0.f;
      const float l_tail = teacher_tail ? kLn2 * __log2f(mass) : -kInf;
      float mt = tk.mt, zt = tk.zt;
      if (teacher_tail) {
        const float nm = fmaxf(mt, l_tail);
        zt = (mt == -kInf ? 0.f : zt * exp2f((mt - nm) * k_tau)) + exp2f((l_tail - nm) * k_tau);
        mt = nm;
      }
      c.lt = shift_of(mt) + tau * kLn2 * __log2f(zt);
      // Student tail: q_tail = sum over j outside K of q_j, accumulated as such in pass 1.
      const float lq2_tail = __log2f(a.ztail) - __log2f(a.zs);
      const float q_tail = has_tail ? a.ztail / a.zs : 0.f;
      const float lp2_tail = (l_tail - c.lt) * k_tau;
      const float p_tail = teacher_tail ? exp2f(lp2_tail) : 0.f;
      if (kd_on) {
        Sum2 acc{0.f, 0.f};
        for (int64_t i = tid; i < K; i += bs) {
          const int32_t j = kidx[i];
          if (!part.owns(j)) continue;
          const float lq2 = (part.student(j) - c.ls) * k_tau;
          const float lp2 = (klp[i] - c.lt) * k_tau;
          category_terms<DV>(exp2f(lp2), lp2, exp2f(lq2), lq2, b, acc.a, acc.b);
        }
        acc = part.allreduce(acc, merge_sum2, scratch.sum2);
        if (has_tail) category_terms<DV>(p_tail, lp2_tail, q_tail, lq2_tail, b, acc.a, acc.b);
        d = kLn2 * acc.a;
        sg = kLn2 * acc.b;
        if constexpr (DV == Divergence::kForwardKL) {
          tail_coef = q_tail > 0.f ? 1.f - p_tail / q_tail : 0.f;
        } else if constexpr (DV == Divergence::kReverseKL) {
          tail_coef = (lq2_tail - lp2_tail) * kLn2 - d;
        } else {
          const float mix = fmaf(b, p_tail, (1.f - b) * q_tail);
          tail_coef = (1.f - b) * (lq2_tail - __log2f(mix)) * kLn2 - sg;
        }
      }
    }
    // A divergence is never negative; rounding can make it -1e-8 (NaN stays NaN).
    const float d_out = d < 0.f ? 0.f : d;

    if (part.leader()) {
      float loss = 0.f;
      if (valid) {
        float inner = 0.f;
        if (has_label) inner += p.ce_weight * ce;
        if (kKD) inner += p.kd_scale * d_out;
        loss = w * inner;
      }
      p.row_partials[row] = loss;
      if (p.row_loss) p.row_loss[row] = loss;
      if (p.stats_lse) p.stats_lse[row] = lse;
      if (p.stats_ce) p.stats_ce[row] = ce;
      if (p.stats_kd) p.stats_kd[row] = kKD ? d_out : 0.f;
      if (p.stats_argmax) p.stats_argmax[row] = a.arg;
    }

    // ---- pass 2 --------------------------------------------------------------------------------
    if (!g) return;
    if (!valid) {
      part.fill(0.f);
      return;
    }
    const float scale = p.grad_scale * w * p.header->inv_normalizer;
    const float c_ce = has_label ? scale * p.ce_weight : 0.f;
    c.c_soft = c_ce * (1.f + 2.f * p.z_loss * lse);
    c.c_uniform = c_ce * p.label_smoothing / static_cast<float>(V);
    c.c_label = c_ce * (1.f - p.label_smoothing);
    c.c_kd = scale * p.kd_scale * p.inv_tau;
    c.p1_scale = exp2f((c.ls - lse) * kLog2e);
    c.d = d;
    c.sg = sg;
    c.tail_coef = tail_coef;
    c.label = has_label ? label : -1;
    if (!has_label) {
      pass2<false, TauMode::kAny>(p, part, c, kd_on);
    } else if (mode == TauMode::kOne) {
      pass2<true, TauMode::kOne>(p, part, c, kd_on);
    } else if (mode == TauMode::kTwo) {
      pass2<true, TauMode::kTwo>(p, part, c, kd_on);
    } else {
      pass2<true, TauMode::kAny>(p, part, c, kd_on);
    }

    if constexpr (kTopK) {
      // Each member's gradient, now that pass 2 (which left members untouched in value) is done.
      __syncthreads();
      for (int64_t i = tid; i < K; i += bs) {
        const int32_t j = kidx[i];
        if (!part.owns(j)) continue;
        const float x = part.student(j);
        float gi = 0.f;
        if (has_label) {
          const float p1 = exp2f((x - c.lse) * kLog2e);
          gi = fmaf(p1, c.c_soft, -c.c_uniform);
          if (j == label) gi -= c.c_label;
        }
        if (kd_on) {
          const float lq2 = (x - c.ls) * k_tau;
          const float lp2 = (klp[i] - c.lt) * k_tau;
          gi = fmaf(c.c_kd, element_kd_grad<DV>(exp2f(lq2), exp2f(lp2), lp2, lq2, b, d, sg), gi);
        }
        St::store(g + j, gi);
      }
    }
  }
};

// Row r's S, T and dS (T and dS null when absent).
template <DType D>
struct RowPointers {
  const typename Storage<D>::Scalar* s;
  const typename Storage<D>::Scalar* t;
  typename Storage<D>::Scalar* g;
};

template <DType D>
__device__ __forceinline__ RowPointers<D> row_pointers(const KernelParams& p, int64_t row) {
  using Scalar = typename Storage<D>::Scalar;
  const int64_t offset = row * p.vocab;
  return {static_cast<const Scalar*>(p.student) + offset,
          p.teacher ? static_cast<const Scalar*>(p.teacher) + offset : nullptr,
          p.grad ? static_cast<Scalar*>(p.grad) + offset : nullptr};
}

// One block per row (a fixed grid with a row loop for huge top-k vocabularies).
template <DType D, TeacherKind TK, Divergence DV>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocksPerSm)
    distill_rows_kernel(KernelParams p) {
  __shared__ RowScratch scratch;
  uint32_t* bitmap = nullptr;
  if constexpr (TK == TeacherKind::kTopK) {
    bitmap = p.global_bitmap ? p.global_bitmap + static_cast<int64_t>(blockIdx.x) * p.bitmap_words
                             : reinterpret_cast<uint32_t*>(dynamic_smem());
  }
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const RowPointers<D> rp = row_pointers<D>(p, row);
    BlockRow<D> part{
        row_layout<D>(rp.s, p.vocab, p.co_aligned), rp.s, rp.t, rp.g, bitmap, p.bitmap_words};
    RowKernel<D, TK, DV>::run_row(p, row, part, scratch);
    __syncthreads();  // the next row reuses the bitmap and the scratch
  }
}

// Resets the error key, checks labels and counts valid rows (reads labels and weights only), and
// sets the normaliser the row kernel scales gradients by. One block: the count is exact and no
// host round trip is needed.
__global__ void __launch_bounds__(kSideThreads) prepare_kernel(KernelParams p) {
  __shared__ long long counts[kSideThreads / 32];
  const int tid = static_cast<int>(threadIdx.x);
  if (tid == 0) p.header->error_key = ~0ull;
  __syncthreads();
  long long count = 0;
  for (int64_t r = tid; r < p.rows; r += blockDim.x) {
    const int32_t y = p.labels ? p.labels[r] : p.ignore_index;
    const bool has_label = p.labels != nullptr && y != p.ignore_index;
    if (has_label && (y < 0 || static_cast<int64_t>(y) >= p.vocab)) {
      atomicMin(&p.header->error_key, error_key(r, 0, y));
    }
    const float w = p.row_weights ? p.row_weights[r] : 1.f;
    if ((has_label || p.has_teacher) && w > 0.f) ++count;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) count += __shfl_xor_sync(0xffffffffu, count, o);
  if ((tid & 31) == 0) counts[tid >> 5] = count;
  __syncthreads();
  if (tid == 0) {
    long long total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) total += counts[w];
    double normalizer = 1.0;
    if (p.has_normalizer) {
      normalizer = p.normalizer;
    } else if (p.reduction == Reduction::kMean) {
      normalizer = static_cast<double>(total);
    } else if (p.reduction == Reduction::kBatchMean) {
      normalizer = static_cast<double>(p.rows);
    }
    p.header->valid_rows = total;
    p.header->normalizer = normalizer;
    p.header->inv_normalizer = normalizer > 0 ? static_cast<float>(1.0 / normalizer) : 0.f;
  }
}

// Sums the row losses in double in a fixed order (contiguous chunks per thread, then the chunk sums
// in thread order) and writes the device result.
__global__ void __launch_bounds__(kSideThreads) finalize_kernel(KernelParams p) {
  __shared__ double partial[kSideThreads];
  const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
  const int64_t chunk = (p.rows + bs - 1) / bs;
  const int64_t begin = tid * chunk;
  const int64_t end = begin + chunk < p.rows ? begin + chunk : p.rows;
  double sum = 0.0;
  for (int64_t r = begin; r < end; ++r) sum += static_cast<double>(p.row_partials[r]);
  partial[tid] = sum;
  __syncthreads();
  for (int half = bs / 2; half > 0; half /= 2) {
    if (tid < half) partial[tid] += partial[tid + half];
    __syncthreads();
  }
  if (tid == 0) {
    const double total = partial[0];
    const double normalizer = p.header->normalizer;
    double loss = total;
    if (p.reduction != Reduction::kNone) loss = normalizer > 0 ? total / normalizer : total * 0.0;
    DistillLossDeviceResult* out = p.result;
    out->loss = static_cast<float>(loss);
    out->normalizer = static_cast<float>(normalizer);
    out->valid_rows = p.header->valid_rows;
    const unsigned long long key = p.header->error_key;
    if (key == ~0ull) {
      out->status = static_cast<int32_t>(Status::kOk);
      out->bad_row = -1;
      out->bad_value = 0;
    } else {
      out->bad_row = static_cast<int32_t>(key >> 33);
      out->status = static_cast<int32_t>(((key >> 32) & 1u) ? Status::kTopKIndexInvalid
                                                            : Status::kLabelOutOfRange);
      out->bad_value = static_cast<int32_t>(static_cast<uint32_t>(key & 0xffffffffu));
    }
  }
}

}  // namespace cuda_detail
}  // namespace sdvp
