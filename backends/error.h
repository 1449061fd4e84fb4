// atelier::Error, the one exception type of the project; ATELIER_CHECK, the check of a caller's input, which
// builds its message with streams so it can name every shape, dtype and value involved; and ATELIER_ASSERT, the
// check of an internal invariant.
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

// ATELIER_ASSERT states an invariant of atelier's own code, not a condition on the caller's input: when it fails
// the bug is ours, so the message says so and names the file and line. It is checked in every build (the cost
// is one branch) and throws atelier::Error like ATELIER_CHECK, so a test can catch it.
//   ATELIER_ASSERT(grads.size() == edges.size(), "backward of '" << name << "' returned " << grads.size());
#define ATELIER_ASSERT(cond, msg) \
  ATELIER_CHECK(                  \
      cond, "internal error (a bug in atelier, please report it) at " << __FILE__ << ":" << __LINE__ << ": " << msg)

// ATELIER_CHECK for system calls: errno is saved as soon as `cond` fails, before building the message (which
// allocates) can change it, and its text (strerror, from <cstring>) ends the message.
#define ATELIER_CHECK_ERRNO(cond, msg)                                  \
  do {                                                                  \
    if (!(cond)) {                                                      \
      const int atelier_saved_errno_ = errno;                           \
      ATELIER_FAIL(msg << ": " << std::strerror(atelier_saved_errno_)); \
    }                                                                   \
  } while (0)
