// Builds coded JavaScript errors for the addon.
#include "errors.h"

namespace sdvp::addon {

Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

}  // namespace sdvp::addon
