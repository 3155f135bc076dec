// The fused objective inside LibTorch's autograd: forward = one kernel call producing the loss, the
// per-row stats and dLoss/dLogits; backward = the saved gradient scaled by the incoming gradient.
#include "fused_loss_function.h"

#include <chrono>
#include <cstring>
#include <string>

#include "runtime_error.h"
#include "runtime_settings.h"
#include "tensor_convert.h"

#ifdef SDVP_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/distill_loss_cuda.h"
#endif

namespace sdvp::torch_runtime {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Checks an optional per-row or per-row-per-k tensor against the logits' rows.
void check_rows(const at::Tensor& tensor, const char* name, int64_t rows, int64_t dims) {
  if (!tensor.defined()) return;
  if (tensor.dim() != dims || tensor.size(0) != rows) {
    throw RuntimeError("ERR_SDVP_SHAPE", std::string("the objective's ") + name + " has shape " +
                                             shape_string(tensor.sizes()) +
                                             " but the logits have " + std::to_string(rows) +
                                             " rows");
  }
}

// A tensor on `device`, contiguous, of `type`. The check first: a no-op .to() still costs a
// dispatch, and on a [64, 16] batch the whole objective takes a few microseconds.
at::Tensor prepare(const at::Tensor& tensor, const c10::Device& device, c10::ScalarType type) {
  if (!tensor.defined()) return tensor;
  if (tensor.device() == device && tensor.scalar_type() == type && tensor.is_contiguous())
    return tensor;
  return tensor.to(device, type).contiguous();
}

// Throws the coded error for a non-OK kernel status.
void check_status(Status status, int64_t bad_row, int64_t bad_value, int64_t vocab) {
  switch (status) {
    case Status::kOk:
      return;
    case Status::kLabelOutOfRange:
      throw RuntimeError("ERR_SDVP_LABEL_RANGE", "label " + std::to_string(bad_value) + " at row " +
                                                     std::to_string(bad_row) + " is outside [0, " +
                                                     std::to_string(vocab) +
                                                     ") and is not the ignore index");
    case Status::kTopKIndexInvalid:
      throw RuntimeError("ERR_SDVP_TOPK_INDEX", "top-k teacher index " + std::to_string(bad_value) +
                                                    " at row " + std::to_string(bad_row) +
                                                    " is outside [0, " + std::to_string(vocab) +
                                                    ") or repeated within its row");
    case Status::kCancelled:
      throw RuntimeError("ERR_SDVP_ABORTED", "the training step was aborted");
    case Status::kInvalidSpec:
      throw RuntimeError(
          "ERR_SDVP_OPTION",
          "the objective's options are invalid (temperature must be > 0, a normalizer > 0, "
          "and reverse KL needs k = vocab with a renormalised top-k teacher)");
    case Status::kCudaError:
      throw RuntimeError("ERR_SDVP_TORCH", "the CUDA fused kernel failed");
  }
  throw RuntimeError("ERR_SDVP_NATIVE", "the fused kernel returned an unknown status");
}

}  // namespace

FusedObjective make_objective(const ObjectiveOptions& options, int64_t begin, int64_t end) {
  FusedObjective objective;
  DistillLossSpec& spec = objective.options;
  spec.teacher_kind = options.teacher_kind;
  spec.topk = options.topk;
  spec.topk_missing = options.topk_missing;
  spec.ignore_index = options.ignore_index;
  spec.ce_weight = options.ce_weight;
  spec.kd_weight = options.kd_weight;
  spec.temperature = options.temperature;
  spec.t2 = options.t2;
  spec.divergence = options.divergence;
  spec.jsd_beta = options.jsd_beta;
  spec.label_smoothing = options.label_smoothing;
  spec.z_loss = options.z_loss;
  spec.reduction = options.reduction;
  spec.has_normalizer = options.has_normalizer;
  spec.normalizer = options.normalizer;
  spec.grad_scale = options.grad_scale;
  spec.threads =
      kernel_threads();  // never 0: the kernel would ask the OS for the core count each call
  const c10::Device cpu(at::kCPU);
  auto rows_of = [&](const HostTensor& host) {
    if (!host.present()) return at::Tensor();
    at::Tensor tensor = to_tensor(host, cpu);
    return tensor.narrow(0, begin, end - begin);
  };
  if (options.teacher_kind == TeacherKind::kDense)
    objective.teacher_logits = rows_of(options.teacher_logits);
  if (options.teacher_kind == TeacherKind::kTopK) {
    objective.topk_indices = rows_of(options.topk_indices);
    objective.topk_logprobs = rows_of(options.topk_logprobs);
  }
  objective.labels = rows_of(options.labels);
  objective.row_weights = rows_of(options.row_weights);
  return objective;
}

