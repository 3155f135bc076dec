// The transactional train step: micro-batched forward, the fused objective as an autograd function,
// backward through the model, finiteness check, gradient clipping, optimizer step. Nothing is
// updated until the whole batch's loss and gradient are known to be finite.
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>

#include "fused_loss_function.h"
#include "model_impl.h"
#include "runtime_error.h"
#include "runtime_settings.h"
#include "tensor_convert.h"

namespace sdvp::torch_runtime {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Checks that an objective array has `rows` leading entries (and `trailing` entries after, when >
// 0).
void check_objective_array(const HostTensor& host, const char* name, int64_t rows,
                           ElementType type) {
  if (!host.present()) return;
  if (host.type != type) {
    throw RuntimeError("ERR_SDVP_ARG", std::string("objective.") + name + " must hold " +
                                           element_type_name(type) + " values");
  }
  if (host.shape.empty() || host.shape[0] != rows) {
    throw RuntimeError("ERR_SDVP_SHAPE", std::string("objective.") + name + " has shape " +
                                             shape_string(host.shape) + " but the batch has " +
                                             std::to_string(rows) + " rows");
  }
  if (static_cast<size_t>(host.numel()) * element_size(host.type) != host.bytes->size()) {
    throw RuntimeError("ERR_SDVP_SHAPE",
                       std::string("objective.") + name + " has the wrong number of bytes");
  }
}

// The normalizer of the whole batch, so that micro-batches sum to the full batch's loss and
// gradient.
double batch_normalizer(const ObjectiveOptions& objective, int64_t rows, int64_t* valid_rows) {
  const int32_t* labels = objective.labels.present()
                              ? reinterpret_cast<const int32_t*>(objective.labels.bytes->data())
                              : nullptr;
  const float* weights = objective.row_weights.present()
                             ? reinterpret_cast<const float*>(objective.row_weights.bytes->data())
                             : nullptr;
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const bool has_label = labels != nullptr && labels[r] != objective.ignore_index;
    const bool has_target = has_label || objective.teacher_kind != TeacherKind::kNone;
    if (has_target && (weights == nullptr || weights[r] > 0)) ++valid;
  }
  *valid_rows = valid;
  if (objective.has_normalizer) return objective.normalizer;
  switch (objective.reduction) {
    case Reduction::kMean:
      return valid > 0 ? static_cast<double>(valid) : 1.0;  // no valid row: every term is 0 anyway
    case Reduction::kBatchMean:
      return static_cast<double>(rows);
    case Reduction::kSum:
    case Reduction::kNone:
      return 1.0;
  }
  return 1.0;
}

template <typename T>
void append(std::vector<T>& out, const at::Tensor& tensor) {
  const std::vector<T> values = to_vector<T>(tensor);
  out.insert(out.end(), values.begin(), values.end());
}

// Clears every gradient (undefined, so frozen parameters and the next step start clean).
void clear_gradients(const NamedTensors& parameters) {
  for (const auto& named : parameters) {
    if (named.second.grad().defined()) named.second.mutable_grad().reset();
  }
}

}  // namespace

