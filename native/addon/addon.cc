// Registers every exported native function of the sdvp addon; each lives in its own binding file.
#include <napi.h>

#include "bench_probe_binding.h"
#include "capabilities_binding.h"
#include "distill_loss_binding.h"
#include "torch_binding.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  sdvp::addon::RegisterCapabilities(env, exports);
  sdvp::addon::RegisterDistillLoss(env, exports);
  sdvp::addon::RegisterBenchProbe(env, exports);
  sdvp::addon::RegisterTorch(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sdvp, Init)
