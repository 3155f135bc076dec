// Parameter-name patterns for parameter groups and freezing: globs (`*` within one dotted segment,
// `**` across segments, `?` one character) or ECMAScript regular expressions.
#pragma once

#include <regex>
#include <string>
#include <vector>

#include "torch_runtime.h"

namespace sdvp::torch_runtime {

class NamePattern {
 public:
  // Throws RuntimeError(ERR_SDVP_OPTION) when a regex does not compile.
  explicit NamePattern(const ParamGroupRule& rule);
  // A glob matches the whole name; a regex matches anywhere in it (like RegExp.prototype.test).
  bool matches(const std::string& name) const;

 private:
  std::regex regex_;
  bool whole_ = true;
};

// The regex source equivalent to a glob.
std::string glob_to_regex(const std::string& glob);

}  // namespace sdvp::torch_runtime
