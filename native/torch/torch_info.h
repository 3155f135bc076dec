// What the LibTorch runtime was built against, for capabilities(); implemented in torch_info.cc.
#pragma once

#include <string>

namespace sdvp::torch_runtime {

// LibTorch version string, e.g. "1.13.1".
std::string libtorch_version();

// Whether LibTorch can use a CUDA device in this process.
bool libtorch_cuda_available();

}  // namespace sdvp::torch_runtime
