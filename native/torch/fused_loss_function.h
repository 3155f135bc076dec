// The fused distillation objective as a LibTorch autograd function: its forward runs the fused
// kernel (CPU, or CUDA for CUDA tensors), which writes dLoss/dLogits in the same pass; its backward
// returns that saved gradient times the incoming gradient. The loss is never re-implemented with
// LibTorch ops.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "distill_loss.h"
#include "torch_runtime.h"

namespace sdvp::torch_runtime {

// The objective for one call: scalar options in `options` (its pointer, rows and vocab fields are
// ignored), arrays as tensors with the batch's rows (moved to the logits' device by the forward).
struct FusedObjective {
  DistillLossSpec options;
  at::Tensor
      teacher_logits;  // kDense: [rows, vocab], float32 or bfloat16 (converted to the logits' type)
  at::Tensor topk_indices;   // kTopK: [rows, k] int32
  at::Tensor topk_logprobs;  // kTopK: [rows, k] float32
  at::Tensor labels;         // [rows] int32, or undefined
  at::Tensor row_weights;    // [rows] float32, or undefined

  // Filled by the forward: the kernel's result (loss in double on the CPU), and the per-row stats
  // (plain tensors outside autograd, on the logits' device): rows of `stats` are lse, ce, kd.
  DistillLossResult result;
  at::Tensor stats;   // [3, rows] float32
  at::Tensor argmax;  // [rows] int32
  // When set, the forward and the backward node add their wall time (seconds) here.
  double* seconds = nullptr;
};

// Builds the objective for rows [begin, end) of a request's options (host arrays sliced, no copy).
FusedObjective make_objective(const ObjectiveOptions& options, int64_t begin, int64_t end);

class FusedDistillLoss : public torch::autograd::Function<FusedDistillLoss> {
 public:
  // Outputs: the loss (0-dim float32) and, for Reduction::kNone, the per-row losses [rows] (both
  // differentiable). Per-row stats go to objective->stats / argmax.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& logits,
                                                FusedObjective* objective);
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs);
};

// Applies the objective to logits [rows, vocab] of any floating type (other than float32 and
// bfloat16 they are converted, differentiably, to float32 first).
torch::autograd::variable_list fused_distill_loss(const at::Tensor& logits,
                                                  FusedObjective& objective);

}  // namespace sdvp::torch_runtime
