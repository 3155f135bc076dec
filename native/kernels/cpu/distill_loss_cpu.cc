// The fused distillation objective on the CPU: Highway SIMD with run-time dispatch, rows over
// threads.
//
// Per row (see docs/objective.md for the math), with the row of S and T resident in L2 after pass
// 1:
//   pass 1  max of the student (and dense teacher) logits; poison (NaN / +inf) detection; sum of
//   logits pass 2  exponentials, cached in a per-thread scratch row (exp(s-m), exp((s-m)/tau),
//   exp((t-mt)/tau)),
//           their sums, and the cross terms that give KL / reverse KL without a further pass
//   pass 3  JSD only: the divergence and the mean of its per-category gradient
//   pass 4  the gradient, from the cached exponentials: no exp in this pass for the KL cases
// Each logit is read from memory once and each gradient element written once; the other passes hit
// L2.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/distill_loss_cpu.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/parallel_for.h"
#include "distill_loss.h"

// ---- Target-independent helpers (compiled once)
// -------------------------------------------------------
#ifndef SDVP_DISTILL_LOSS_CPU_ONCE
#define SDVP_DISTILL_LOSS_CPU_ONCE
namespace sdvp {
namespace detail {

inline float Bf16ToFloat(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

inline uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) return 0x7FC0;
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

inline float LoadScalar(const float* row, int64_t j) { return row[j]; }
inline float LoadScalar(const uint16_t* row, int64_t j) { return Bf16ToFloat(row[j]); }
inline void StoreScalar(float* row, int64_t j, float value) { row[j] = value; }
inline void StoreScalar(uint16_t* row, int64_t j, float value) { row[j] = FloatToBf16(value); }

// Constants of one call, shared by every row.
struct CallConstants {
  float inv_tau;
  float kd_scale;  // kd_weight * tau^2 (when t2) — multiplies D in the loss
  bool tau_is_one;
  int tau_power;  // 2, 3 or 4 when tau is that whole number (exp(s - m) = exp((s - m)/tau)^tau),
                  // else 0
  bool has_teacher;
  bool dense;
  bool need_stats;
};

}  // namespace detail
}  // namespace sdvp
#endif

HWY_BEFORE_NAMESPACE();
namespace sdvp {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

HWY_INLINE VF LoadVec(DF d, const float* p) { return hn::LoadU(d, p); }
HWY_INLINE VF LoadVec(DF d, const uint16_t* p) {
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<uint32_t, DF> d32;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, p))));
}

HWY_INLINE void StoreVec(DF d, VF v, float* p) { hn::StoreU(v, d, p); }
HWY_INLINE void StoreVec(DF /*d*/, VF v, uint16_t* p) {
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint16_t, DF> d16;
  const auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  auto rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(lsb, hn::Set(du, 0x7FFFu))));
  rounded = hn::IfThenElse(hn::RebindMask(du, hn::Eq(v, v)), rounded, hn::Set(du, 0x7FC0u));
  hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, rounded)), d16, p);
}

// Loads lanes [j, j+lanes) of a logits row, or the last partial vector padded with -inf (neutral
// for max and exp sums), so every pass is written once for whole vectors.
template <typename L>
HWY_INLINE VF LoadLogits(DF d, const L* row, int64_t j, int64_t vocab) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (j + lanes <= vocab) return LoadVec(d, row + j);
  HWY_ALIGN float buffer[hn::MaxLanes(d)];
  for (int64_t i = 0; i < lanes; ++i) {
    buffer[i] =
        j + i < vocab ? detail::LoadScalar(row, j + i) : -std::numeric_limits<float>::infinity();
  }
  return hn::Load(d, buffer);
}

template <typename L>
HWY_INLINE void StoreGrad(DF d, VF v, L* row, int64_t j, int64_t vocab) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (j + lanes <= vocab) {
    StoreVec(d, v, row + j);
    return;
  }
  HWY_ALIGN float buffer[hn::MaxLanes(d)];
  hn::Store(v, d, buffer);
  for (int64_t i = 0; j + i < vocab; ++i) detail::StoreScalar(row, j + i, buffer[i]);
}

HWY_INLINE float ReduceSum(DF d, VF v) { return hn::GetLane(hn::SumOfLanes(d, v)); }
HWY_INLINE float ReduceMax(DF d, VF v) { return hn::GetLane(hn::MaxOfLanes(d, v)); }

