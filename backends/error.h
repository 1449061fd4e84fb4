// atelier::Error, the one exception type of the project, and ATELIER_CHECK, which builds its message with
// streams so a check can name every shape, dtype and value involved.
#pragma once

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace atelier {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace atelier

// ATELIER_CHECK(a.dim() == 2, "matmul: expected 2-D, got " << a.shape());
#define ATELIER_CHECK(cond, msg)                           \
  do {                                                     \
    if (!(cond)) {                                         \
      std::ostringstream atelier_check_stream_;            \
      atelier_check_stream_ << msg;                        \
      throw ::atelier::Error(atelier_check_stream_.str()); \
    }                                                      \
  } while (0)

#define ATELIER_FAIL(msg) ATELIER_CHECK(false, msg)

// ATELIER_CHECK for system calls: errno is saved as soon as `cond` fails, before building the message (which
// allocates) can change it, and its text (strerror, from <cstring>) ends the message.
#define ATELIER_CHECK_ERRNO(cond, msg)                                  \
  do {                                                                  \
    if (!(cond)) {                                                      \
      const int atelier_saved_errno_ = errno;                           \
      ATELIER_FAIL(msg << ": " << std::strerror(atelier_saved_errno_)); \
    }                                                                   \
  } while (0)