torch::autograd::variable_list FusedDistillLoss::forward(torch::autograd::AutogradContext* ctx,
                                                         const at::Tensor& logits,
                                                         FusedObjective* objective) {
  const Clock::time_point start = Clock::now();
  if (logits.dim() != 2 || logits.size(0) < 1 || logits.size(1) < 1) {
    throw RuntimeError(
        "ERR_SDVP_SHAPE",
        "the objective needs logits of shape [rows, classes], got " + shape_string(logits.sizes()));
  }
  const c10::ScalarType type = logits.scalar_type();
  if (type != at::kFloat && type != at::kBFloat16) {
    throw RuntimeError("ERR_SDVP_ARG", "the fused objective takes float32 or bfloat16 logits");
  }
  const at::Tensor student = logits.contiguous();
  const int64_t rows = student.size(0);
  const int64_t vocab = student.size(1);
  const c10::Device device = student.device();

  DistillLossSpec spec = objective->options;
  spec.rows = rows;
  spec.vocab = vocab;
  spec.dtype = type == at::kBFloat16 ? DType::kBF16 : DType::kF32;
  spec.student = student.data_ptr();

  at::Tensor teacher, indices, logprobs;
  if (spec.teacher_kind == TeacherKind::kDense) {
    teacher = prepare(objective->teacher_logits, device, type);
    if (!teacher.defined() || teacher.dim() != 2 || teacher.size(0) != rows ||
        teacher.size(1) != vocab) {
      throw RuntimeError(
          "ERR_SDVP_SHAPE",
          "the dense teacher has shape " +
              (teacher.defined() ? shape_string(teacher.sizes()) : std::string("(none)")) +
              " but the logits have shape " + shape_string(student.sizes()));
    }
    spec.teacher_logits = teacher.data_ptr();
  } else if (spec.teacher_kind == TeacherKind::kTopK) {
    indices = prepare(objective->topk_indices, device, at::kInt);
    logprobs = prepare(objective->topk_logprobs, device, at::kFloat);
    if (!indices.defined() || !logprobs.defined()) {
      throw RuntimeError("ERR_SDVP_ARG", "a top-k teacher needs indices and log-probabilities");
    }
    check_rows(indices, "top-k indices", rows, 2);
    check_rows(logprobs, "top-k log-probabilities", rows, 2);
    if (indices.size(1) != logprobs.size(1) || indices.size(1) < 1 || indices.size(1) > vocab) {
      throw RuntimeError("ERR_SDVP_SHAPE",
                         "the top-k teacher has k = " + std::to_string(indices.size(1)) +
                             " indices and " + std::to_string(logprobs.size(1)) +
                             " log-probabilities per row; k must be in [1, " +
                             std::to_string(vocab) + "]");
    }
    spec.topk = indices.size(1);
    spec.topk_indices = indices.data_ptr<int32_t>();
    spec.topk_logprobs = logprobs.data_ptr<float>();
  }
  const at::Tensor labels = prepare(objective->labels, device, at::kInt);
  const at::Tensor weights = prepare(objective->row_weights, device, at::kFloat);
  check_rows(labels, "labels", rows, 1);
  check_rows(weights, "row weights", rows, 1);
  spec.labels = labels.defined() ? labels.data_ptr<int32_t>() : nullptr;
  spec.row_weights = weights.defined() ? weights.data_ptr<float>() : nullptr;

  const bool none = spec.reduction == Reduction::kNone;
  at::Tensor grad = at::empty_like(student, at::MemoryFormat::Contiguous);
  const auto float_options = student.options().dtype(at::kFloat);
  at::Tensor row_loss = none ? at::empty({rows}, float_options) : at::Tensor();
  objective->stats = at::empty({3, rows}, float_options);
  objective->argmax = at::empty({rows}, student.options().dtype(at::kInt));
  float* stats = objective->stats.data_ptr<float>();
  spec.grad = grad.data_ptr();
  spec.row_loss = none ? row_loss.data_ptr<float>() : nullptr;
  spec.stats_lse = stats;
  spec.stats_ce = stats + rows;
  spec.stats_kd = stats + 2 * rows;
  spec.stats_argmax = objective->argmax.data_ptr<int32_t>();

  at::Tensor loss;
  if (device.is_cpu()) {
    const DistillLossResult result = distill_loss_cpu(spec);
    check_status(result.status, result.bad_row, result.bad_value, vocab);
    objective->result = result;
    loss = at::scalar_tensor(result.loss, float_options);
#ifdef SDVP_TORCH_CUDA
  } else if (device.is_cuda()) {
    const c10::cuda::CUDAGuard guard(device);
    const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(device.index());
    const auto byte_options = student.options().dtype(at::kByte);
    at::Tensor device_result =
        at::zeros({static_cast<int64_t>(sizeof(DistillLossDeviceResult))}, byte_options);
    const int64_t workspace_bytes = static_cast<int64_t>(distill_loss_cuda_workspace_bytes(spec));
    at::Tensor workspace = at::empty({workspace_bytes > 0 ? workspace_bytes : 1}, byte_options);
    const int launch = distill_loss_cuda(
        spec, reinterpret_cast<DistillLossDeviceResult*>(device_result.data_ptr()),
        workspace.data_ptr(), stream.stream());
    if (launch != 0) {
      throw RuntimeError("ERR_SDVP_TORCH", "the CUDA fused kernel failed to launch (cudaError " +
                                               std::to_string(launch) + ")");
    }
    // The loss stays on the device (a view of the result); the status needs one small host copy,
    // which the train step's finiteness check would force anyway.
    loss = device_result.narrow(0, 0, sizeof(float)).view(at::kFloat).reshape({});
    const at::Tensor host_result = device_result.cpu();
    DistillLossDeviceResult device_values;
    std::memcpy(&device_values, host_result.data_ptr(), sizeof(device_values));
    check_status(static_cast<Status>(device_values.status), device_values.bad_row,
                 device_values.bad_value, vocab);
    objective->result.status = Status::kOk;
    objective->result.loss = device_values.loss;
    objective->result.normalizer = device_values.normalizer;
    objective->result.valid_rows = device_values.valid_rows;
#endif
  } else {
    throw RuntimeError("ERR_SDVP_NO_CUDA", "the fused objective runs on the CPU" +
                                               std::string(
#ifdef SDVP_TORCH_CUDA
                                                   " or a CUDA device"
#else
                                                   " (this build has no CUDA fused kernel)"
#endif
                                                   ) +
                                               ", not on " + device.str());
  }

  ctx->save_for_backward({grad});
  ctx->saved_data["timer"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(objective->seconds));
  if (objective->seconds != nullptr) *objective->seconds += seconds_since(start);
  if (none) return {loss, row_loss};
  return {loss};
}

