// Host-to-device uploads (tensor/upload.h): TensorUpload's values and refusals, the refill rule of its two staging
// buffers (checked with a stand-in whose copies run only when told), and the trainer's steps, which send nothing
// up synchronously. The same upload on the CUDA backend is tested in tests/cuda/test_cuda_upload.cpp.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tensor/readback.h"
#include "tensor/upload.h"
#include "tests/began_train_util.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

namespace {

// A batch of `shape` whose values differ with `seed` (and are not all representable in fewer bits).
Tensor batch(const Shape& shape, uint64_t seed) { return uniform(shape, -1, 1, RandomKey{seed, 3, 0}); }

// A HostUpload whose copy runs only when the test (run_copy) or a wait() says so: a stand-in for a device still
// busy with earlier work. Its copy reads the staging buffer when it runs, as a DMA engine does, so a refill
// before the copy ran would show up as the wrong values at the destination.
class DeferredUpload final : public HostUpload {
 public:
  explicit DeferredUpload(size_t bytes) : HostUpload(bytes), buffer_(bytes) {}
  void* staging() override { return buffer_.data(); }
  void start(void* device_dst) override {
    REQUIRE(destination_ == nullptr);  // the caller must have waited for the copy before
    destination_ = device_dst;
  }
  bool done() override { return destination_ == nullptr; }
  void wait() override {
    ++waits;
    run_copy();
  }
  void run_copy() {
    if (destination_ != nullptr) std::memcpy(destination_, buffer_.data(), bytes());
    destination_ = nullptr;
  }
  int waits = 0;

 private:
  std::vector<unsigned char> buffer_;
  void* destination_ = nullptr;
};

struct EndCapture {
  ~EndCapture() {
    Backend& cpu = backend_for(Device::cpu());
    if (cpu.capturing()) cpu.end_capture();
  }
};

}  // namespace

TEST_CASE("tensor upload: batches arrive exactly, each in its own tensor, with no synchronous read or upload") {
  const Shape shape{4, 3, 8, 8};
  TensorUpload up(Device::cpu(), shape, DType::Float32);
  CHECK(up.shape() == shape);
  CHECK(up.dtype() == DType::Float32);
  std::vector<Tensor> sent, arrived;
  for (uint64_t i = 0; i < 5; ++i) {
    sent.push_back(batch(shape, i));
    const uint64_t reads = host_sync_reads(), uploads = host_sync_uploads();
    arrived.push_back(up.upload(sent.back()));
    CHECK(host_sync_reads() == reads);
    CHECK(host_sync_uploads() == uploads);
  }
  // Checked after every upload: a later one must not overwrite an earlier one's tensor.
  for (size_t i = 0; i < sent.size(); ++i) {
    INFO("batch " << i);
    CHECK(arrived[i].shape() == shape);
    CHECK(arrived[i].device() == Device::cpu());
    CHECK(arrived[i].raw_data() != sent[i].raw_data());
    CHECK(arrived[i].to_vector<float>() == sent[i].to_vector<float>());
  }
  CHECK(up.stalls() == 0);  // a copy on the CPU is done when start() returns
  // The counter counts: a copy_from_host is a synchronous upload (on a GPU it may wait for the device).
  const uint64_t before = host_sync_uploads();
  backend_for(Device::cpu()).copy_from_host(arrived[0].raw_data(), sent[1].raw_data(), 4);
  CHECK(host_sync_uploads() == before + 1);

  TensorUpload ints(Device::cpu(), {3}, DType::Int64);
  CHECK(ints.upload(from_vector<int64_t>({-7, 1LL << 40, 3}, {3})).to_vector<int64_t>() ==
        std::vector<int64_t>{-7, 1LL << 40, 3});
}

TEST_CASE("tensor upload: wrong shape, dtype or layout, an undefined tensor and a capture are refused") {
  TensorUpload up(Device::cpu(), {2, 3}, DType::Float32);
  check_throws_with(
      [&] {
        up.upload(zeros({3, 2}));
      },
      {"TensorUpload.upload", "expected float32 [2, 3]", "got float32 [3, 2]"});
  check_throws_with([&] { up.upload(zeros({2, 3}, DType::Float64)); }, {"expected float32 [2, 3]", "got float64"});
  check_throws_with([&] { up.upload(zeros({3, 2}).t()); }, {"float32 [2, 3]", "not contiguous"});
  check_throws_with([&] { up.upload(Tensor()); }, {"undefined tensor", "float32 [2, 3]"});
  {
    EndCapture guard;
    backend_for(Device::cpu()).begin_capture();
    check_throws_with([&] { up.upload(zeros({2, 3})); }, {"TensorUpload.upload", "during a graph capture"});
    UploadPair pair(Device::cpu(), 8);
    check_throws_with([&] { pair.staging(); }, {"UploadPair::staging", "during a graph capture"});
    check_throws_with([&] { pair.start(nullptr); }, {"UploadPair::start", "during a graph capture"});
  }
  // A refused upload changed nothing: the next one works.
  CHECK(up.upload(full({2, 3}, 2.5)).to_vector<float>() == std::vector<float>(6, 2.5f));
  CHECK(up.stalls() == 0);
}

