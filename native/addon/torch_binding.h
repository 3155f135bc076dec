// Registers the LibTorch model runtime's functions when the addon was built with LibTorch.
#pragma once

#include <napi.h>

namespace sdvp::addon {
// Adds the model functions to `exports` when built with SDVP_HAVE_TORCH; otherwise adds nothing
// (the TypeScript layer then reports ERR_SDVP_NO_TORCH).
void RegisterTorch(Napi::Env env, Napi::Object exports);
}  // namespace sdvp::addon