torch::autograd::variable_list FusedDistillLoss::backward(
    torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
  const Clock::time_point start = Clock::now();
  const at::Tensor grad = ctx->get_saved_variables()[0];
  // d(c * loss)/dS = c * dloss/dS; the kernel's gradient is already that of the loss. The usual
  // c = 1 on the CPU (loss.backward()) passes the saved gradient through without a copy.
  const at::Tensor& scale = grad_outputs[0];
  at::Tensor result;
  if (scale.is_cpu() && scale.numel() == 1 && scale.scalar_type() == at::kFloat &&
      *scale.data_ptr<float>() == 1.0f) {
    result = grad;
  } else {
    result = grad * scale.to(grad.scalar_type());
  }
  if (grad_outputs.size() > 1 && grad_outputs[1].defined()) {
    // For reduction none the kernel's gradient row r is dL_r/dS_r, so a per-row weight scales its
    // row.
    result = result + grad * grad_outputs[1].to(grad.scalar_type()).unsqueeze(1);
  }
  auto* seconds =
      reinterpret_cast<double*>(static_cast<intptr_t>(ctx->saved_data["timer"].toInt()));
  if (seconds != nullptr) *seconds += seconds_since(start);
  return {result, at::Tensor()};
}

torch::autograd::variable_list fused_distill_loss(const at::Tensor& logits,
                                                  FusedObjective& objective) {
  at::Tensor input = logits;
  if (input.scalar_type() != at::kFloat && input.scalar_type() != at::kBFloat16) {
    if (!at::isFloatingType(input.scalar_type())) {
      throw RuntimeError("ERR_SDVP_ARG",
                         std::string("the objective needs floating-point logits, got ") +
                             c10::toString(input.scalar_type()));
    }
    input = input.to(at::kFloat);
  }
  return FusedDistillLoss::apply(input, &objective);
}

}  // namespace sdvp::torch_runtime
