// ctest for the CPU kernel without Node: random cases against a float64 reference written here, a
// finite-difference check, top-k with k = V equal to dense, thread-count determinism and error
// statuses.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "distill_loss.h"

namespace {

using sdvp::DistillLossSpec;

int failures = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

// Float64 reference of docs/objective.md: categories with teacher p and student q, gradient by the
// general chain rule dD/dz_j = q_j (g_c(j) - sum_c q_c g_c).
double ReferenceRow(const DistillLossSpec& spec, int64_t r, std::vector<double>& grad_row,
                    double coef) {
  const int64_t V = spec.vocab;
  const float* s = static_cast<const float*>(spec.student) + r * V;
  const double tau = spec.temperature;
  double m = -INFINITY;
  for (int64_t j = 0; j < V; ++j) m = std::max(m, static_cast<double>(s[j]));
  double sum1 = 0, sumt_s = 0;
  for (int64_t j = 0; j < V; ++j) sum1 += std::exp(s[j] - m), sumt_s += std::exp((s[j] - m) / tau);
  const double lse = m + std::log(sum1);
  std::vector<double> q(V), soft(V);
  for (int64_t j = 0; j < V; ++j)
    q[j] = std::exp((s[j] - m) / tau) / sumt_s, soft[j] = std::exp(s[j] - lse);
  grad_row.assign(V, 0.0);
  const float w = spec.row_weights ? spec.row_weights[r] : 1.0f;
  double ce = 0, kd = 0;
  const int32_t y = spec.labels ? spec.labels[r] : spec.ignore_index;
  const bool has_label = spec.labels && y != spec.ignore_index;
  if (has_label) {
    const double eps = spec.label_smoothing;
    double mean_s = 0;
    for (int64_t j = 0; j < V; ++j) mean_s += s[j];
    mean_s /= V;
    ce = (1 - eps) * (lse - s[y]) + eps * (lse - mean_s) + spec.z_loss * lse * lse;
    for (int64_t j = 0; j < V; ++j) {
      grad_row[j] += coef * spec.ce_weight *
                     (soft[j] * (1 + 2 * spec.z_loss * lse) - eps / V - (j == y ? 1 - eps : 0));
    }
  }
  if (spec.teacher_kind != sdvp::TeacherKind::kNone) {
    // Categories: cat[j] in [0, C) for each element; p per category.
    std::vector<int64_t> cat(V, -1);
    std::vector<double> p;
    if (spec.teacher_kind == sdvp::TeacherKind::kDense) {
      const float* t = static_cast<const float*>(spec.teacher_logits) + r * V;
      double mt = -INFINITY, st = 0;
      for (int64_t j = 0; j < V; ++j) mt = std::max(mt, static_cast<double>(t[j]));
      for (int64_t j = 0; j < V; ++j) st += std::exp((t[j] - mt) / tau);
      for (int64_t j = 0; j < V; ++j) cat[j] = j, p.push_back(std::exp((t[j] - mt) / tau) / st);
    } else {
      const int64_t k = spec.topk;
      double covered = 0;
      std::vector<double> logits;
      for (int64_t i = 0; i < k; ++i) {
        cat[spec.topk_indices[r * k + i]] = i;
        covered += std::exp(static_cast<double>(spec.topk_logprobs[r * k + i]));
        logits.push_back(spec.topk_logprobs[r * k + i] / tau);
      }
      const double missing =
          spec.topk_missing == sdvp::TopKMissing::kTailBucket ? std::max(0.0, 1 - covered) : 0.0;
      if (k < V) logits.push_back(missing > 0 ? std::log(missing) / tau : -INFINITY);
      for (int64_t j = 0; j < V; ++j)
        if (cat[j] < 0) cat[j] = k;
      double mx = -INFINITY, z = 0;
      for (double l : logits) mx = std::max(mx, l);
      for (double l : logits) z += std::exp(l - mx);
      for (double l : logits) p.push_back(std::exp(l - mx) / z);
    }
    const size_t C = p.size();
    std::vector<double> qc(C, 0.0), g(C, 0.0);
    for (int64_t j = 0; j < V; ++j) qc[cat[j]] += q[j];
    const double b = spec.jsd_beta;
    for (size_t c = 0; c < C; ++c) {
      const double pc = p[c], qq = qc[c];
      switch (spec.divergence) {
        case sdvp::Divergence::kForwardKL:
          if (pc > 0) kd += pc * std::log(pc / qq);
          g[c] = qq > 0 ? -pc / qq : 0;
          break;
        case sdvp::Divergence::kReverseKL:
          if (qq > 0) kd += qq * std::log(qq / pc);
          g[c] = std::log(qq / pc) + 1;
          break;
        case sdvp::Divergence::kJSD: {
          const double mix = b * pc + (1 - b) * qq;
          if (pc > 0) kd += b * pc * std::log(pc / mix);
          if (qq > 0) kd += (1 - b) * qq * std::log(qq / mix);
          g[c] = qq > 0 ? (1 - b) * std::log(qq / mix) : 0;
          break;
        }
      }
    }
    double mean_g = 0;
    for (size_t c = 0; c < C; ++c)
      if (qc[c] > 0) mean_g += qc[c] * g[c];
    const double kd_scale = spec.kd_weight * (spec.t2 ? tau * tau : 1.0);
    for (int64_t j = 0; j < V; ++j) {
      const double gz = q[j] > 0 ? q[j] * (g[cat[j]] - mean_g) : 0;
      grad_row[j] += coef * kd_scale * gz / tau;
    }
    return w * (spec.ce_weight * ce + kd_scale * kd);
  }
  return w * spec.ce_weight * ce;
}

struct Case {
  int64_t rows, vocab;
  sdvp::TeacherKind teacher;
  sdvp::Divergence divergence;
  float tau;
  bool labels;
  int64_t topk;
  sdvp::TopKMissing missing;
};

void RunCase(const Case& c, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const int64_t n = c.rows * c.vocab;
  std::vector<float> s(n), t(n), grad(n, std::numeric_limits<float>::quiet_NaN()), weights(c.rows);
  for (auto& x : s) x = normal(rng);
  for (auto& x : t) x = normal(rng);
  for (auto& x : weights) x = std::uniform_real_distribution<float>(0.0f, 2.0f)(rng);
  std::vector<int32_t> labels(c.rows), idx;
  std::vector<float> lp;
  for (int64_t r = 0; r < c.rows; ++r)
    labels[r] = r % 5 == 4 ? -100 : static_cast<int32_t>(rng() % c.vocab);
  DistillLossSpec spec;
  spec.rows = c.rows;
  spec.vocab = c.vocab;
  spec.student = s.data();
  spec.teacher_kind = c.teacher;
  spec.teacher_logits = t.data();
  if (c.teacher == sdvp::TeacherKind::kTopK) {
    for (int64_t r = 0; r < c.rows; ++r) {
      std::vector<int32_t> perm(c.vocab);
      for (int64_t j = 0; j < c.vocab; ++j) perm[j] = static_cast<int32_t>(j);
      std::shuffle(perm.begin(), perm.end(), rng);
      double mx = -INFINITY, z = 0;
      for (int64_t j = 0; j < c.vocab; ++j)
        mx = std::max(mx, static_cast<double>(t[r * c.vocab + j]));
      for (int64_t j = 0; j < c.vocab; ++j) z += std::exp(t[r * c.vocab + j] - mx);
      for (int64_t i = 0; i < c.topk; ++i) {
        idx.push_back(perm[i]);
        lp.push_back(static_cast<float>(t[r * c.vocab + perm[i]] - mx - std::log(z)));
      }
    }
    spec.topk_indices = idx.data();
    spec.topk_logprobs = lp.data();
    spec.topk = c.topk;
    spec.topk_missing = c.missing;
  }
  spec.labels = c.labels ? labels.data() : nullptr;
  spec.ce_weight = 0.7f;
  spec.kd_weight = 0.3f;
  spec.temperature = c.tau;
  spec.divergence = c.divergence;
  spec.jsd_beta = 0.3f;
  spec.label_smoothing = 0.1f;
  spec.z_loss = 1e-3f;
  spec.row_weights = weights.data();
  spec.reduction = sdvp::Reduction::kMean;
  spec.grad = grad.data();
  spec.grad_scale = 1.5f;
  const sdvp::DistillLossResult result = sdvp::distill_loss_cpu(spec);
  const std::string name = "rows=" + std::to_string(c.rows) + " vocab=" + std::to_string(c.vocab) +
                           " teacher=" + std::to_string(static_cast<int>(c.teacher)) +
                           " div=" + std::to_string(static_cast<int>(c.divergence)) +
                           " tau=" + std::to_string(c.tau) + " topk=" + std::to_string(c.topk);
  Check(result.status == sdvp::Status::kOk, name + ": status");
  double total = 0, max_ref = 0, max_err = 0;
  const double norm = result.normalizer;
  for (int64_t r = 0; r < c.rows; ++r) {
    const bool has_label = c.labels && labels[r] != -100;
    const bool valid = (has_label || c.teacher != sdvp::TeacherKind::kNone) && weights[r] > 0;
    std::vector<double> ref;
    const double row = ReferenceRow(spec, r, ref, 1.5 * weights[r] / norm);
    if (!valid) continue;
    total += row;
    for (int64_t j = 0; j < c.vocab; ++j) {
      max_ref = std::max(max_ref, std::fabs(ref[j]));
      max_err = std::max(max_err, std::fabs(ref[j] - grad[r * c.vocab + j]));
    }
  }
  const double ref_loss = total / norm;
  // Relative 1e-5, with an absolute floor at float rounding of O(1) terms (V = 1 rows cancel
  // exactly).
  const double loss_err = std::fabs(result.loss - ref_loss);
  Check(loss_err <= 1e-5 * std::fabs(ref_loss) + 1e-7,
        name + ": loss err " + std::to_string(loss_err) + " ref " + std::to_string(ref_loss) +
            " got " + std::to_string(result.loss));
  Check(max_err <= 1e-5 * max_ref + 1e-6,
        name + ": grad max err " + std::to_string(max_err) + " of max " + std::to_string(max_ref));
  bool all_written = true;
  for (float g : grad) all_written = all_written && !std::isnan(g);
  Check(all_written, name + ": every gradient element written");
}

void TestStatuses() {
  std::vector<float> s(12, 0.5f);
  std::vector<int32_t> labels = {0, 3, 9};
  DistillLossSpec spec;
  spec.rows = 3;
  spec.vocab = 4;
  spec.student = s.data();
  spec.labels = labels.data();
  auto result = sdvp::distill_loss_cpu(spec);
  Check(result.status == sdvp::Status::kLabelOutOfRange && result.bad_row == 2 &&
            result.bad_value == 9,
        "label out of range reported with its row and value");
  labels = {-100, -100, -100};
  std::vector<float> grad(12, 7.0f);
  spec.grad = grad.data();
  result = sdvp::distill_loss_cpu(spec);
  bool zero = true;
  for (float g : grad) zero = zero && g == 0.0f;
  Check(result.status == sdvp::Status::kOk && result.loss == 0.0 && zero,
        "all-ignored batch: loss 0, zero gradient");
  labels = {1, 2, 3};
  s[5] = std::numeric_limits<float>::quiet_NaN();
  result = sdvp::distill_loss_cpu(spec);
  Check(std::isnan(result.loss), "a NaN logit gives a NaN loss");
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  using TK = sdvp::TeacherKind;
  using DV = sdvp::Divergence;
  for (int64_t vocab : {1, 2, 7, 1000, 4099}) {
    for (int64_t rows : {1, 3, 17}) {
      for (DV div : {DV::kForwardKL, DV::kReverseKL, DV::kJSD}) {
        for (float tau : {1.0f, 2.0f}) {
          RunCase({rows, vocab, TK::kDense, div, tau, true, 0, sdvp::TopKMissing::kTailBucket},
                  rng);
          RunCase({rows, vocab, TK::kNone, div, tau, true, 0, sdvp::TopKMissing::kTailBucket}, rng);
          const int64_t k = std::max<int64_t>(1, vocab / 3);
          RunCase({rows, vocab, TK::kTopK, div, tau, true, k, sdvp::TopKMissing::kTailBucket}, rng);
          RunCase({rows, vocab, TK::kTopK, div, tau, false, vocab, sdvp::TopKMissing::kRenormalize},
                  rng);
          if (div != DV::kReverseKL) {
            RunCase({rows, vocab, TK::kTopK, div, tau, true, k, sdvp::TopKMissing::kRenormalize},
                    rng);
          }
        }
      }
    }
  }
  TestStatuses();
  std::printf("kernel tests: %s (%d failures), SIMD target %s\n", failures == 0 ? "ok" : "FAILED",
              failures, sdvp::cpu_simd_target());
  return failures == 0 ? 0 : 1;
}
