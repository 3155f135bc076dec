// memoryFloorProbe(): times moving the bytes a dense fp32 distillation call must move, for
// benchmarks.
#pragma once

#include <napi.h>

namespace sdvp::addon {
void RegisterBenchProbe(Napi::Env env, Napi::Object exports);
}
