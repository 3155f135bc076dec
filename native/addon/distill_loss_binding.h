// distillLoss(spec) and distillLossAsync(spec) → Promise: the fused objective on CPU typed arrays.
#pragma once

#include <napi.h>

namespace sdvp::addon {
void RegisterDistillLoss(Napi::Env env, Napi::Object exports);
}
