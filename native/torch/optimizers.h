// AdamW and SGD with momentum over named parameters: parameter groups chosen by name patterns,
// learning- rate schedules (constant, linear warm-up, cosine), and state kept per parameter name so
// it survives freezing, reconfiguration and checkpoints.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "name_patterns.h"
#include "torch_runtime.h"

namespace sdvp::torch_runtime {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// The factor (in [0, 1]) the schedule applies to base rates at 1-based step `step`.
double schedule_factor(const ScheduleConfig& schedule, int64_t step);

class Optimizer {
 public:
  explicit Optimizer(OptimizerConfig config);

  const OptimizerConfig& config() const { return config_; }

  // Replaces the configuration. The per-parameter state is kept when the kind is unchanged.
  void reconfigure(OptimizerConfig config);

  // Updates every parameter that has a gradient, at 1-based step `step`. Returns the default
  // group's learning rate for this step.
  double step(const NamedTensors& parameters, int64_t step);

  // The learning rate the default group uses at 1-based step `step`.
  double learning_rate(int64_t step) const {
    return config_.lr * schedule_factor(config_.schedule, step);
  }

  // State as an IValue (a dict of tensors and counts by parameter name), for checkpoints.
  c10::IValue state_to_ivalue() const;
  // Replaces the state; throws RuntimeError(ERR_SDVP_MODEL_FILE) when it does not fit `parameters`.
  void state_from_ivalue(const c10::IValue& state, const NamedTensors& parameters);

 private:
  struct ParamState {
    at::Tensor exp_avg;     // AdamW
    at::Tensor exp_avg_sq;  // AdamW
    at::Tensor momentum;    // SGD
    int64_t steps = 0;
  };
  // Index into config_.groups of the first rule matching `name`, or -1.
  int group_of(const std::string& name) const;

  OptimizerConfig config_;
  std::vector<NamePattern> patterns_;
  std::map<std::string, ParamState> state_;
};

// The configuration as an IValue dict and back (for checkpoints).
c10::IValue optimizer_config_to_ivalue(const OptimizerConfig& config);
OptimizerConfig optimizer_config_from_ivalue(const c10::IValue& value);

}  // namespace sdvp::torch_runtime
