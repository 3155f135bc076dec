// The state behind a Model: the TorchScript module, its device, its training state and the cached
// description the metadata methods serve. Shared by model_handle.cc, train_step.cc and
// checkpoint.cc.
#pragma once

#include <torch/script.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "distributed.h"
#include "optimizers.h"
#include "torch_runtime.h"

namespace sdvp::torch_runtime {

struct Model::Impl {
  torch::jit::Module module;
  c10::Device device{at::kCPU};
  std::unique_ptr<Optimizer> optimizer;  // guarded by run_mutex
  int64_t step = 0;                      // optimizer steps taken; written under both locks

  // Serialises runs (call, train_step, save, checkpoints) on this model.
  mutable std::mutex run_mutex;
  // Guards the description below, which the metadata methods read without waiting for a run.
  mutable std::mutex meta_mutex;
  std::vector<ParameterInfo> parameter_info;  // `trainable` here is authoritative; runs apply it
  std::vector<MethodInfo> method_info;
  std::vector<std::pair<std::string, HostValue>> attribute_values;
  std::optional<OptimizerConfig> optimizer_config;  // a copy of optimizer->config()
  int64_t trainable_generation = 0;  // bumped by every change of parameter_info's trainable flags
  int64_t trainable_applied = -1;    // the generation apply_trainable() last applied
  int training_mode = -1;            // under run_mutex: 1 train, 0 eval, -1 unknown
  uint64_t joined_group = 0;         // under run_mutex: the ProcessGroup::id() last joined, or 0

  // Rebuilds the description from the module (trainable flags from requires_grad).
  void refresh_metadata();
  // Under run_mutex: sets each parameter's requires_grad from parameter_info (when it changed).
  void apply_trainable();
  // Under run_mutex: the module's training flag (a walk over all submodules, so only when it
  // changes).
  void set_training(bool on);
  NamedTensors named_parameters() const;
};

// Under run_mutex: makes this model equal rank 0's copy in `group` (parameters and buffers, after
// checking every rank holds the same ones at the same step) and remembers the group as joined.
void join_model(Model::Impl& impl, ProcessGroup& group);

// Finds a method or throws RuntimeError(ERR_SDVP_MODEL_METHOD) naming the ones there are.
torch::jit::Method find_method(const torch::jit::Module& module, const std::string& name);

// Parses "cpu", "cuda" or "cuda:N"; throws ERR_SDVP_ARG / ERR_SDVP_NO_CUDA.
c10::Device parse_device(const std::string& device);

// Loads a module (and, when the file is an sdvp checkpoint, its training state) from bytes.
// Throws RuntimeError(ERR_SDVP_MODEL_FILE) for anything that is not a loadable TorchScript file.
std::unique_ptr<Model::Impl> load_impl(const std::string& bytes, const c10::Device& device,
                                       const std::string& what);

// Reads a whole file; throws RuntimeError(ERR_SDVP_MODEL_FILE) when it cannot be read.
std::string read_file(const std::string& path);

// Writes `bytes` to `path` atomically: a temporary name beside it, fsync, rename, fsync of the
// folder. Throws RuntimeError(ERR_SDVP_IO).
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace sdvp::torch_runtime
