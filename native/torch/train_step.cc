// The transactional train step: micro-batched forward, the fused objective as an autograd function,
// backward through the model, finiteness check, gradient clipping, optimizer step. Nothing is
// updated until the whole batch's loss and gradient are known to be finite.
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <optional>

#include "distributed.h"
#include "fused_loss_function.h"
#include "gradient_sync.h"
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

// Checks everything that needs no forward pass; returns the batch's rows.
int64_t validate_request(const TrainStepRequest& request) {
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
  return rows;
}

// What a step runs with, prepared before any forward pass.
struct StepPlan {
  std::optional<torch::jit::Method> method;
  int64_t rows = 0;
  std::unique_ptr<Optimizer> replacement;  // a changed optimizer, committed with the step
  std::vector<at::Tensor> inputs;
  double normalizer = 1;
  int64_t valid_rows = 0;
  ObjectiveOptions micro_objective;  // the objective each micro-batch runs with
  // Data parallel: waits for the group's normaliser; called once, before the first objective.
  std::function<double()> group_normalizer;
};

// The optimizer, the inputs and the normaliser of a step.
StepPlan plan_step(Model::Impl& impl, const TrainStepRequest& request, int64_t rows) {
  StepPlan plan;
  plan.method = find_method(impl.module, request.method);
  plan.rows = rows;
  // The optimizer: configured from the request when it differs; kept (state included) when equal.
  const bool reconfigure =
      request.optimizer && (!impl.optimizer || impl.optimizer->config() != *request.optimizer);
  if (reconfigure) {
    // A copy shares the state tensors; it replaces the live optimizer only when the step commits.
    plan.replacement = impl.optimizer ? std::make_unique<Optimizer>(*impl.optimizer)
                                      : std::make_unique<Optimizer>(*request.optimizer);
    plan.replacement->reconfigure(
        *request.optimizer);  // validates the patterns before anything changes
  }
  if (!impl.optimizer && !plan.replacement) {
    throw RuntimeError("ERR_SDVP_ARG",
                       "trainStep needs optimizer options (no optimizer is configured yet)");
  }
  for (const HostTensor& input : request.inputs)
    plan.inputs.push_back(to_input_tensor(input, impl.device));
  const ObjectiveOptions& objective = request.objective;
  plan.normalizer = batch_normalizer(objective, rows, &plan.valid_rows);
  plan.micro_objective = objective;
  const bool divided =
      objective.reduction == Reduction::kMean || objective.reduction == Reduction::kBatchMean;
  if (divided || objective.has_normalizer) {
    plan.micro_objective.has_normalizer = true;
    plan.micro_objective.normalizer = plan.normalizer;
  }
  return plan;
}

// Forward, fused objective and backward of every micro-batch into fresh gradients; adds the loss,
// the per-row outputs and the timings to `result`.
void forward_backward(Model::Impl& impl, const TrainStepRequest& request, StepPlan& plan,
                      TrainStepResult& result) {
  torch::jit::Method& method = *plan.method;
  impl.set_training(true);
  double loss_seconds = 0;
  const int64_t rows = plan.rows;
  const int64_t micro_rows = (rows + request.accumulate - 1) / request.accumulate;
  for (int64_t begin = 0; begin < rows; begin += micro_rows) {
    if (request.cancel && *request.cancel)
      throw RuntimeError("ERR_SDVP_ABORTED", "the training step was aborted");
    const int64_t length = std::min(micro_rows, rows - begin);
    std::vector<c10::IValue> chunk;
    for (const at::Tensor& tensor : plan.inputs)
      chunk.emplace_back(tensor.narrow(0, begin, length));

    const Clock::time_point forward_start = Clock::now();
    const c10::IValue output = method(std::move(chunk));
    if (!output.isTensor() || output.toTensor().dim() != 2 || output.toTensor().size(0) != length) {
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

    if (plan.group_normalizer) {
      plan.micro_objective.normalizer = plan.group_normalizer();
      plan.group_normalizer = nullptr;
    }
    FusedObjective fused = make_objective(plan.micro_objective, begin, begin + length);
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
    if (request.objective.reduction == Reduction::kNone) append<float>(result.row_loss, outputs[1]);
    append<float>(result.lse, fused.stats[0]);
    append<float>(result.ce, fused.stats[1]);
    append<float>(result.kd, fused.stats[2]);
    append<int32_t>(result.argmax, fused.argmax);
  }
  result.timings.loss_ms = loss_seconds * 1e3;
}

void check_finite_loss(double loss) {
  if (!std::isfinite(loss)) {
    throw RuntimeError("ERR_SDVP_NAN_LOSS",
                       "the loss is " + std::to_string(loss) +
                           "; the parameters and the optimizer were left unchanged");
  }
}

// The gradients' global norm, clipping, the optimizer step and the commit of the step counter.
void update(Model::Impl& impl, const NamedTensors& parameters, StepPlan& plan,
            TrainStepResult& result) {
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
  Optimizer& optimizer = plan.replacement ? *plan.replacement : *impl.optimizer;
  const double max_norm = optimizer.config().max_grad_norm;
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (at::Tensor& grad : grads) grad.mul_(scale);
    result.clipped = true;
  }
  // From here on the step commits.
  if (plan.replacement) impl.optimizer = std::move(plan.replacement);
  result.lr = impl.optimizer->step(parameters, impl.step + 1);
  result.timings.optimizer_ms = ms_since(optimizer_start);
  clear_gradients(parameters);
  {
    std::lock_guard<std::mutex> lock(impl.meta_mutex);
    impl.step += 1;
    impl.optimizer_config = impl.optimizer->config();
    result.step = impl.step;
  }
}

