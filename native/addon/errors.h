// Errors that cross from native code into JavaScript: always a JS Error with a `code`, never an
// abort.
#pragma once

#include <napi.h>

#include <exception>
#include <string>

#include "kernels/coded_error.h"

namespace sdvp::addon {

// Creates a JavaScript Error whose `code` property is `code` (an ERR_SDVP_* string).
Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message);

// Native code throws sdvp::CodedError (kernels/coded_error.h) to reach JavaScript with a specific
// code.
using sdvp::CodedError;

// Runs `body`; any C++ exception it lets out becomes a thrown JavaScript error with a code.
template <typename Body>
Napi::Value Guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;  // already a JavaScript error
  } catch (const CodedError& error) {
    throw MakeError(env, error.code().c_str(), error.what());
  } catch (const std::exception& error) {
    throw MakeError(env, "ERR_SDVP_NATIVE", std::string("native error: ") + error.what());
  } catch (...) {
    throw MakeError(env, "ERR_SDVP_NATIVE", "native error of unknown type");
  }
}

}  // namespace sdvp::addon
