// capabilities(): what this addon was built with and what it found at run time.
#pragma once

#include <napi.h>

namespace sdvp::addon {
void RegisterCapabilities(Napi::Env env, Napi::Object exports);
}