// The trainable parameters, in order (what the ranks all-reduce).
std::vector<at::Tensor> trainable(const NamedTensors& parameters, NamedTensors* named) {
  std::vector<at::Tensor> out;
  for (const auto& entry : parameters) {
    if (!entry.second.requires_grad()) continue;
    out.push_back(entry.second);
    named->push_back(entry);
  }
  return out;
}

// Rethrows this rank's own failure with a note that the whole group skipped the step.
[[noreturn]] void rethrow_local(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const RuntimeError& failure) {
    throw RuntimeError(failure.code().c_str(), std::string(failure.what()) +
                                                   " (every rank of the group skipped this step)");
  }
}

// The normaliser of the whole group's batch (what one process with every rank's rows would use).
double group_normalizer(const ObjectiveOptions& objective, int64_t valid_rows, int64_t rows) {
  if (objective.has_normalizer) return objective.normalizer;
  if (objective.reduction == Reduction::kMean)
    return valid_rows > 0 ? static_cast<double>(valid_rows) : 1.0;
  if (objective.reduction == Reduction::kBatchMean) return static_cast<double>(rows);
  return 1.0;
}

// A data-parallel step (request null: this rank abstains, having rejected its request). Every rank
// issues the same collectives whatever happens locally: the row counts (overlapping the first
// forward pass; they give the group's normaliser), the summary (so a failure or a non-finite loss
// anywhere skips the step everywhere), then the bucketed gradient all-reduce, after which every
// rank takes the same update.
TrainStepResult distributed_step(Model::Impl& impl, ProcessGroup& group,
                                 const TrainStepRequest* request, Clock::time_point start) {
  if (impl.joined_group != group.id()) join_model(impl, group);
  const NamedTensors parameters = impl.named_parameters();
  NamedTensors named_trainable;
  const std::vector<at::Tensor> synced = trainable(parameters, &named_trainable);

  TrainStepResult result;
  StepPlan plan;
  LocalStepSummary local;
  local.fingerprint = structure_fingerprint(named_trainable);
  local.status = LocalStepSummary::kFailed;
  std::exception_ptr local_error;
  clear_gradients(parameters);
  std::optional<RowCountExchange> counts;
  std::pair<int64_t, int64_t> group_rows{0, 0};
  const Clock::time_point exchange_start = Clock::now();
  double exchange_ms = 0;
  auto finish_counts = [&] {
    const Clock::time_point wait_start = Clock::now();
    group_rows = finish_row_count_exchange(group, *counts);
    exchange_ms += ms_since(wait_start);
    return group_normalizer(request->objective, group_rows.first, group_rows.second);
  };
  try {
    if (request != nullptr) {
      try {
        const int64_t rows = validate_request(*request);
        translate_errors("ERR_SDVP_TORCH", "trainStep failed",
                         [&] { plan = plan_step(impl, *request, rows); });
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    const bool planned = request != nullptr && !local_error;
    counts.emplace(
        start_row_count_exchange(group, planned ? plan.valid_rows : 0, planned ? plan.rows : 0));
    exchange_ms += ms_since(exchange_start);
    if (planned) {
      try {
        plan.group_normalizer = finish_counts;
        translate_errors("ERR_SDVP_TORCH", "trainStep failed",
                         [&] { forward_backward(impl, *request, plan, result); });
        local.loss = result.loss;
        local.valid_rows = plan.valid_rows;
        local.rows = plan.rows;
        local.status =
            std::isfinite(result.loss) ? LocalStepSummary::kOk : LocalStepSummary::kNonFiniteLoss;
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    if (counts->pending.lock.owns_lock()) {
      const Clock::time_point wait_start = Clock::now();
      group_rows = finish_row_count_exchange(group, *counts);
      exchange_ms += ms_since(wait_start);
    }

    const Clock::time_point summary_start = Clock::now();
    const GroupStepSummary summary = exchange_step_summary(group, local);
    if (local_error) rethrow_local(local_error);
    if (request == nullptr) return result;
    if (!summary.failed.empty()) {
      throw RuntimeError("ERR_SDVP_DIST_PEER",
                         "rank(s) " + rank_list(summary.failed) +
                             " failed their part of this step (their own error says why); every "
                             "rank skipped it, leaving the parameters and the optimizer unchanged");
    }
    if (!summary.non_finite.empty()) {
      throw RuntimeError("ERR_SDVP_NAN_LOSS",
                         "the loss was not finite on rank(s) " + rank_list(summary.non_finite) +
                             "; every rank skipped this step, leaving the parameters and the "
                             "optimizer unchanged");
    }
    if (!summary.mismatched.empty()) {
      throw RuntimeError("ERR_SDVP_DIST_CONFIG",
                         "rank(s) " + rank_list(summary.mismatched) +
                             " train other parameters than rank 0 (freeze and unfreeze the same "
                             "patterns on every rank); every rank skipped this step");
    }
    const GradientSyncStats stats = all_reduce_gradients(group, synced, request->bucket_bytes);
    exchange_ms += ms_since(summary_start);
    result.distributed.communication_ms = exchange_ms;
    result.distributed.world_size = group.world_size();
    result.distributed.rank = group.rank();
    result.distributed.global_rows = summary.rows;
    result.distributed.bytes =
        stats.bytes + summary.bytes +
        counts->counts.numel() * static_cast<int64_t>(counts->counts.element_size());
    result.distributed.buckets = stats.buckets;
    result.rows = plan.rows;
    result.loss = summary.loss;
    result.normalizer = group_normalizer(request->objective, summary.valid_rows, summary.rows);
    result.valid_rows = summary.valid_rows;
    check_finite_loss(result.loss);
    translate_errors("ERR_SDVP_TORCH", "trainStep failed",
                     [&] { update(impl, parameters, plan, result); });
  } catch (...) {
    clear_gradients(parameters);
    throw;
  }
  result.timings.total_ms = ms_since(start);
  return result;
}

}  // namespace

void join_model(Model::Impl& impl, ProcessGroup& group) {
  NamedTensors state = impl.named_parameters();
  for (const auto& named : impl.module.named_buffers(/*recurse=*/true))
    state.emplace_back(named.name, named.value);
  broadcast_model_state(group, state, impl.step);
  impl.joined_group = group.id();
}

void Model::join_group(const std::shared_ptr<ProcessGroup>& group) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  apply_thread_settings();
  join_model(*impl_, *group);
}

void Model::abstain_from_step(const std::shared_ptr<ProcessGroup>& group) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  apply_thread_settings();
  impl_->apply_trainable();
  distributed_step(*impl_, *group, nullptr, Clock::now());
}

TrainStepResult Model::train_step(const TrainStepRequest& request) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  apply_thread_settings();
  const Clock::time_point start = Clock::now();
  Impl& impl = *impl_;
  impl.apply_trainable();
  if (request.distributed) return distributed_step(impl, *request.distributed, &request, start);

  const int64_t rows = validate_request(request);
  return translate_errors("ERR_SDVP_TORCH", "trainStep failed", [&] {
    StepPlan plan = plan_step(impl, request, rows);
    TrainStepResult result;
    result.rows = rows;
    const NamedTensors parameters = impl.named_parameters();
    clear_gradients(parameters);
    try {
      forward_backward(impl, request, plan, result);
      result.normalizer = plan.normalizer;
      result.valid_rows = plan.valid_rows;
      check_finite_loss(result.loss);
      update(impl, parameters, plan, result);
    } catch (...) {
      clear_gradients(parameters);
      throw;
    }
    result.timings.total_ms = ms_since(start);
    return result;
  });
}

}  // namespace sdvp::torch_runtime
