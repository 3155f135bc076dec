// Registers the LibTorch model runtime's functions (see torch_model_binding.cc) and the process
// group (process_group_binding.cc) when built with LibTorch.
#include "torch_binding.h"

#ifdef SDVP_HAVE_TORCH
#include "process_group_binding.h"
#include "torch_model_binding.h"
#endif

namespace sdvp::addon {

void RegisterTorch([[maybe_unused]] Napi::Env env, [[maybe_unused]] Napi::Object exports) {
#ifdef SDVP_HAVE_TORCH
  RegisterTorchModel(env, exports);
  RegisterProcessGroup(env, exports);
#endif
}

}  // namespace sdvp::addon
