// Uploads to the GPU (tensor/upload.h): batches sent one after another through a TensorUpload (pinned staging
// buffers and events on a GPU) each arrive exactly, with work queued on them in between, and none is a synchronous
// copy; the upload refuses a tensor already on the device; a host copy's start is refused inside a capture; and `began
// train --device cuda` sends every batch up without a synchronous copy, eager or replayed. Run on a GPU, or against the
// emulated backend (scripts/cuda-emulate.sh), which copies at once but whose events answer "not ready" once after each
// record, so uploads 3 to 6 wait for their buffer's event there and must clear the error that leaves
// (tests/test_upload.cpp checks the refill rule itself with a stand-in whose copies lag).
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "backends/backend.h"
#include "backends/cuda/cuda_check.h"
#include "tensor/creation.h"
#include "tensor/readback.h"
#include "tensor/upload.h"
#include "tests/began_train_util.h"
#include "tests/test_util.h"

namespace atelier {
namespace {

TEST_CASE("cuda upload: six batches in a row, each used by queued work, arrive exactly without a sync copy") {
  const Shape shape{4, 3, 8, 8};
  TensorUpload up(Device::cuda(), shape, DType::Float32);
  std::vector<Tensor> sent, arrived, worked;
  const uint64_t reads = host_sync_reads(), uploads = host_sync_uploads();
  for (uint64_t i = 0; i < 6; ++i) {
    sent.push_back(uniform(shape, -1, 1, RandomKey{21, i, 0}));
    arrived.push_back(up.upload(sent.back()));
    worked.push_back(arrived.back() * 2.0 + 1.0);  // queued behind the copy, before the next upload
  }
  CHECK(host_sync_reads() == reads);
  CHECK(host_sync_uploads() == uploads);
  INFO("uploads that waited for a staging buffer: " << up.stalls());
  for (size_t i = 0; i < sent.size(); ++i) {
    INFO("batch " << i);
    CHECK(arrived[i].device() == Device::cuda());
    CHECK(arrived[i].shape() == shape);
    CHECK(arrived[i].to_vector<float>() == sent[i].to_vector<float>());
    CHECK(worked[i].to_vector<float>() == (sent[i] * 2.0 + 1.0).to_vector<float>());
  }
  // The counter counts: to(cuda) from pageable memory is one synchronous upload.
  const uint64_t before = host_sync_uploads();
  (void)sent[0].to(Device::cuda());
  CHECK(host_sync_uploads() == before + 1);
}

TEST_CASE("cuda upload: a tensor already on the device, or of another shape, is refused, naming both") {
  TensorUpload up(Device::cuda(), {2, 3}, DType::Float32);
  testing::check_throws_with(
      [&] {
        up.upload(zeros({2, 3}, DType::Float32, Device::cuda()));
      },
      {"TensorUpload.upload", "float32 [2, 3]", "is on cuda:0", "copies from the cpu"});
  testing::check_throws_with([&] { up.upload(zeros({2, 4})); }, {"expected float32 [2, 3]", "got float32 [2, 4]"});
  CHECK(up.upload(full({2, 3}, -0.75)).to_vector<float>() == std::vector<float>(6, -0.75f));
}

TEST_CASE("cuda upload: began train --device cuda sends its batches up with no synchronous copy") {
  for (const char* graph : {"off", "on"}) {
    INFO("--cuda-graph " << graph);
    testing::TempDir dir;
    const began::TrainConfig c = testing::small_synthetic_config(dir.path, 6, "cuda", graph);
    const std::vector<uint64_t> uploads = testing::sync_uploads_after_each_step(c);
    REQUIRE(uploads.size() == 6);
    CHECK(uploads.back() == uploads.front());
    CHECK(testing::file_lines(began::metrics_path(dir.path)).size() == 7);
  }
}

TEST_CASE("cuda cleanup: a cleanup call's failure is reported and cleared; the next launch and copy succeed") {
  // What a destructor's cudaFree, cudaEventDestroy or cudaFreeHost does when it fails: cudaFreeHost of memory that
  // cudaHostAlloc did not give fails with cudaErrorInvalidValue and leaves it in the runtime's last-error slot,
  // which the next kernel launch's check (and, under the emulation, the next copy) would report as its own.
  int not_pinned = 0;
  ATELIER_CUDA_CLEANUP(cudaFreeHost(&not_pinned));
  const Tensor t = full({1000}, 2.0, DType::Float32, Device::cuda()) * 3.0;
  const std::vector<float> v = t.to_vector<float>();
  CHECK(v.front() == 6.0f);
  CHECK(v.back() == 6.0f);
}

TEST_CASE("cuda host copies: a readback's or an upload's start inside a capture is refused, naming it") {
  Backend& cuda = *cuda_backend_or_null();
  Tensor t = full({4}, 2.0).to(Device::cuda());
  const size_t bytes = 4 * sizeof(float);
  std::unique_ptr<HostReadback> readback = cuda.make_readback(bytes);
  std::unique_ptr<HostUpload> upload = cuda.make_upload(bytes);
  std::string read_error, upload_error;
  cuda.begin_capture();
  try {
    readback->start(t.raw_data());
  } catch (const Error& e) {
    read_error = e.what();
  }
  try {
    upload->start(t.raw_data());
  } catch (const Error& e) {
    upload_error = e.what();
  }
  std::unique_ptr<CapturedGraph> graph = cuda.end_capture();
  CHECK(read_error.find("a host readback's start on cuda during a graph capture") != std::string::npos);
  CHECK(upload_error.find("a host upload's start on cuda during a graph capture") != std::string::npos);
  // Outside a capture the readback runs.
  readback->start(t.raw_data());
  const auto* back = static_cast<const float*>(readback->wait());
  CHECK(std::vector<float>(back, back + 4) == std::vector<float>(4, 2.0f));
}

}  // namespace
}  // namespace atelier
