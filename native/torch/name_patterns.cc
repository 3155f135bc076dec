// Compiles parameter-name globs and regexes once and matches names against them.
#include "name_patterns.h"

#include "runtime_error.h"

namespace sdvp::torch_runtime {

std::string glob_to_regex(const std::string& glob) {
  std::string out;
  for (size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '*') {
      if (i + 1 < glob.size() && glob[i + 1] == '*') {
        out += ".*";
        ++i;
      } else {
        out += "[^.]*";
      }
    } else if (c == '?') {
      out += "[^.]";
    } else if (std::string("\\^$.|+()[]{}").find(c) != std::string::npos) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

NamePattern::NamePattern(const ParamGroupRule& rule) : whole_(!rule.is_regex) {
  try {
    regex_ = std::regex(rule.is_regex ? rule.pattern : glob_to_regex(rule.pattern),
                        std::regex::ECMAScript);
  } catch (const std::regex_error& error) {
    throw RuntimeError("ERR_SDVP_OPTION",
                       "the name pattern /" + rule.pattern +
                           "/ is not a valid regular expression: " + error.what());
  }
}

bool NamePattern::matches(const std::string& name) const {
  return whole_ ? std::regex_match(name, regex_) : std::regex_search(name, regex_);
}

}  // namespace sdvp::torch_runtime
