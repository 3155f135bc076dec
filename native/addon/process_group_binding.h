// Registers the distributed runtime's JavaScript face: the TorchProcessGroup class and
// distributedBackends(); and lets the model binding take a group out of a JavaScript value.
#pragma once

#ifdef SDVP_HAVE_TORCH

#include <napi.h>

#include <memory>

#include "torch/distributed.h"

namespace sdvp::addon {

// Adds TorchProcessGroup and distributedBackends to `exports`.
void RegisterProcessGroup(Napi::Env env, Napi::Object exports);

// The started group a TorchProcessGroup object wraps; ERR_SDVP_ARG for anything else,
// ERR_SDVP_DISPOSED for a destroyed one.
std::shared_ptr<torch_runtime::ProcessGroup> UnwrapProcessGroup(Napi::Value value);

}  // namespace sdvp::addon

#endif  // SDVP_HAVE_TORCH
