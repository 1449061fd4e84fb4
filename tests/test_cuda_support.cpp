// Built only with the CUDA backend (ATELIER_CUDA), and needing no device: its support table, asked on the CPU
// (supports() answers from type lists), covers every primitive of backends/primitives.def in float32 and every
// dtype the CPU supports, so a model moves to the GPU with nothing refused; and cuBLAS's loader.
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "backends/backend.h"
#include "backends/cuda/cublas_api.h"
#include "backends/error.h"
#include "tests/test_util.h"

using namespace atelier;

TEST_CASE("the CUDA backend supports every primitive in float32, and every dtype the CPU supports") {
  Backend* cuda = cuda_backend_or_null();
  REQUIRE(cuda != nullptr);
  const Backend& cpu = backend_for(Device::cpu());
  const PrimitiveOp all[] = {
#define X(name, Args) PrimitiveOp::name,
#include "backends/primitives.def"
#undef X
  };
  for (PrimitiveOp op : all) {
    INFO("primitive " << primitive_name(op));
    CHECK(cuda->supports(op, DType::Float32));
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Bool, DType::UInt8}) {
      INFO("dtype " << dtype_name(dtype));
      CHECK(cuda->supports(op, dtype) == cpu.supports(op, dtype));
    }
  }
}

// cuBLAS is opened at the first GEMM on the GPU, not linked (backends/cuda/cublas_api.h). The loader needs no
// device: these run wherever the CUDA build's tests run.
namespace {

std::string load_error(const std::vector<std::string>& files) {
  try {
    cuda::load_cublas(files);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

TEST_CASE("cuBLAS loads from its default files, every entry point resolved") {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  std::vector<std::string> files;
  {
    testing::ScopedEnv unset("ATELIER_CUBLAS_LIBRARY", "");  // empty counts as unset
    files = cuda::cublas_library_candidates();
  }
  REQUIRE(!files.empty());
  CHECK(files.front() == soname);  // the loader's own search first
  const cuda::Cublas api = cuda::load_cublas(files);
  const std::pair<const char*, bool> resolved[] = {
      {"create", api.create != nullptr},
      {"destroy", api.destroy != nullptr},
      {"set_stream", api.set_stream != nullptr},
      {"set_workspace", api.set_workspace != nullptr},
      {"gemm_ex", api.gemm_ex != nullptr},
      {"gemm_strided_batched_ex", api.gemm_strided_batched_ex != nullptr},
      {"status_string", api.status_string != nullptr},
      {"status_name", api.status_name != nullptr},
  };
  for (const auto& entry : resolved) {
    INFO("entry point " << entry.first);
    CHECK(entry.second);
  }
  CHECK(api.file.find(soname) != std::string::npos);
  // A call that needs no device: the entry points are cuBLAS's own.
  CHECK(std::string(api.status_name(CUBLAS_STATUS_NOT_SUPPORTED)) == "CUBLAS_STATUS_NOT_SUPPORTED");
  CHECK(&cuda::cublas_api() == &cuda::cublas_api());  // loaded once
}

TEST_CASE("ATELIER_CUBLAS_LIBRARY names the one file cuBLAS is loaded from") {
  testing::ScopedEnv chosen("ATELIER_CUBLAS_LIBRARY", "/opt/my-cuda/lib64/libcublas.so.13");
  CHECK(cuda::cublas_library_candidates() == std::vector<std::string>{"/opt/my-cuda/lib64/libcublas.so.13"});
}

TEST_CASE("cuBLAS that cannot be loaded is an error naming each file tried and what to set") {
  const std::string message = load_error({"/nonexistent/libcublas.so.7", "libcublas-missing.so.7"});
  CHECK(message.find("cuBLAS could not be loaded") != std::string::npos);
  CHECK(message.find("/nonexistent/libcublas.so.7") != std::string::npos);
  CHECK(message.find("libcublas-missing.so.7") != std::string::npos);
  CHECK(message.find("LD_LIBRARY_PATH") != std::string::npos);
  CHECK(message.find("ATELIER_CUBLAS_LIBRARY") != std::string::npos);
}

TEST_CASE("a library without cuBLAS's entry points is refused, naming the one missing") {
  const std::string message = load_error({"libm.so.6"});
  CHECK(message.find("has no entry point cublasCreate_v2") != std::string::npos);
  CHECK(message.find("libm.so.6") != std::string::npos);
}
