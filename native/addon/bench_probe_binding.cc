// memoryFloorProbe(a, b, out, threads): out = a + b over Float32Arrays, using the kernels' thread
// pool.
#include "bench_probe_binding.h"

#include "errors.h"
#include "kernels/distill_loss.h"

namespace sdvp::addon {
namespace {

Napi::Value MemoryFloorProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsTypedArray() ||
        !info[2].IsTypedArray() || !info[3].IsNumber()) {
      throw CodedError(
          "ERR_SDVP_ARG",
          "memoryFloorProbe(a, b, out, threads) takes three Float32Arrays and a number");
    }
    auto a = info[0].As<Napi::Float32Array>();
    auto b = info[1].As<Napi::Float32Array>();
    auto out = info[2].As<Napi::Float32Array>();
    if (a.ElementLength() != b.ElementLength() || a.ElementLength() != out.ElementLength()) {
      throw CodedError("ERR_SDVP_SHAPE",
                       "memoryFloorProbe: a, b and out must have the same length");
    }
    memory_floor_probe(a.Data(), b.Data(), out.Data(), static_cast<int64_t>(a.ElementLength()),
                       info[3].As<Napi::Number>().Int32Value());
    return env.Undefined();
  });
}

}  // namespace

void RegisterBenchProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("memoryFloorProbe", Napi::Function::New(env, MemoryFloorProbe, "memoryFloorProbe"));
}

}  // namespace sdvp::addon
