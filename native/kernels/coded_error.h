// The one C++ exception type that carries an ERR_SDVP_* code; Node-free so every native library can
// throw it, and the addon turns it into a JavaScript error with that code.
#pragma once

#include <exception>
#include <string>
#include <utility>

namespace sdvp {

class CodedError : public std::exception {
 public:
  CodedError(std::string code, std::string message)
      : code_(std::move(code)), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& code() const { return code_; }

 private:
  std::string code_;
  std::string message_;
};

}  // namespace sdvp
