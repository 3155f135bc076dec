// Checkpoints: a normal TorchScript file whose extra file `sdvp_trainer.pkl` holds the optimizer's
// settings and state, the step counter and the frozen parameters (Python's torch.jit.load ignores
// it).
#pragma once

#include <string>

#include <torch/script.h>

#include "model_impl.h"

namespace sdvp::torch_runtime {

// Name of the extra file inside the TorchScript archive.
extern const char* const kTrainerStateFile;

// The pickled training state of `impl` (caller holds run_mutex).
std::string encode_training_state(const Model::Impl& impl);

// Restores the training state into `impl`, whose module is already loaded. Throws
// RuntimeError(ERR_SDVP_MODEL_FILE) when the state is malformed or does not fit the module.
void decode_training_state(Model::Impl& impl, const std::string& pickled);

// The module serialised to bytes, with the training state when `with_training_state`.
std::string serialize_model(Model::Impl& impl, bool with_training_state);

}  // namespace sdvp::torch_runtime
