// footprint/error.h: the one exception type footprint throws for problems a user can cause
// (a bad file, a bad option). Its message names the file, the field and what was expected,
// and fits on one line; the command-line program prints it and exits with status 1.
#pragma once

#include <stdexcept>
#include <string>

namespace footprint {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace footprint
