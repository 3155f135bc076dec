// What the LibTorch runtime was built against, for capabilities().
#include "torch_info.h"

#include <torch/cuda.h>
#include <torch/version.h>

namespace sdvp::torch_runtime {

std::string libtorch_version() {
#ifdef TORCH_VERSION
  return TORCH_VERSION;
#else
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
#endif
}

bool libtorch_cuda_available() {
  try {
    return torch::cuda::is_available();
  } catch (...) {
    return false;
  }
}

}  // namespace sdvp::torch_runtime