TrainStepResult Model::train_step(const TrainStepRequest& request) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  apply_thread_settings();
  const Clock::time_point start = Clock::now();
  Impl& impl = *impl_;
  impl.apply_trainable();

  // Validate everything that needs no forward pass before touching any state.
  if (request.inputs.empty())
    throw RuntimeError("ERR_SDVP_ARG", "trainStep needs at least one input");
  int64_t rows = -1;
  for (const HostTensor& input : request.inputs) {
    if (input.shape.empty())
      throw RuntimeError("ERR_SDVP_SHAPE", "every trainStep input needs a batch dimension");
    if (rows >= 0 && input.shape[0] != rows) {
      throw RuntimeError("ERR_SDVP_SHAPE", "trainStep inputs disagree on the batch size (" +
                                               std::to_string(rows) + " and " +
                                               std::to_string(input.shape[0]) + ")");
    }
    rows = input.shape[0];
  }
  if (rows < 1) throw RuntimeError("ERR_SDVP_SHAPE", "trainStep needs a batch of at least one row");
  if (request.accumulate < 1 || request.accumulate > rows) {
    throw RuntimeError("ERR_SDVP_RANGE", "accumulate must be in [1, " + std::to_string(rows) +
                                             "], got " + std::to_string(request.accumulate));
  }
  const ObjectiveOptions& objective = request.objective;
  check_objective_array(objective.labels, "labels", rows, ElementType::kInt32);
  check_objective_array(objective.row_weights, "rowWeights", rows, ElementType::kFloat32);
  if (objective.teacher_kind == TeacherKind::kDense) {
    if (!objective.teacher_logits.present())
      throw RuntimeError("ERR_SDVP_ARG", "a dense teacher needs its logits");
    check_objective_array(objective.teacher_logits, "teacher", rows, objective.teacher_logits.type);
    if (objective.teacher_logits.type != ElementType::kFloat32 &&
        objective.teacher_logits.type != ElementType::kBFloat16) {
      throw RuntimeError("ERR_SDVP_ARG", "dense teacher logits must be float32 or bfloat16");
    }
  } else if (objective.teacher_kind == TeacherKind::kTopK) {
    check_objective_array(objective.topk_indices, "teacher.indices", rows, ElementType::kInt32);
    check_objective_array(objective.topk_logprobs, "teacher.logprobs", rows, ElementType::kFloat32);
    if (!objective.topk_indices.present() || !objective.topk_logprobs.present()) {
      throw RuntimeError("ERR_SDVP_ARG", "a top-k teacher needs indices and log-probabilities");
    }
  }
  if (!objective.labels.present() && objective.teacher_kind == TeacherKind::kNone) {
    throw RuntimeError("ERR_SDVP_ARG", "the objective needs labels, a teacher, or both");
  }

  return translate_errors("ERR_SDVP_TORCH", "trainStep failed", [&] {
    torch::jit::Method method = find_method(impl.module, request.method);
    // The optimizer: configured from the request when it differs; kept (state included) when equal.
    std::unique_ptr<Optimizer> replacement;
    const bool reconfigure =
        request.optimizer && (!impl.optimizer || impl.optimizer->config() != *request.optimizer);
    if (reconfigure) {
      // A copy shares the state tensors; it replaces the live optimizer only when the step commits.
      replacement = impl.optimizer ? std::make_unique<Optimizer>(*impl.optimizer)
                                   : std::make_unique<Optimizer>(*request.optimizer);
      replacement->reconfigure(
          *request.optimizer);  // validates the patterns before anything changes
    }
    if (!impl.optimizer && !replacement) {
      throw RuntimeError("ERR_SDVP_ARG",
                         "trainStep needs optimizer options (no optimizer is configured yet)");
    }

    std::vector<at::Tensor> inputs;
    for (const HostTensor& input : request.inputs)
      inputs.push_back(to_input_tensor(input, impl.device));

    TrainStepResult result;
    result.rows = rows;
    int64_t valid_rows = 0;
    const double normalizer = batch_normalizer(objective, rows, &valid_rows);
    ObjectiveOptions micro_objective = objective;
    if (objective.reduction == Reduction::kMean || objective.reduction == Reduction::kBatchMean ||
        objective.has_normalizer) {
      micro_objective.has_normalizer = true;
      micro_objective.normalizer = normalizer;
    }

    const NamedTensors parameters = impl.named_parameters();
    clear_gradients(parameters);
    impl.set_training(true);
    double loss_seconds = 0;
    try {
      const int64_t micro_rows = (rows + request.accumulate - 1) / request.accumulate;
      for (int64_t begin = 0; begin < rows; begin += micro_rows) {
        if (request.cancel && *request.cancel)
          throw RuntimeError("ERR_SDVP_ABORTED", "the training step was aborted");
        const int64_t length = std::min(micro_rows, rows - begin);
        std::vector<c10::IValue> chunk;
        for (const at::Tensor& tensor : inputs) chunk.emplace_back(tensor.narrow(0, begin, length));

        const Clock::time_point forward_start = Clock::now();
        const c10::IValue output = method(std::move(chunk));
        if (!output.isTensor() || output.toTensor().dim() != 2 ||
            output.toTensor().size(0) != length) {
          throw RuntimeError("ERR_SDVP_SHAPE",
                             "method '" + request.method +
                                 "' must return logits of shape [batch, classes] for trainStep");
        }
        const at::Tensor logits = output.toTensor();
        result.timings.forward_ms += ms_since(forward_start);
        if (!logits.requires_grad()) {
          throw RuntimeError("ERR_SDVP_ARG",
                             "method '" + request.method +
                                 "' returned logits that do not depend on any trainable parameter");
        }

        FusedObjective fused = make_objective(micro_objective, begin, begin + length);
        fused.options.threads = kernel_threads();
        fused.options.cancel = request.cancel;
        fused.seconds = &loss_seconds;
        const torch::autograd::variable_list outputs = fused_distill_loss(logits, fused);
        result.vocab = logits.size(1);

        const Clock::time_point backward_start = Clock::now();
        const double loss_before = loss_seconds;
        outputs[0].backward();
        result.timings.backward_ms += ms_since(backward_start) - (loss_seconds - loss_before) * 1e3;

        result.loss += fused.result.loss;
        if (objective.reduction == Reduction::kNone) append<float>(result.row_loss, outputs[1]);
        append<float>(result.lse, fused.stats[0]);
        append<float>(result.ce, fused.stats[1]);
        append<float>(result.kd, fused.stats[2]);
        append<int32_t>(result.argmax, fused.argmax);
      }
      result.timings.loss_ms = loss_seconds * 1e3;
      result.normalizer = normalizer;
      result.valid_rows = valid_rows;
      if (!std::isfinite(result.loss)) {
        throw RuntimeError("ERR_SDVP_NAN_LOSS",
                           "the loss is " + std::to_string(result.loss) +
                               "; the parameters and the optimizer were left unchanged");
      }

      const Clock::time_point optimizer_start = Clock::now();
      const c10::NoGradGuard no_grad;
      std::vector<at::Tensor> grads;
      for (const auto& named : parameters) {
        if (named.second.requires_grad() && named.second.grad().defined())
          grads.push_back(named.second.grad());
      }
      double norm = 0;
      if (!grads.empty()) {
        std::vector<at::Tensor> norms;
        for (const at::Tensor& grad : grads) norms.push_back(grad.norm(2).to(at::kDouble));
        norm = at::stack(norms).norm(2).item<double>();
      }
      result.grad_norm = norm;
      if (!std::isfinite(norm)) {
        throw RuntimeError("ERR_SDVP_NAN_LOSS",
                           "the gradient is not finite (norm " + std::to_string(norm) +
                               "); the parameters and the optimizer were left unchanged");
      }
      Optimizer& optimizer = replacement ? *replacement : *impl.optimizer;
      const double max_norm = optimizer.config().max_grad_norm;
      if (max_norm > 0 && norm > max_norm) {
        const double scale = max_norm / (norm + 1e-6);
        for (at::Tensor& grad : grads) grad.mul_(scale);
        result.clipped = true;
      }
      // From here on the step commits.
      if (replacement) impl.optimizer = std::move(replacement);
      result.lr = impl.optimizer->step(parameters, impl.step + 1);
      result.timings.optimizer_ms = ms_since(optimizer_start);
      clear_gradients(parameters);
      {
        std::lock_guard<std::mutex> lock(impl.meta_mutex);
        impl.step += 1;
        impl.optimizer_config = impl.optimizer->config();
        result.step = impl.step;
      }
    } catch (...) {
      clear_gradients(parameters);
      throw;
    }
    result.timings.total_ms = ms_since(start);
    return result;
  });
}

}  // namespace sdvp::torch_runtime
