// capabilities(): the SIMD target chosen at run time, CUDA and LibTorch availability, versions.
#include "capabilities_binding.h"

#include "errors.h"
#include "kernels/distill_loss.h"
#ifdef SDVP_HAVE_CUDA
#include "kernels/cuda/distill_loss_cuda.h"
#endif
#ifdef SDVP_HAVE_TORCH
#include "torch/torch_info.h"
#endif

// binding.gyp defines SDVP_BUILD_GYP; everything else is the CMake build.
#ifdef SDVP_BUILD_GYP
#define SDVP_BUILD_SYSTEM "node-gyp"
#else
#define SDVP_BUILD_SYSTEM "cmake"
#endif

namespace sdvp::addon {
namespace {

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    Napi::Object result = Napi::Object::New(env);
    result.Set("buildSystem", SDVP_BUILD_SYSTEM);
    result.Set("simdTarget", cpu_simd_target());
    result.Set("cpuThreads", cpu_default_threads());

    Napi::Object cuda = Napi::Object::New(env);
#ifdef SDVP_HAVE_CUDA
    cuda.Set("built", true);
    cuda.Set("runtimeVersion", cuda_runtime_version());
    cuda.Set("devices", cuda_device_count());
#else
    cuda.Set("built", false);
    cuda.Set("runtimeVersion", env.Null());
    cuda.Set("devices", 0);
#endif
    result.Set("cuda", cuda);

    Napi::Object torch = Napi::Object::New(env);
#ifdef SDVP_HAVE_TORCH
    torch.Set("built", true);
    torch.Set("version", sdvp::torch_runtime::libtorch_version());
    torch.Set("cuda", sdvp::torch_runtime::libtorch_cuda_available());
#else
    torch.Set("built", false);
    torch.Set("version", env.Null());
    torch.Set("cuda", false);
#endif
    result.Set("torch", torch);
    return result;
  });
}

}  // namespace

void RegisterCapabilities(Napi::Env env, Napi::Object exports) {
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
}

}  // namespace sdvp::addon
