// Registers the LibTorch model runtime's JavaScript face: the TorchModel class and the runtime
// settings.
#pragma once

#include <napi.h>

namespace sdvp::addon {

// Adds TorchModel, torchSetThreads, torchThreads, torchSetGraphOptimization and
// torchGraphOptimization to `exports`. Defined only when the addon is built with LibTorch
// (SDVP_HAVE_TORCH).
void RegisterTorchModel(Napi::Env env, Napi::Object exports);

}  // namespace sdvp::addon
