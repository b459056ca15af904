// footprint/error.h: the one exception type footprint throws for problems a user can cause
// (a bad file, a bad option). Its message names the file, the field and what was expected,
// and fits on one line; the command-line program prints it and exits with status 1.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace footprint {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Text taken from a file (a name, a string, a message LibTorch made from the model's code) as it
// may be shown on a terminal: on one line, with control characters and invalid UTF-8 escaped
// (\n, \t, \x1b, \xff). Valid UTF-8 text passes unchanged.
std::string escape_text(std::string_view text);

}  // namespace footprint
