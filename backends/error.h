// atelier::Error, the one exception type of the project (with OutOfMemoryError, the one kind of it a caller may
// want to tell apart); ATELIER_CHECK, the check of a caller's input, which builds its message with streams so it
// can name every shape, dtype and value involved; and ATELIER_ASSERT, the check of an internal invariant.
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

// The memory a request needs is not there (the caching allocator's system refused even after the cache was
// returned, or a kernel's own buffer could not be had): an Error of its own, so that a caller who knows what asked
// for the memory (a training run: its batch and model size) can say what to change, and one who does not still
// catches it as an Error.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

}  // namespace atelier

// ATELIER_THROW(Type, msg) throws Type (an Error) with a message built by streaming `msg`, so it can name every
// shape, dtype and value involved; the checks below are built on it.
#define ATELIER_THROW(Type, msg)              \
  do {                                        \
    std::ostringstream atelier_throw_stream_; \
    atelier_throw_stream_ << msg;             \
    throw Type(atelier_throw_stream_.str());  \
  } while (0)

// ATELIER_CHECK(a.dim() == 2, "matmul: expected 2-D, got " << a.shape());
#define ATELIER_CHECK(cond, msg)                       \
  do {                                                 \
    if (!(cond)) ATELIER_THROW(::atelier::Error, msg); \
  } while (0)

#define ATELIER_FAIL(msg) ATELIER_CHECK(false, msg)

#define ATELIER_OUT_OF_MEMORY(msg) ATELIER_THROW(::atelier::OutOfMemoryError, msg)

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