TEST_CASE("tensor upload: a staging buffer is refilled only after its copy has run; the destination is held") {
  const Shape shape{2, 5};
  std::vector<DeferredUpload*> copies;  // owned by the upload
  TensorUpload up(Device::cpu(), shape, DType::Float32, [&](size_t bytes) {
    auto copy = std::make_unique<DeferredUpload>(bytes);
    copies.push_back(copy.get());
    return copy;
  });
  REQUIRE(copies.size() == 2);
  const Tensor a = batch(shape, 1), b = batch(shape, 2), c = batch(shape, 3), d = batch(shape, 4);

  Tensor xa = up.upload(a);  // buffer 0
  Tensor xb = up.upload(b);  // buffer 1; neither copy has run
  CHECK(up.stalls() == 0);
  // The caller drops its tensor while the copy is pending: the upload still holds the memory it will write.
  std::weak_ptr<Storage> b_storage = xb.storage();
  xb = Tensor();
  CHECK_FALSE(b_storage.expired());

  copies[0]->run_copy();  // the device caught up with the first copy
  CHECK(xa.to_vector<float>() == a.to_vector<float>());
  const Tensor xc = up.upload(c);  // buffer 0 again: its copy ran, no wait
  CHECK(up.stalls() == 0);
  CHECK(copies[0]->waits == 0);

  const Tensor xd = up.upload(d);  // buffer 1: b's copy has not run, so the upload waits for it before refilling
  CHECK(up.stalls() == 1);
  CHECK(copies[1]->waits == 1);
  CHECK(b_storage.expired());  // b's copy ran: its destination went back
  copies[0]->run_copy();
  copies[1]->run_copy();
  CHECK(xc.to_vector<float>() == c.to_vector<float>());
  CHECK(xd.to_vector<float>() == d.to_vector<float>());
}

TEST_CASE("tensor upload: b's values reach b's tensor even when the refill had to wait") {
  const Shape shape{6};
  std::vector<DeferredUpload*> copies;
  TensorUpload up(Device::cpu(), shape, DType::Float32, [&](size_t bytes) {
    auto copy = std::make_unique<DeferredUpload>(bytes);
    copies.push_back(copy.get());
    return copy;
  });
  const Tensor a = batch(shape, 11), b = batch(shape, 12), c = batch(shape, 13);
  const Tensor xa = up.upload(a), xb = up.upload(b);
  const Tensor xc = up.upload(c);  // waits for a's copy, which must carry a's values, not c's
  CHECK(up.stalls() == 1);
  CHECK(xa.to_vector<float>() == a.to_vector<float>());
  copies[1]->run_copy();
  copies[0]->run_copy();
  CHECK(xb.to_vector<float>() == b.to_vector<float>());
  CHECK(xc.to_vector<float>() == c.to_vector<float>());
}

TEST_CASE("upload pair: the buffers alternate, and a wrong-sized stand-in is refused") {
  std::vector<DeferredUpload*> copies;
  UploadPair pair(Device::cpu(), 16, [&](size_t bytes) {
    auto copy = std::make_unique<DeferredUpload>(bytes);
    copies.push_back(copy.get());
    return copy;
  });
  CHECK(pair.bytes() == 16);
  CHECK(pair.current() == 0);
  CHECK(pair.staging() == copies[0]->staging());
  double dst[2] = {};
  const double values[2] = {1.25, -3.5};
  std::memcpy(pair.staging(), values, sizeof(values));
  pair.start(dst);
  CHECK(pair.current() == 1);
  CHECK(pair.staging() == copies[1]->staging());
  CHECK(dst[0] == 0);  // the stand-in's copy has not run
  copies[0]->run_copy();
  CHECK(dst[0] == 1.25);
  CHECK(dst[1] == -3.5);
  check_throws_with([] { UploadPair(Device::cpu(), 16, [](size_t) { return std::make_unique<DeferredUpload>(8); }); },
                    {"16 bytes", "got 8"});
}

TEST_CASE("began train: no step sends anything up synchronously, eager or replayed (--cuda-graph on)") {
  // On the CPU the batches need no upload; a replayed step's optimiser constants go up each step, which would be a
  // copy from pageable memory (counted in host_sync_uploads) if they did not go through an UploadPair.
  for (const char* graph : {"off", "on"}) {
    INFO("--cuda-graph " << graph);
    testing::TempDir dir;
    const std::vector<uint64_t> uploads =
        testing::sync_uploads_after_each_step(testing::small_synthetic_config(dir.path, 8, "cpu", graph));
    REQUIRE(uploads.size() == 8);
    CHECK(uploads.back() == uploads.front());
  }
}
