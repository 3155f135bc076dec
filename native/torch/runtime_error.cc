// Converts LibTorch's exceptions into RuntimeError with a code, keeping the message and dropping
// the C++ backtrace LibTorch appends.
#include "runtime_error.h"

#include <c10/util/Exception.h>

#include <new>

namespace sdvp::torch_runtime {

namespace {

// Some LibTorch errors (those re-raised by the TorchScript interpreter) carry the C++ backtrace
// inside the message itself; cut it at the first "Exception raised from" line.
std::string strip_backtrace(std::string message) {
  const size_t cut = message.find("Exception raised from ");
  if (cut != std::string::npos) message.erase(cut);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

}  // namespace

std::string torch_message(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    return strip_backtrace(torch_error->what_without_backtrace());
  }
  return strip_backtrace(error.what());
}

void rethrow_as_runtime_error(const char* code, const std::string& context) {
  try {
    throw;
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw RuntimeError("ERR_SDVP_NATIVE", context + ": out of memory");
  } catch (const std::exception& error) {
    throw RuntimeError(code, context + ": " + torch_message(error));
  } catch (...) {
    throw RuntimeError(code, context + ": unknown error");
  }
}

}  // namespace sdvp::torch_runtime
