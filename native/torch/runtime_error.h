// The one exception type the torch runtime throws: an ERR_SDVP_* code and a message without C++
// backtraces; the addon turns it into a JavaScript error with that code.
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "coded_error.h"

namespace sdvp::torch_runtime {

// The runtime's coded error is the shared sdvp::CodedError, so the addon catches one type.
using RuntimeError = sdvp::CodedError;

// Inside a catch block: rethrows the current exception as a RuntimeError. A RuntimeError passes
// unchanged; a c10::Error becomes `code` with what_without_backtrace() (prefixed by `context`);
// anything else becomes `code` with what().
[[noreturn]] void rethrow_as_runtime_error(const char* code, const std::string& context);

// Runs `body`, converting whatever it throws with rethrow_as_runtime_error.
template <typename Body>
auto translate_errors(const char* code, const std::string& context, Body&& body)
    -> decltype(body()) {
  try {
    return body();
  } catch (...) {
    rethrow_as_runtime_error(code, context);
  }
}

// LibTorch's message of a c10::Error with the C++ backtrace removed.
std::string torch_message(const std::exception& error);

}  // namespace sdvp::torch_runtime
