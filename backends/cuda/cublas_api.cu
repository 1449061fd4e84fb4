// cuBLAS loaded at its first use (see cublas_api.h): dlopen, then dlsym for each entry point atelier calls.
#include "backends/cuda/cublas_api.h"

#include <cstdlib>

#include <dlfcn.h>

#include "backends/error.h"

#ifndef ATELIER_CUBLAS_DIR
#define ATELIER_CUBLAS_DIR ""  // the CUDA toolkit's library folder, from the build (CMakeLists.txt)
#endif

namespace atelier::cuda {

namespace {

const std::string kSoname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);

// dlsym, typed as the table's field: an entry point the library lacks (an older cuBLAS) is an error naming it.
template <typename Fn>
void resolve(void* library, const std::string& file, const char* symbol, Fn& slot) {
  void* address = dlsym(library, symbol);
  if (address == nullptr) {
    throw Error("cuBLAS loaded from " + file + " has no entry point " + symbol + " (atelier was built against cuBLAS " +
                std::to_string(CUBLAS_VER_MAJOR) + "." + std::to_string(CUBLAS_VER_MINOR) + ")");
  }
  slot = reinterpret_cast<Fn>(address);
}

}  // namespace

std::vector<std::string> cublas_library_candidates() {
  // $ATELIER_CUBLAS_LIBRARY alone when set: the user asked for that one.
  if (const char* chosen = std::getenv("ATELIER_CUBLAS_LIBRARY"); chosen != nullptr && *chosen != '\0') {
    return {chosen};
  }
  std::vector<std::string> files = {kSoname};
  if (const std::string dir = ATELIER_CUBLAS_DIR; !dir.empty()) files.push_back(dir + "/" + kSoname);
  return files;
}

Cublas load_cublas(const std::vector<std::string>& files) {
  void* library = nullptr;
  std::string opened, reasons;
  for (const std::string& file : files) {
    // RTLD_LOCAL: cuBLAS's symbols stay out of the global namespace (nothing else should bind to them by chance).
    library = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library != nullptr) {
      opened = file;
      break;
    }
    const char* why = dlerror();
    reasons += "\n  " + (why != nullptr ? std::string(why) : file + ": not opened");
  }
  if (library == nullptr) {
    throw Error("cuBLAS could not be loaded (atelier opens it at the first GEMM on the GPU). Tried:" + reasons +
                "\nPut the folder holding " + kSoname +
                " (the CUDA toolkit's lib64, or the nvidia-cublas Python wheel's lib) on LD_LIBRARY_PATH, or set "
                "ATELIER_CUBLAS_LIBRARY to the file");
  }
  Cublas api;
  // Where the loader found it: the file that holds one of its symbols (else the name it was opened by).
  Dl_info info{};
  void* probe = dlsym(library, "cublasGetStatusName");
  api.file = probe != nullptr && dladdr(probe, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : opened;
  try {
    // The real names behind cublas_v2.h's macros (cublasCreate is cublasCreate_v2, and so on).
    resolve(library, api.file, "cublasCreate_v2", api.create);
    resolve(library, api.file, "cublasDestroy_v2", api.destroy);
    resolve(library, api.file, "cublasSetStream_v2", api.set_stream);
    resolve(library, api.file, "cublasSetWorkspace_v2", api.set_workspace);
    resolve(library, api.file, "cublasGemmEx", api.gemm_ex);
    resolve(library, api.file, "cublasGemmStridedBatchedEx", api.gemm_strided_batched_ex);
    resolve(library, api.file, "cublasGetStatusString", api.status_string);
    resolve(library, api.file, "cublasGetStatusName", api.status_name);
  } catch (...) {
    dlclose(library);
    throw;
  }
  return api;  // the library stays open for the process's life
}

const Cublas& cublas_api() {
  // A static whose initialiser throws stays uninitialised: the next call tries again (and fails the same way unless
  // the environment changed), so no caller ever sees a half-filled table.
  static const Cublas api = load_cublas(cublas_library_candidates());
  return api;
}

}  // namespace atelier::cuda
