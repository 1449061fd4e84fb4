// Shared by the libFuzzer targets of tests/fuzz/: the readers under test take a path, so each input is written to
// a file first (one per process, so parallel fuzzers never share one), and every refusal must be an
// atelier::Error of bounded length that names the file. Anything else (a crash, a sanitizer report, another
// exception, an internal error, a megabyte message) stops the fuzzer as a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "backends/error.h"

namespace atelier::fuzz {

// The fuzz input as a file: /tmp/atelier-fuzz-<pid>/<name>, rewritten on every call. The directory is the
// process's own, so a save beside the input (fuzz_safetensors) scans a directory of two files, not all of /tmp.
inline const std::string& write_input(const char* name, const uint8_t* data, size_t size) {
  static const std::string path = [name] {
    const std::string dir = "/tmp/atelier-fuzz-" + std::to_string(static_cast<long>(::getpid()));
    ::mkdir(dir.c_str(), 0700);
    return dir + "/" + name;
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

// A refusal as the library promises it: names the file, is not an internal error, and stays short (values from
// the file are quoted cut short). Aborts (a finding) otherwise.
// `data` is the input: a message that merely quotes the input's own text is not an internal error.
inline void check_refusal(const Error& e, const std::string& path, const uint8_t* data, size_t size) {
  const std::string message = e.what();
  const bool names_file = message.find(path) != std::string::npos;
  static const std::string kInternal = "internal error (a bug in atelier";  // ATELIER_ASSERT's words
  const bool internal = message.find(kInternal) != std::string::npos &&
                        std::string(reinterpret_cast<const char*>(data), size).find(kInternal) == std::string::npos;
  if (!names_file || internal || message.size() > 4096) {
    std::fprintf(stderr, "fuzz: bad refusal (%zu chars): %.2000s\n", message.size(), message.c_str());
    std::abort();
  }
}

}  // namespace atelier::fuzz