// 2^y for y <= 0 (up to rounding), the only range the kernel needs: every exponent is a logit minus
// its row maximum. Round-to-nearest split y = n + f with f in [-1/2, 1/2], a degree-5 minimax
// polynomial for 2^f (relative error 9e-8, below float rounding), and n added to the exponent bits.
// About half the operations of hn::Exp. Below 2^-126 the result is not meaningful: with
// `exact_zero` it is 0 (rows holding -inf logits need p = 0 exactly for 0 * log 0 = 0); otherwise y
// is clamped at -126 and the result is some value under 2^-126, one operation cheaper and harmless
// in sums and gradients. NaN and +inf logits never get here: the poison check in pass 1 catches
// them.
HWY_INLINE VF Exp2NonPositive(DF d, VF y, bool exact_zero) {
  const hn::RebindToSigned<DF> di;
  const VF lowest = hn::Set(d, -126.0f);
  const VF clamped = exact_zero ? y : hn::Max(y, lowest);
  const VF magic =
      hn::Set(d, 12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const VF shifted = hn::Add(clamped, magic);
  const VF n = hn::Sub(shifted, magic);
  const VF f = hn::Sub(clamped, n);
  VF poly = hn::Set(d, 1.3264726899303268e-3f);
  poly = hn::MulAdd(poly, f, hn::Set(d, 9.67151266057522e-3f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 5.5507337442440186e-2f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 2.4022242084919032e-1f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 6.931469775984724e-1f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 1.0f));
  // The low mantissa bits of `shifted` hold 2^22 + n; shifted left by 23 only n << 23 survives.
  const auto exponent = hn::ShiftLeft<23>(hn::BitCast(di, shifted));
  const VF scaled = hn::BitCast(d, hn::Add(hn::BitCast(di, poly), exponent));
  return exact_zero ? hn::IfThenElseZero(hn::Ge(y, lowest), scaled) : scaled;
}

// The exact remainder of m * a after rounding to float: exponents are formed as one multiply-add
// x * a - fl(m * a), so every exponential of a row carries the same factor 2^delta, which cancels
// in every ratio and is taken out of every logarithm of a sum.
inline double RoundingRemainder(float m, float a) {
  return static_cast<double>(m) * static_cast<double>(a) - static_cast<double>(m * a);
}

// x^n for a small whole n >= 1: exp(s - m) from exp((s - m)/tau) when tau is 2, 3 or 4.
HWY_INLINE VF PowSmall(VF x, int n) {
  VF result = x;
  for (int i = 1; i < n; ++i) result = hn::Mul(result, x);
  return result;
}

// Everything one row computes; read by the reduction and the stats outputs.
struct RowResult {
  double loss = 0;
  float lse = 0;
  float ce = 0;
  float kd = 0;
  int32_t argmax = -1;
  int32_t status = 0;  // a Status value
  int64_t bad_value = 0;
};

// Per-thread scratch: cached exponentials and the sorted top-k entries of the current row.
struct Scratch {
  hwy::AlignedFreeUniquePtr<float[]> exp_s1;    // exp(s - m)
  hwy::AlignedFreeUniquePtr<float[]> exp_stau;  // exp((s - m)/tau) (aliases exp_s1 when tau == 1)
  hwy::AlignedFreeUniquePtr<float[]> exp_t;     // exp((t - mt)/tau); JSD: reused for g_j
  std::vector<std::pair<int32_t, float>> topk;  // (index, logprob) sorted by index
  std::vector<double> cat_logp;                 // teacher log-probabilities per top-k category
};

class RowKernel {
 public:
  RowKernel(const DistillLossSpec& spec, const detail::CallConstants& constants, double normalizer)
      : spec_(spec), c_(constants), normalizer_(normalizer) {
    lanes_ = static_cast<int64_t>(hn::Lanes(d_));
    padded_ = (spec.vocab + lanes_ - 1) / lanes_ * lanes_;
  }

  void InitScratch(Scratch& scratch) const {
    scratch.exp_s1 = hwy::AllocateAligned<float>(static_cast<size_t>(padded_));
    scratch.exp_stau =
        c_.tau_is_one ? nullptr : hwy::AllocateAligned<float>(static_cast<size_t>(padded_));
    scratch.exp_t = c_.dense ? hwy::AllocateAligned<float>(static_cast<size_t>(padded_)) : nullptr;
  }

  // Computes row r; `has_next_row` says whether this thread goes on with row r + 1 (to prefetch
  // it).
  template <typename L>
  RowResult Run(int64_t r, bool has_next_row, Scratch& scratch) const {
    const int64_t V = spec_.vocab;
    const L* s = static_cast<const L*>(spec_.student) + r * V;
    const L* t = c_.dense ? static_cast<const L*>(spec_.teacher_logits) + r * V : nullptr;
    const L* next_s = has_next_row ? s + V : nullptr;
    const L* next_t = has_next_row && t ? t + V : nullptr;
    L* grad = spec_.grad ? static_cast<L*>(spec_.grad) + r * V : nullptr;
    float* e1 = scratch.exp_s1.get();
    float* es = c_.tau_is_one ? e1 : scratch.exp_stau.get();
    float* et = c_.dense ? scratch.exp_t.get() : nullptr;

    RowResult out;
    const float w = spec_.row_weights ? spec_.row_weights[r] : 1.0f;
    const int32_t label = spec_.labels ? spec_.labels[r] : spec_.ignore_index;
    const bool has_label = spec_.labels != nullptr && label != spec_.ignore_index;
    const bool valid = (has_label || c_.has_teacher) && w > 0;
    const float inf = std::numeric_limits<float>::infinity();

    // ---- pass 1: maxima, poison, sum of logits
    // ------------------------------------------------------- A scaled running sum finds NaN / +inf
    // logits in one multiply-add per vector: it turns NaN or +inf for them, -inf when the row holds
    // -inf logits (allowed), and no finite row can overflow it.
    const VF tiny = hn::Set(d_, 0x1p-100f);
    VF vmax_s = hn::Set(d_, -inf), vmax_t = hn::Set(d_, -inf), vsum_s = hn::Zero(d_);
    VF probe_s = hn::Zero(d_), probe_t = hn::Zero(d_);
    const bool need_sum_s = has_label && spec_.label_smoothing != 0.0f;
    for (int64_t j = 0; j < V; j += lanes_) {
      const VF vs = LoadLogits(d_, s, j, V);
      probe_s = hn::MulAdd(vs, tiny, probe_s);
      vmax_s = hn::Max(vmax_s, vs);
      if (need_sum_s) {
        vsum_s = hn::Add(vsum_s,
                         j + lanes_ <= V
                             ? vs
                             : hn::IfThenElseZero(hn::FirstN(d_, static_cast<size_t>(V - j)), vs));
      }
      if (t) {
        const VF vt = LoadLogits(d_, t, j, V);
        probe_t = hn::MulAdd(vt, tiny, probe_t);
        vmax_t = hn::Max(vmax_t, vt);
      }
    }
    const float m = ReduceMax(d_, vmax_s);
    const float mt = t ? ReduceMax(d_, vmax_t) : 0.0f;
    const float sum_s = need_sum_s ? ReduceSum(d_, vsum_s) : 0.0f;
    const float probe_s_sum = ReduceSum(d_, probe_s), probe_t_sum = ReduceSum(d_, probe_t);
    const bool poisoned = std::isnan(probe_s_sum) || probe_s_sum == inf ||
                          std::isnan(probe_t_sum) || probe_t_sum == inf || m == -inf ||
                          (t && mt == -inf);
    // Rows without -inf logits need no 0 * log 0 guard in the cross terms below.
    const bool s_has_neg_inf = probe_s_sum == -inf, t_has_neg_inf = probe_t_sum == -inf;

    if (c_.need_stats && spec_.stats_argmax) out.argmax = Argmax(s, m);
    if (poisoned) return PoisonedRow(out, grad, valid, has_label, label);

    // ---- pass 2: cached exponentials and their sums
    // --------------------------------------------------- Exponents are taken in base 2 with
    // log2(e) folded into one multiply-add: x*a - fl(m*a) (see RoundingRemainder). When tau is 2, 3
    // or 4, exp(s - m) is exp((s - m)/tau)^tau: one exponential per student logit.
    const bool need_lse = has_label || (c_.need_stats && spec_.stats_lse);
    const bool need_es = c_.has_teacher;
    const bool separate_es = need_es && !c_.tau_is_one;
    const bool need_e1 = need_lse || (need_es && c_.tau_is_one);
    const bool e1_from_es = need_e1 && separate_es && c_.tau_power > 0;
    const bool exact_zero = s_has_neg_inf || t_has_neg_inf;
    const float log2e = 1.4426950408889634f;
    const float a1 = log2e, atau = log2e * c_.inv_tau;
    const VF va1 = hn::Set(d_, a1), vatau = hn::Set(d_, atau);
    const VF vc1 = hn::Set(d_, -(m * a1)), vcs = hn::Set(d_, -(m * atau)),
             vct = hn::Set(d_, -(mt * atau));
    const double delta_s = RoundingRemainder(m, atau), delta_t = RoundingRemainder(mt, atau);
    const double delta_1 = e1_from_es                      ? c_.tau_power * delta_s
                           : separate_es || !c_.tau_is_one ? RoundingRemainder(m, a1)
                                                           : delta_s;
    VF vsum1 = hn::Zero(d_), vsums = hn::Zero(d_), vsumt = hn::Zero(d_), vcross = hn::Zero(d_);
    const bool forward = spec_.divergence == Divergence::kForwardKL;
    const bool reverse = spec_.divergence == Divergence::kReverseKL;
    for (int64_t j = 0; j < V; j += lanes_) {
      // Bring the next row towards L2 while this one computes, so its pass 1 does not wait on DRAM.
      if (next_s) hwy::Prefetch(next_s + j);
      if (next_t) hwy::Prefetch(next_t + j);
      const VF vs = LoadLogits(d_, s, j, V);
      VF x1 = hn::Zero(d_), xs = hn::Zero(d_);
      if (separate_es) {
        xs = Exp2NonPositive(d_, hn::MulAdd(vs, vatau, vcs), exact_zero);
        hn::Store(xs, d_, es + j);
        vsums = hn::Add(vsums, xs);
      }
      if (need_e1) {
        x1 = e1_from_es ? PowSmall(xs, c_.tau_power)
                        : Exp2NonPositive(d_, hn::MulAdd(vs, va1, vc1), exact_zero);
        if (!e1_from_es) hn::Store(x1, d_, e1 + j);
        vsum1 = hn::Add(vsum1, x1);
      }
      if (!separate_es) xs = x1;
      if (t) {
        const VF vt = LoadLogits(d_, t, j, V);
        const VF xt = Exp2NonPositive(d_, hn::MulAdd(vt, vatau, vct), exact_zero);
        hn::Store(xt, d_, et + j);
        vsumt = hn::Add(vsumt, xt);
        if (forward) {  // sum p (t - s), with p == 0 terms zero where t = -inf (0 * log 0 = 0)
          if (t_has_neg_inf) {
            vcross = hn::Add(
                vcross, hn::IfThenZeroElse(hn::Eq(xt, hn::Zero(d_)), hn::Mul(xt, hn::Sub(vt, vs))));
          } else {
            vcross = hn::MulAdd(xt, hn::Sub(vt, vs), vcross);
          }
        } else if (reverse) {  // sum q (s - t), likewise where s = -inf
          if (s_has_neg_inf) {
            vcross = hn::Add(
                vcross, hn::IfThenZeroElse(hn::Eq(xs, hn::Zero(d_)), hn::Mul(xs, hn::Sub(vs, vt))));
          } else {
            vcross = hn::MulAdd(xs, hn::Sub(vs, vt), vcross);
          }
        }
      }
    }
    const float sum1 = need_e1 ? ReduceSum(d_, vsum1) : 1.0f;
    const float sums = separate_es ? ReduceSum(d_, vsums) : sum1;
    const float sumt = t ? ReduceSum(d_, vsumt) : 1.0f;
    const double ln2 = 0.6931471805599453;
    const double log_sum1 = std::log(static_cast<double>(sum1)) - delta_1 * ln2;
    const float lse = static_cast<float>(m + log_sum1);
    out.lse = need_lse ? lse : 0.0f;

    // ---- cross-entropy
    // ---------------------------------------------------------------------------------
    if (has_label) {
      if (label < 0 || label >= V) {
        out.status = static_cast<int32_t>(Status::kLabelOutOfRange);
        out.bad_value = label;
        return out;
      }
      const float eps = spec_.label_smoothing;
      const float s_y = detail::LoadScalar(s, label);
      // (m - s_y) + log(sum) rather than lse - s_y: no cancellation between two large numbers.
      double ce_d = (1.0 - eps) * ((static_cast<double>(m) - s_y) + log_sum1);
      if (eps != 0.0f)
        ce_d += eps * ((static_cast<double>(m) - static_cast<double>(sum_s) / V) + log_sum1);
      float ce = static_cast<float>(ce_d);
      ce += spec_.z_loss * lse * lse;
      out.ce = ce;
    }

    // ---- divergence
    // -------------------------------------------------------------------------------------- True
    // logarithms of the exp-sums (the 2^delta factors removed): log q_j = (s_j - m)/tau - log_sums.
    const double log_sums = std::log(static_cast<double>(sums)) - delta_s * ln2;
    const double log_sumt = std::log(static_cast<double>(sumt)) - delta_t * ln2;
    const float lse_s_tau = static_cast<float>(m * c_.inv_tau + log_sums);
    const float lse_t_tau = static_cast<float>(mt * c_.inv_tau + log_sumt);
    TopK topk;
    float kd = 0.0f, jsd_mean_g = 0.0f;
    if (c_.dense) {
      const float cross = ReduceSum(d_, vcross);
      if (forward) {
        kd = cross / sumt * c_.inv_tau - lse_t_tau + lse_s_tau;
      } else if (reverse) {
        kd = cross / sums * c_.inv_tau - lse_s_tau + lse_t_tau;
      } else {
        DenseJsd(sums, sumt, es, et, kd, jsd_mean_g);
      }
      kd = std::max(kd, 0.0f);  // a divergence is never negative; rounding can make it -1e-8
    } else if (c_.has_teacher) {
      const int32_t status = PrepareTopK(r, s, m, sums, log_sums, es, scratch, topk);
      if (status != 0) {
        out.status = status;
        out.bad_value = topk.bad_value;
        return out;
      }
      kd = topk.divergence;
    }
    out.kd = kd;

    const double row_loss =
        valid ? static_cast<double>(w) * (spec_.ce_weight * static_cast<double>(out.ce) +
                                          static_cast<double>(c_.kd_scale) * kd)
              : 0.0;
    out.loss = row_loss;

    // ---- pass 4: gradient
    // ----------------------------------------------------------------------------
    if (!grad) return out;
    if (!valid) {
      ZeroRow(grad);
      return out;
    }
    const float scale = static_cast<float>(static_cast<double>(spec_.grad_scale) * w / normalizer_);
    const float c_ce = has_label ? scale * spec_.ce_weight : 0.0f;
    const float c_soft = c_ce * (1.0f + 2.0f * spec_.z_loss * lse);
    const float c_uniform = c_ce * spec_.label_smoothing / static_cast<float>(V);
    const float c_kd =
        c_.has_teacher ? scale * c_.kd_scale * c_.inv_tau : 0.0f;  // dD/ds = dD/dz / tau
    GradCoefficients k;
    k.soft = c_soft / sum1;  // times exp(s - m): softmax at temperature 1
    k.uniform = c_uniform;
    k.q = c_kd / sums;  // times exp((s - m)/tau): q_j
    k.p = c_kd / sumt;  // times exp((t - mt)/tau): p_j
    k.label = c_ce * (1.0f - spec_.label_smoothing);
    k.tail = topk.tail_coefficient;
    k.e1_power = e1_from_es ? c_.tau_power : 0;
    // The label's logits are read now: with grad: 'in-place' pass 4 overwrites them.
    const float s_label = has_label ? detail::LoadScalar(s, label) : 0.0f;
    const float t_label = has_label && t ? detail::LoadScalar(t, label) : 0.0f;
    WriteGrad(s, t, grad, e1, es, et, k, has_label, lse_s_tau, lse_t_tau, kd, jsd_mean_g);
    if (!c_.dense && c_.has_teacher) {
      FixTopKEntries(grad, e1, k, has_label ? label : -1, topk, scratch, c_kd);
    }
    if (has_label && !(c_.has_teacher && !c_.dense && topk.contains_label)) {
      // The label's own element: recompute the whole value in float, then store it once.
      const float value = ElementValue(s_label, t_label, e1, es, et, k, label, lse_s_tau, lse_t_tau,
                                       kd, jsd_mean_g) -
                          k.label;
      detail::StoreScalar(grad, label, value);
    }
    return out;
  }

 private:
  struct GradCoefficients {
    float soft = 0, uniform = 0, q = 0, p = 0, label = 0, tail = 0;
    int e1_power = 0;  // 0: exp(s - m) is cached in e1; n > 0: it is es^n
  };

  // The top-k teacher of one row, reduced to categories (the k entries and, when k < V, the tail).
  struct TopK {
    float divergence = 0;
    float tail_coefficient = 0;  // grad_z for an element j outside K is q_j * tail_coefficient
    bool contains_label = false;
    bool nan = false;     // a NaN log-probability: every output of the row is NaN
    double mean_g = 0;    // JSD: sum over categories of q_c g_c
    double jsd_tail = 0;  // JSD: g_tail - mean_g
    double sums = 1;      // the student's exp-sum at temperature tau
    int64_t bad_value = 0;
  };

  template <typename L>
  int32_t Argmax(const L* s, float m) const {
    for (int64_t j = 0; j < spec_.vocab; ++j) {
      if (detail::LoadScalar(s, j) == m) return static_cast<int32_t>(j);
    }
    return -1;  // every logit is NaN
  }

  template <typename L>
  void ZeroRow(L* grad) const {
    const VF zero = hn::Zero(d_);
    for (int64_t j = 0; j < spec_.vocab; j += lanes_) StoreGrad(d_, zero, grad, j, spec_.vocab);
  }

  // A row with a NaN or +inf logit (or all -inf): NaN loss and NaN gradient when it counts.
  template <typename L>
  RowResult PoisonedRow(RowResult out, L* grad, bool valid, bool has_label, int32_t label) const {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (has_label && (label < 0 || label >= spec_.vocab)) {
      out.status = static_cast<int32_t>(Status::kLabelOutOfRange);
      out.bad_value = label;
      return out;
    }
    out.lse = nan;
    out.ce = has_label ? nan : 0.0f;
    out.kd = c_.has_teacher ? nan : 0.0f;
    out.loss = valid ? std::numeric_limits<double>::quiet_NaN() : 0.0;
    if (grad) {
      const VF fill = hn::Set(d_, valid ? nan : 0.0f);
      for (int64_t j = 0; j < spec_.vocab; j += lanes_) StoreGrad(d_, fill, grad, j, spec_.vocab);
    }
    return out;
  }

  // Generalised JSD over a dense row: the divergence and sum_j q_j g_j; g_j is cached in `et`.
  // Both logarithms are taken of ratios, log(q/M) = -log((1-b) + b p/q) and log(p/M) = -log(b +
  // (1-b) q/p), never as the difference of two large logarithms, so small divergences keep their
  // precision.
  void DenseJsd(float sums, float sumt, const float* es, float* et, float& kd,
                float& mean_g) const {
    const int64_t V = spec_.vocab;
    const float b = spec_.jsd_beta;
    const VF vb = hn::Set(d_, b), v1b = hn::Set(d_, 1.0f - b), zero = hn::Zero(d_),
             one = hn::Set(d_, 1.0f);
    const VF vinv_sums = hn::Set(d_, 1.0f / sums), vinv_sumt = hn::Set(d_, 1.0f / sumt);
    VF vterm_p = zero, vqg = zero;
    for (int64_t j = 0; j < V; j += lanes_) {
      const VF q = hn::Mul(hn::Load(d_, es + j), vinv_sums);
      const VF p = hn::Mul(hn::Load(d_, et + j), vinv_sumt);
      const auto q_zero = hn::Eq(q, zero);
      const auto p_zero = hn::Eq(p, zero);
      const VF q_safe = hn::IfThenElse(q_zero, one, q), p_safe = hn::IfThenElse(p_zero, one, p);
      const VF log_p_over_mix = hn::Neg(hn::Log(d_, hn::MulAdd(v1b, hn::Div(q, p_safe), vb)));
      vterm_p = hn::Add(vterm_p, hn::IfThenZeroElse(p_zero, hn::Mul(p, log_p_over_mix)));
      const VF log_q_over_mix = hn::Neg(hn::Log(d_, hn::MulAdd(vb, hn::Div(p, q_safe), v1b)));
      const VF g = hn::IfThenZeroElse(q_zero, hn::Mul(v1b, log_q_over_mix));
      vqg = hn::Add(vqg, hn::Mul(q, g));
      hn::Store(g, d_, et + j);
    }
    // b*sum p log(p/M) + (1-b)*sum q log(q/M), and the second sum is exactly sum_j q_j g_j.
    mean_g = ReduceSum(d_, vqg);
    kd = b * ReduceSum(d_, vterm_p) + mean_g;
  }

  // Sorts the row's top-k entries, checks them, and computes the category divergence and gradients.
  template <typename L>
  int32_t PrepareTopK(int64_t r, const L* s, float m, float sums, double log_sums, const float* es,
                      Scratch& scratch, TopK& topk) const {
    const int64_t V = spec_.vocab, k = spec_.topk;
    const int32_t* idx = spec_.topk_indices + r * k;
    const float* lp = spec_.topk_logprobs + r * k;
    auto& entries = scratch.topk;
    entries.resize(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      if (idx[i] < 0 || idx[i] >= V) {
        topk.bad_value = idx[i];
        return static_cast<int32_t>(Status::kTopKIndexInvalid);
      }
      entries[static_cast<size_t>(i)] = {idx[i], lp[i]};
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < entries.size(); ++i) {
      if (entries[i].first == entries[i - 1].first) {
        topk.bad_value = entries[i].first;
        return static_cast<int32_t>(Status::kTopKIndexInvalid);
      }
    }
    if (spec_.labels) {
      const int32_t label = spec_.labels[r];
      topk.contains_label =
          std::binary_search(entries.begin(), entries.end(), std::pair<int32_t, float>{label, 0.0f},
                             [](const auto& a, const auto& b) { return a.first < b.first; });
    }

    // A NaN teacher log-probability makes the row NaN (the caller's validation rejects it first).
    for (const auto& e : entries) {
      if (std::isnan(e.second)) {
        topk.divergence = std::numeric_limits<float>::quiet_NaN();
        topk.tail_coefficient = std::numeric_limits<float>::quiet_NaN();
        topk.mean_g = std::numeric_limits<double>::quiet_NaN();
        topk.sums = sums;
        topk.nan = true;
        return 0;
      }
    }
    // Teacher categories: logits l_i/tau and, in tail mode with missing mass, log(mass)/tau.
    const bool has_tail = k < V;
    double covered = 0;
    for (const auto& e : entries) covered += std::exp(static_cast<double>(e.second));
    const double missing =
        spec_.topk_missing == TopKMissing::kTailBucket ? std::max(0.0, 1.0 - covered) : 0.0;
    const bool teacher_tail = has_tail && missing > 0;
    double max_logit = -std::numeric_limits<double>::infinity();
    for (const auto& e : entries)
      max_logit = std::max(max_logit, static_cast<double>(e.second) * c_.inv_tau);
    const double tail_logit = teacher_tail ? std::log(missing) * c_.inv_tau : 0.0;
    if (teacher_tail) max_logit = std::max(max_logit, tail_logit);
    double z = 0;
    for (const auto& e : entries)
      z += std::exp(static_cast<double>(e.second) * c_.inv_tau - max_logit);
    if (teacher_tail) z += std::exp(tail_logit - max_logit);
    const double log_z = max_logit + std::log(z);
    auto& logp = scratch.cat_logp;
    logp.resize(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i)
      logp[i] = static_cast<double>(entries[i].second) * c_.inv_tau - log_z;
    const double logp_tail =
        teacher_tail ? tail_logit - log_z : -std::numeric_limits<double>::infinity();
    const double p_tail = teacher_tail ? std::exp(logp_tail) : 0.0;

    // Student categories: q_i at the k entries; q_tail summed over the gaps between sorted indices.
    double tail_sum = 0;
    if (has_tail) {
      int64_t begin = 0;
      for (const auto& e : entries) {
        tail_sum += SumRange(es, begin, e.first);
        begin = e.first + 1;
      }
      tail_sum += SumRange(es, begin, V);
    }
    const double q_tail = tail_sum / sums;
    const double log_q_tail = std::log(q_tail);
    auto log_q_of = [&](int32_t j) {
      return (static_cast<double>(detail::LoadScalar(s, j)) - m) * c_.inv_tau - log_sums;
    };

    // Divergence and gradient coefficients per category (docs/objective.md).
    const double b = spec_.jsd_beta;
    auto xlogy_ratio = [](double x, double log_x, double log_y) {
      return x > 0 ? x * (log_x - log_y) : 0.0;
    };
    double divergence = 0, mean_g = 0;
    switch (spec_.divergence) {
      case Divergence::kForwardKL:
        for (int64_t i = 0; i < k; ++i)
          divergence += xlogy_ratio(std::exp(logp[i]), logp[i], log_q_of(entries[i].first));
        if (has_tail) divergence += xlogy_ratio(p_tail, logp_tail, log_q_tail);
        break;
      case Divergence::kReverseKL:
        for (int64_t i = 0; i < k; ++i) {
          const double log_q = log_q_of(entries[i].first);
          divergence += xlogy_ratio(std::exp(log_q), log_q, logp[i]);
        }
        if (has_tail) divergence += xlogy_ratio(q_tail, log_q_tail, logp_tail);
        break;
      case Divergence::kJSD: {
        // g_c = (1-b) log(q_c/M_c) = -(1-b) log((1-b) + b p_c/q_c), from ratios (no cancellation).
        auto g_of = [&](double p, double q) {
          return q > 0 ? -(1 - b) * std::log((1 - b) + b * p / q) : 0.0;
        };
        auto add = [&](double p, double log_p, double q, double log_q) {
          const double mix = b * p + (1 - b) * q;
          if (mix <= 0) return;
          const double log_mix = std::log(mix);
          divergence +=
              b * xlogy_ratio(p, log_p, log_mix) + (1 - b) * xlogy_ratio(q, log_q, log_mix);
        };
        const double g_tail = has_tail ? g_of(p_tail, q_tail) : 0.0;
        double tail_minus_mean = 0;  // g_tail - sum_c q_c g_c = sum_{c in K} q_c (g_tail - g_c)
        for (int64_t i = 0; i < k; ++i) {
          const double log_q = log_q_of(entries[i].first);
          const double p = std::exp(logp[i]), q = std::exp(log_q);
          add(p, logp[i], q, log_q);
          const double g = g_of(p, q);
          mean_g += q * g;
          tail_minus_mean += q * (g_tail - g);
        }
        if (has_tail) {
          add(p_tail, logp_tail, q_tail, log_q_tail);
          // Summing q_c (g_tail - g_c) keeps the tail's gradient accurate when the divergence
          // saturates (every g_c near -(1-b) log(1-b)), where g_tail - mean_g would cancel to
          // rounding noise.
          mean_g = g_tail - tail_minus_mean;
          topk.jsd_tail = tail_minus_mean;
        }
        break;
      }
    }
    topk.divergence = static_cast<float>(std::max(divergence, 0.0));
    topk.mean_g = mean_g;
    topk.sums = sums;
    // Tail elements: grad_z_j = q_j * (g_tail - mean g).
    double tail = 0;
    if (has_tail && q_tail > 0) {
      switch (spec_.divergence) {
        case Divergence::kForwardKL:
          tail = 1.0 - p_tail / q_tail;
          break;
        case Divergence::kReverseKL:
          tail = log_q_tail - logp_tail - divergence;
          break;
        case Divergence::kJSD:
          tail = topk.jsd_tail;
          break;
      }
    }
    topk.tail_coefficient = static_cast<float>(tail);
    return 0;
  }

  double SumRange(const float* values, int64_t begin, int64_t end) const {
    VF acc = hn::Zero(d_);
    int64_t j = begin;
    for (; j + lanes_ <= end; j += lanes_) acc = hn::Add(acc, hn::LoadU(d_, values + j));
    double sum = ReduceSum(d_, acc);
    for (; j < end; ++j) sum += values[j];
    return sum;
  }

  // Writes the gradient of the whole row. Top-k entries and the label are fixed afterwards.
  template <typename L>
  void WriteGrad(const L* s, const L* t, L* grad, const float* e1, const float* es, const float* et,
                 const GradCoefficients& k, bool has_label, float lse_s_tau, float lse_t_tau,
                 float kd, float jsd_mean_g) const {
    const int64_t V = spec_.vocab;
    const bool ce = has_label;
    const bool dense = c_.dense;
    const bool topk = c_.has_teacher && !dense;
    const VF soft = hn::Set(d_, k.soft), uniform = hn::Set(d_, k.uniform), cq = hn::Set(d_, k.q);
    const VF cp = hn::Set(d_, k.p), tail = hn::Set(d_, k.tail), zero = hn::Zero(d_);
    const VF vinv_tau = hn::Set(d_, c_.inv_tau);
    const VF rev_offset = hn::Set(d_, -lse_s_tau + lse_t_tau - kd), vjsd = hn::Set(d_, jsd_mean_g);
    const Divergence div = spec_.divergence;
    const bool fused_forward = dense && div == Divergence::kForwardKL && ce && k.e1_power == 2;
    auto value_at = [&](int64_t j) HWY_ATTR {
      if (fused_forward) {
        // soft*q^2*... : c_soft e1 + c_q q - c_p p - c_u with e1 = q^2, as q*(soft*q + c_q) - c_p p
        // - c_u.
        const VF xq = hn::LoadU(d_, es + j);
        return hn::Sub(
            hn::NegMulAdd(cp, hn::LoadU(d_, et + j), hn::Mul(xq, hn::MulAdd(soft, xq, cq))),
            uniform);
      }
      VF value = zero;
      if (ce) {
        const VF x1 =
            k.e1_power ? PowSmall(hn::LoadU(d_, es + j), k.e1_power) : hn::LoadU(d_, e1 + j);
        value = hn::Sub(hn::Mul(soft, x1), uniform);
      }
      if (dense) {
        const VF xq = hn::LoadU(d_, es + j);
        if (div == Divergence::kForwardKL) {
          value = hn::Add(value, hn::Sub(hn::Mul(cq, xq), hn::Mul(cp, hn::LoadU(d_, et + j))));
        } else if (div == Divergence::kReverseKL) {
          // q_j * (log q_j - log p_j - D); log q - log p = (s - t)/tau - lse_s + lse_t
          const VF diff = hn::MulAdd(hn::Sub(LoadLogits(d_, s, j, V), LoadLogits(d_, t, j, V)),
                                     vinv_tau, rev_offset);
          value =
              hn::Add(value, hn::IfThenZeroElse(hn::Eq(xq, zero), hn::Mul(hn::Mul(cq, xq), diff)));
        } else {
          value = hn::Add(value, hn::Mul(hn::Mul(cq, xq), hn::Sub(hn::LoadU(d_, et + j), vjsd)));
        }
      } else if (topk) {
        value = hn::Add(value, hn::Mul(hn::Mul(cq, hn::LoadU(d_, es + j)), tail));
      }
      return value;
    };
    // Ordinary stores: streaming (non-temporal) stores were tried and measured slower here with two
    // threads (41 ms against 27 ms at N=1024, V=32000), though faster with one.
    int64_t j = 0;
    for (; j < V; j += lanes_) StoreGrad(d_, value_at(j), grad, j, V);
  }

  // The full gradient value at element j of a dense or teacher-less row (before the label term),
  // from the logits s_j, t_j (read before any in-place write) and the cached exponentials.
  float ElementValue(float s_j, float t_j, const float* e1, const float* es, const float* et,
                     const GradCoefficients& k, int32_t j, float lse_s_tau, float lse_t_tau,
                     float kd, float jsd_mean_g) const {
    float value = k.soft * E1At(e1, es, k, j) - k.uniform;
    if (c_.dense) {
      const float xq = es[j];
      switch (spec_.divergence) {
        case Divergence::kForwardKL:
          value += k.q * xq - k.p * et[j];
          break;
        case Divergence::kReverseKL:
          if (xq != 0.0f) {
            const float diff = (s_j - t_j) * c_.inv_tau - lse_s_tau + lse_t_tau - kd;
            value += k.q * xq * diff;
          }
          break;
        case Divergence::kJSD:
          value += k.q * xq * (et[j] - jsd_mean_g);
          break;
      }
    } else if (c_.has_teacher) {
      value += k.q * es[j] * k.tail;
    }
    return value;
  }

  // exp(s_j - m), cached or derived from exp((s_j - m)/tau).
  static float E1At(const float* e1, const float* es, const GradCoefficients& k, int64_t j) {
    if (k.e1_power == 0) return e1[j];
    float result = es[j];
    for (int i = 1; i < k.e1_power; ++i) result *= es[j];
    return result;
  }

  // Overwrites the gradient at each top-k index (and the label when it is one of them).
  template <typename L>
  void FixTopKEntries(L* grad, const float* e1, const GradCoefficients& k, int32_t label,
                      const TopK& topk, const Scratch& scratch, float c_kd) const {
    const double b = spec_.jsd_beta;
    const auto& entries = scratch.topk;
    const float* es = c_.tau_is_one ? e1 : scratch.exp_stau.get();
    const double inv_sums = 1.0 / topk.sums;
    for (size_t i = 0; i < entries.size(); ++i) {
      const int32_t j = entries[i].first;
      const double q = es[j] * inv_sums;
      const double logp = scratch.cat_logp[i];
      const double p = std::exp(logp);
      double gz = topk.nan ? std::numeric_limits<double>::quiet_NaN() : 0.0;  // dD/dz_j
      if (!topk.nan) switch (spec_.divergence) {
          case Divergence::kForwardKL:
            gz = q - p;
            break;
          case Divergence::kReverseKL:
            gz = q > 0 ? q * (std::log(q) - logp - topk.divergence) : 0.0;
            break;
          case Divergence::kJSD:
            gz = q > 0 ? q * (-(1 - b) * std::log((1 - b) + b * p / q) - topk.mean_g) : 0.0;
            break;
        }
      float value = static_cast<float>(static_cast<double>(c_kd) * gz);
      if (spec_.labels != nullptr && label >= 0) value += k.soft * E1At(e1, es, k, j) - k.uniform;
      if (j == label) value -= k.label;
      detail::StoreScalar(grad, j, value);
    }
  }

  const DistillLossSpec& spec_;
  const detail::CallConstants& c_;
  const double normalizer_;
  const DF d_;
  int64_t lanes_ = 1;
  int64_t padded_ = 0;
};

// Runs rows [begin, end) of the call on this thread.
void ProcessRows(const DistillLossSpec& spec, const detail::CallConstants& constants,
                 double normalizer, int64_t begin, int64_t end, double* row_losses,
                 int32_t* row_status, int64_t* row_bad) {
  RowKernel kernel(spec, constants, normalizer);
  Scratch scratch;
  kernel.InitScratch(scratch);
  for (int64_t r = begin; r < end; ++r) {
    const bool has_next_row = r + 1 < end;
    const RowResult result = spec.dtype == DType::kBF16
                                 ? kernel.Run<uint16_t>(r, has_next_row, scratch)
                                 : kernel.Run<float>(r, has_next_row, scratch);
    row_losses[r] = result.loss;
    row_status[r] = result.status;
    row_bad[r] = result.bad_value;
    if (spec.row_loss) spec.row_loss[r] = static_cast<float>(result.loss);
    if (spec.stats_lse) spec.stats_lse[r] = result.lse;
    if (spec.stats_ce) spec.stats_ce[r] = result.ce;
    if (spec.stats_kd) spec.stats_kd[r] = result.kd;
    if (spec.stats_argmax) spec.stats_argmax[r] = result.argmax;
  }
}

int32_t CurrentTarget() { return static_cast<int32_t>(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace sdvp
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sdvp {

HWY_EXPORT(ProcessRows);
HWY_EXPORT(CurrentTarget);

const char* cpu_simd_target() {
  return hwy::TargetName(static_cast<uint32_t>(HWY_DYNAMIC_DISPATCH(CurrentTarget)()));
}

int32_t cpu_default_threads() { return hardware_threads(); }

namespace {

bool LabelValid(const DistillLossSpec& spec, int32_t label) {
  return label == spec.ignore_index || (label >= 0 && label < spec.vocab);
}

}  // namespace

DistillLossResult distill_loss_cpu(const DistillLossSpec& spec) {
  DistillLossResult result;
  const bool dense = spec.teacher_kind == TeacherKind::kDense;
  const bool topk = spec.teacher_kind == TeacherKind::kTopK;
  if (spec.rows < 1 || spec.vocab < 1 || spec.student == nullptr ||
      (dense && !spec.teacher_logits) ||
      (topk &&
       (!spec.topk_indices || !spec.topk_logprobs || spec.topk < 1 || spec.topk > spec.vocab)) ||
      !(spec.temperature > 0) || (spec.reduction == Reduction::kNone && !spec.row_loss) ||
      (spec.has_normalizer && !(spec.normalizer > 0)) ||
      (topk && spec.topk_missing == TopKMissing::kRenormalize &&
       spec.divergence == Divergence::kReverseKL && spec.topk < spec.vocab)) {
    result.status = Status::kInvalidSpec;
    return result;
  }

  // Checks that need no logits come first, so a bad call writes nothing.
  int64_t valid_rows = 0;
  for (int64_t r = 0; r < spec.rows; ++r) {
    const int32_t label = spec.labels ? spec.labels[r] : spec.ignore_index;
    if (spec.labels && !LabelValid(spec, label)) {
      result.status = Status::kLabelOutOfRange;
      result.bad_row = r;
      result.bad_value = label;
      return result;
    }
    const float w = spec.row_weights ? spec.row_weights[r] : 1.0f;
    const bool has_label = spec.labels && label != spec.ignore_index;
    if ((has_label || spec.teacher_kind != TeacherKind::kNone) && w > 0) ++valid_rows;
  }
  if (topk) {
    const int64_t count = spec.rows * spec.topk;
    for (int64_t i = 0; i < count; ++i) {
      if (spec.topk_indices[i] < 0 || spec.topk_indices[i] >= spec.vocab) {
        result.status = Status::kTopKIndexInvalid;
        result.bad_row = i / spec.topk;
        result.bad_value = spec.topk_indices[i];
        return result;
      }
    }
  }

  double normalizer = 1.0;
  if (spec.has_normalizer) {
    normalizer = spec.normalizer;
  } else if (spec.reduction == Reduction::kMean) {
    normalizer = static_cast<double>(valid_rows);
  } else if (spec.reduction == Reduction::kBatchMean) {
    normalizer = static_cast<double>(spec.rows);
  }
  result.valid_rows = valid_rows;
  result.normalizer = normalizer;
  // Mean over no valid row: loss 0; every valid-row coefficient is 0 so gradients come out zero.
  const double safe_normalizer = normalizer > 0 ? normalizer : 1.0;

  detail::CallConstants constants;
  constants.inv_tau = 1.0f / spec.temperature;
  constants.kd_scale = spec.kd_weight * (spec.t2 ? spec.temperature * spec.temperature : 1.0f);
  constants.tau_is_one = spec.temperature == 1.0f;
  constants.tau_power = spec.temperature == 2.0f   ? 2
                        : spec.temperature == 3.0f ? 3
                        : spec.temperature == 4.0f ? 4
                                                   : 0;
  constants.has_teacher = spec.teacher_kind != TeacherKind::kNone;
  constants.dense = dense;
  constants.need_stats = spec.stats_lse || spec.stats_ce || spec.stats_kd || spec.stats_argmax;

  std::vector<double> row_losses(static_cast<size_t>(spec.rows));
  std::vector<int32_t> row_status(static_cast<size_t>(spec.rows));
  std::vector<int64_t> row_bad(static_cast<size_t>(spec.rows));

  // Chunks of about 256K elements keep the per-call thread start-up negligible and still balance.
  const int64_t rows_per_chunk = std::max<int64_t>(1, (int64_t{1} << 18) / spec.vocab);
  const int64_t chunks = (spec.rows + rows_per_chunk - 1) / rows_per_chunk;
  const int32_t threads = spec.threads > 0 ? spec.threads : hardware_threads();
  std::atomic<bool> cancelled{false};
  parallel_for(chunks, threads, [&](int64_t chunk, int32_t) {
    if (spec.cancel && *spec.cancel != 0) {
      cancelled = true;
      return;
    }
    const int64_t begin = chunk * rows_per_chunk;
    const int64_t end = std::min(spec.rows, begin + rows_per_chunk);
    HWY_DYNAMIC_DISPATCH(ProcessRows)
    (spec, constants, safe_normalizer, begin, end, row_losses.data(), row_status.data(),
     row_bad.data());
  });
  if (cancelled || (spec.cancel && *spec.cancel != 0)) {
    result.status = Status::kCancelled;
    return result;
  }
  for (int64_t r = 0; r < spec.rows; ++r) {
    if (row_status[r] != 0) {
      result.status = static_cast<Status>(row_status[r]);
      result.bad_row = r;
      result.bad_value = row_bad[r];
      return result;
    }
  }
  double total = 0;
  for (double loss : row_losses) total += loss;  // row order: the same sum for any thread count
  result.loss =
      spec.reduction == Reduction::kNone ? total : (normalizer > 0 ? total / normalizer : 0.0);
  return result;
}

}  // namespace sdvp
#endif  // HWY_ONCE
