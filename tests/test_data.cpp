// Data loading: IDX files (plain and gzip, and their error messages), Fashion-MNIST's padding and scaling on small
// generated files, Dataset/TensorDataset batching, and the DataLoader's epochs: coverage, drop_last, seeded
// shuffles, resuming at a batch, prefetching that changes nothing, errors from the prefetch thread, clean stops.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <zlib.h>

#include "atelier.h"
#include "began/data/fashion_mnist.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

namespace {

nn::IdxArray make_idx(std::vector<int64_t> dims, int seed = 0) {
  nn::IdxArray a;
  a.dims = std::move(dims);
  int64_t n = 1;
  for (int64_t d : a.dims) n *= d;
  for (int64_t i = 0; i < n; ++i) a.data.push_back(static_cast<uint8_t>((i * 7 + seed) % 256));
  return a;
}

// Fashion-MNIST-shaped files in `dir`: n images whose pixel (y, x) of image i is (i * 31 + y * 28 + x) % 256, and
// labels i % 10.
void write_fake_fashion_mnist(const std::string& dir, const std::string& prefix, int64_t n, bool gzip = true) {
  nn::IdxArray images{{n, 28, 28}, {}}, labels{{n}, {}};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < 28 * 28; ++p) images.data.push_back(static_cast<uint8_t>((i * 31 + p) % 256));
    labels.data.push_back(static_cast<uint8_t>(i % 10));
  }
  const std::string ext = gzip ? ".gz" : "";
  nn::write_idx(dir + "/" + prefix + "-images-idx3-ubyte" + ext, images, gzip);
  nn::write_idx(dir + "/" + prefix + "-labels-idx1-ubyte" + ext, labels, gzip);
}

// n examples: data row i = (2i, 2i + 1) as float32, target i as int64.
std::shared_ptr<nn::TensorDataset> numbered_dataset(int64_t n) {
  return std::make_shared<nn::TensorDataset>(arange(0, static_cast<double>(2 * n), 1).reshape({n, 2}), arange(n));
}

// The example indices a batch holds (its targets), checking that each data row matches its target.
std::vector<int64_t> indices_of(const nn::Batch& b) {
  std::vector<int64_t> idx = b.target.to_vector<int64_t>();
  std::vector<float> data = b.data.to_vector<float>();
  REQUIRE(data.size() == 2 * idx.size());
  for (size_t r = 0; r < idx.size(); ++r) {
    CHECK(data[2 * r] == static_cast<float>(2 * idx[r]));
    CHECK(data[2 * r + 1] == static_cast<float>(2 * idx[r] + 1));
  }
  return idx;
}

// Every batch of one epoch (from start_batch), as (index, example indices).
std::vector<std::pair<int64_t, std::vector<int64_t>>> run_epoch(const nn::DataLoader& loader, int64_t epoch,
                                                                int64_t start_batch = 0) {
  std::vector<std::pair<int64_t, std::vector<int64_t>>> out;
  for (nn::Batch& b : loader.epoch(epoch, start_batch)) out.emplace_back(b.index, indices_of(b));
  return out;
}

// A data set that sleeps in get() and can fail at one index: for prefetch-thread tests.
class SlowDataset : public nn::Dataset {
 public:
  SlowDataset(int64_t n, int sleep_ms, int64_t fail_at = -1) : n_(n), sleep_ms_(sleep_ms), fail_at_(fail_at) {}
  int64_t size() const override { return n_; }
  nn::Example get(int64_t i) const override {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    ATELIER_CHECK(i != fail_at_, "SlowDataset: example " << i << " is broken");
    return {full({2}, static_cast<double>(i)), Tensor()};
  }
  mutable std::atomic<int64_t> calls{0};

 private:
  int64_t n_;
  int sleep_ms_;
  int64_t fail_at_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// IDX

TEST_CASE("idx: plain and gzip files round trip through write_idx and read_idx") {
  TempDir dir;
  for (bool gzip : {false, true}) {
    INFO("gzip " << gzip);
    const std::string path = dir.file(gzip ? "a.idx.gz" : "a.idx");
    nn::IdxArray a = make_idx({3, 4, 5});
    nn::write_idx(path, a, gzip);
    const std::string bytes = read_bytes(path);
    if (gzip) {
      CHECK(static_cast<unsigned char>(bytes[0]) == 0x1f);  // the gzip magic
      CHECK(static_cast<unsigned char>(bytes[1]) == 0x8b);
    } else {
      CHECK(bytes.size() == 4 + 3 * 4 + 60);
      CHECK(bytes.substr(0, 8) == std::string("\x00\x00\x08\x03\x00\x00\x00\x03", 8));  // magic, big-endian 3
    }
    nn::IdxArray b = nn::read_idx(path);
    CHECK(b.dims == a.dims);
    CHECK(b.data == a.data);
  }
  // A 1-d array (labels) and an empty one.
  nn::write_idx(dir.file("l.gz"), make_idx({7}), true);
  CHECK(nn::read_idx(dir.file("l.gz")).data == make_idx({7}).data);
  nn::write_idx(dir.file("e"), make_idx({0, 28, 28}), false);
  CHECK(nn::read_idx(dir.file("e")).dims == std::vector<int64_t>{0, 28, 28});
}

TEST_CASE("idx: malformed files are refused with the file name and the fault") {
  TempDir dir;
  const std::string path = dir.file("bad.idx");
  auto header = [](uint8_t type, uint8_t ndim, std::vector<uint32_t> dims) {
    std::string s = {'\0', '\0', static_cast<char>(type), static_cast<char>(ndim)};
    for (uint32_t d : dims) {
      for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(d >> shift));
    }
    return s;
  };

  check_throws_with([&] { nn::read_idx(dir.file("missing.gz")); }, {dir.file("missing.gz"), "No such file"});
  write_bytes(path, "");
  check_throws_with([&] { nn::read_idx(path); }, {path, "truncated: shorter than the 4-byte magic"});
  write_bytes(path, std::string("\x01\x02\x08\x01\x00\x00\x00\x01x", 9));
  check_throws_with([&] { nn::read_idx(path); }, {path, "bad magic number", "not an IDX file"});
  write_bytes(path, header(0x0D, 1, {1}) + "abcd");  // float32 IDX
  check_throws_with([&] { nn::read_idx(path); }, {path, "element type 0xd is not supported", "0x08"});
  write_bytes(path, header(0x08, 0, {}));
  check_throws_with([&] { nn::read_idx(path); }, {path, "0 dimensions"});
  write_bytes(path, header(0x08, 3, {2, 2}));
  check_throws_with([&] { nn::read_idx(path); }, {path, "truncated: the header ends before its 3 dimensions"});
  write_bytes(path, header(0x08, 2, {2, 3}) + "12345");
  check_throws_with([&] { nn::read_idx(path); }, {path, "truncated: the dimensions promise 6 bytes", "holds 5"});
  write_bytes(path, header(0x08, 1, {2}) + "123");
  check_throws_with([&] { nn::read_idx(path); }, {path, "bytes after the 2 bytes of data"});
  write_bytes(path, header(0x08, 4, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 2}));
  check_throws_with([&] { nn::read_idx(path); }, {path, "more than 2^62 elements"});

  // Claims far past the file's size are refused before anything is allocated (a 12-byte file claiming 2^30 bytes
  // and more, up to 2^62), naming the file and both sizes.
  write_bytes(path, header(0x08, 2, {1u << 15, 1u << 15}));
  check_throws_with([&] { nn::read_idx(path); },
                    {path, "truncated: the dimensions promise 1073741824 bytes", "holds 0 (12 bytes in all)"});
  write_bytes(path, header(0x08, 3, {0xFFFF, 0xFFFF, 1u << 20}) + "abc");
  check_throws_with([&] { nn::read_idx(path); }, {path, "the file holds 3 (19 bytes in all)"});
  write_bytes(path, header(0x08, 2, {1u << 31, 1u << 31}));
  check_throws_with([&] { nn::read_idx(path); }, {path, "promise 4611686018427387904 bytes"});
  // The same claims gzip-compressed: the stream is read in bounded chunks, so the buffer holds only what arrived.
  const std::string gz_claim = dir.file("claim.gz");
  for (const uint32_t d : {1u << 15, 1u << 31}) {
    const std::string plain = header(0x08, 2, {d, d}) + "abcd";
    {
      gzFile g = gzopen(gz_claim.c_str(), "wb");
      REQUIRE(g != nullptr);
      REQUIRE(gzwrite(g, plain.data(), static_cast<unsigned>(plain.size())) == static_cast<int>(plain.size()));
      REQUIRE(gzclose(g) == Z_OK);
    }
    check_throws_with([&] { nn::read_idx(gz_claim); }, {gz_claim, "truncated", "the gzip stream holds 4"});
  }

  // A gzip stream cut short (the last half of a compressed file missing) and one with a corrupt body.
  const std::string gz = dir.file("cut.gz");
  nn::write_idx(gz, make_idx({50, 28, 28}, 3), true);
  std::string bytes = read_bytes(gz);
  write_bytes(gz, bytes.substr(0, bytes.size() / 2));
  check_throws_with([&] { nn::read_idx(gz); }, {gz});
  for (size_t i = 20; i < bytes.size() - 8; ++i) bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  write_bytes(gz, bytes);
  check_throws_with([&] { nn::read_idx(gz); }, {gz});

  check_throws_with(
      [&] {
        nn::write_idx(path, nn::IdxArray{{2, 2}, {1, 2, 3}}, false);
      },
      {path, "the dimensions hold 4 elements, the data 3"});
}

// ---------------------------------------------------------------------------------------------------------------
// Fashion-MNIST

TEST_CASE("fashion-mnist: images are padded by 2 pixels of raw 0 to 32x32 and scaled x / 127.5 - 1") {
  TempDir dir;
  write_fake_fashion_mnist(dir.path, "train", 5);
  began::FashionMnist fm = began::load_fashion_mnist(dir.path, true);
  REQUIRE(fm.images.shape() == Shape{5, 1, 32, 32});
  CHECK(fm.images.dtype() == DType::Float32);
  REQUIRE(fm.labels.shape() == Shape{5});
  CHECK(fm.labels.dtype() == DType::Int64);
  CHECK(fm.labels.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});

  const std::vector<float> px = fm.images.to_vector<float>();
  auto at = [&](int64_t i, int64_t y, int64_t x) { return px[static_cast<size_t>((i * 32 + y) * 32 + x)]; };
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        const bool border = y < 2 || y >= 30 || x < 2 || x >= 30;
        const int raw = border ? 0 : static_cast<int>((i * 31 + (y - 2) * 28 + (x - 2)) % 256);
        if (at(i, y, x) != static_cast<float>(raw / 127.5 - 1.0)) {
          FAIL_CHECK("pixel (" << i << ", " << y << ", " << x << ") = " << at(i, y, x) << ", raw " << raw);
        }
      }
    }
  }
  CHECK(at(0, 0, 0) == -1.0f);  // corner: padding
  CHECK(at(4, 31, 31) == -1.0f);
  CHECK(at(0, 2, 2) == -1.0f);                                   // image 0, pixel (0, 0): raw 0
  CHECK(at(0, 2, 3) == static_cast<float>(1.0 / 127.5 - 1.0));   // raw 1
  CHECK(at(1, 2, 2) == static_cast<float>(31.0 / 127.5 - 1.0));  // raw 31
  CHECK(at(0, 2 + 9, 2 + 3) == 1.0f);                            // pixel 9 * 28 + 3 = 255: raw 255 -> exactly 1

  // limit, the test split, and uncompressed files.
  CHECK(began::load_fashion_mnist(dir.path, true, 3).images.shape() == Shape{3, 1, 32, 32});
  CHECK(began::load_fashion_mnist(dir.path, true, 0).labels.shape() == Shape{0});
  CHECK(began::load_fashion_mnist(dir.path, true, 99).labels.shape() == Shape{5});
  write_fake_fashion_mnist(dir.path, "t10k", 2, /*gzip=*/false);
  began::FashionMnist test = began::load_fashion_mnist(dir.path, false);
  CHECK(test.images.shape() == Shape{2, 1, 32, 32});
  CHECK(test.images.to_vector<float>() == began::load_fashion_mnist(dir.path, true, 2).images.to_vector<float>());
}

TEST_CASE("fashion-mnist: missing or inconsistent files give clear errors") {
  TempDir dir;
  // Missing: the message names the file and the Debian package.
  check_throws_with([&] { began::load_fashion_mnist(dir.file("nowhere")); },
                    {dir.file("nowhere") + "/train-images-idx3-ubyte.gz", "not found",
                     "install the Debian package dataset-fashion-mnist", "apt-get install dataset-fashion-mnist"});
  CHECK(std::string(began::kFashionMnistDir) == "/usr/share/datasets/fashion-mnist");

  nn::write_idx(dir.file("train-images-idx3-ubyte.gz"), make_idx({3, 28, 28}), true);
  check_throws_with([&] { began::load_fashion_mnist(dir.path); }, {"train-labels-idx1-ubyte.gz", "not found"});
  nn::write_idx(dir.file("train-labels-idx1-ubyte.gz"), nn::IdxArray{{2}, {0, 1}}, true);
  check_throws_with([&] { began::load_fashion_mnist(dir.path); }, {"holds 3 images but", "2 labels"});
  nn::write_idx(dir.file("train-labels-idx1-ubyte.gz"), nn::IdxArray{{3}, {0, 10, 1}}, true);
  check_throws_with([&] { began::load_fashion_mnist(dir.path); }, {"label 10 of example 1"});
  nn::write_idx(dir.file("train-images-idx3-ubyte.gz"), make_idx({3, 27, 28}), true);
  check_throws_with([&] { began::load_fashion_mnist(dir.path); }, {"[3, 27, 28]", "not (N, 28, 28) images"});
}

// ---------------------------------------------------------------------------------------------------------------
// Dataset and DataLoader

TEST_CASE("dataset: TensorDataset examples and batches, and the default stacking get_batch") {
  auto ds = numbered_dataset(6);
  CHECK(ds->size() == 6);
  nn::Example ex = ds->get(4);
  CHECK(ex.data.to_vector<float>() == std::vector<float>{8, 9});
  CHECK(ex.target.item<int64_t>() == 4);
  CHECK(ex.target.shape() == Shape{});
  ex.data.fill_(-1);  // a copy: the data set is unchanged
  CHECK(ds->get(4).data.to_vector<float>() == std::vector<float>{8, 9});
  nn::Batch b = ds->get_batch({5, 0, 5});
  CHECK(b.data.shape() == Shape{3, 2});
  CHECK(indices_of(b) == std::vector<int64_t>{5, 0, 5});
  check_throws_with([&] { ds->get_batch({6}); }, {"index 6 out of range"});
  check_throws_with([&] { ds->get(-1); }, {"index -1 out of range"});
  check_throws_with([&] { nn::TensorDataset(ones({3, 2}), ones({4})); }, {"targets [4] do not match data [3, 2]"});

  // The base class's get_batch stacks get(); no targets gives an undefined batch target.
  SlowDataset slow(4, 0);
  nn::Batch s = slow.nn::Dataset::get_batch({3, 1});
  CHECK(s.data.shape() == Shape{2, 2});
  CHECK(s.data.to_vector<float>() == std::vector<float>{3, 3, 1, 1});
  CHECK_FALSE(s.target.defined());
  // The same through TensorDataset's base implementation.
  nn::Batch viaBase = ds->nn::Dataset::get_batch({2, 3});
  nn::Batch fast = ds->get_batch({2, 3});
  CHECK(viaBase.data.to_vector<float>() == fast.data.to_vector<float>());
  CHECK(viaBase.target.to_vector<int64_t>() == fast.target.to_vector<int64_t>());
}

TEST_CASE("dataloader: each epoch covers the data set once, in batches; drop_last drops the short batch") {
  auto ds = numbered_dataset(10);
  for (bool shuffle : {false, true}) {
    for (bool drop_last : {false, true}) {
      INFO("shuffle " << shuffle << ", drop_last " << drop_last);
      nn::DataLoader loader(ds, {.batch_size = 3, .shuffle = shuffle, .drop_last = drop_last, .seed = 5});
      CHECK(loader.num_batches() == (drop_last ? 3 : 4));
      auto batches = run_epoch(loader, 0);
      REQUIRE(static_cast<int64_t>(batches.size()) == loader.num_batches());
      std::multiset<int64_t> seen;
      for (size_t b = 0; b < batches.size(); ++b) {
        CHECK(batches[b].first == static_cast<int64_t>(b));
        CHECK(batches[b].second.size() == (b == 3 ? 1u : 3u));
        seen.insert(batches[b].second.begin(), batches[b].second.end());
      }
      CHECK(seen.size() == (drop_last ? 9u : 10u));
      CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == seen.size());  // no repeats
      if (!shuffle) {
        CHECK(batches[0].second == std::vector<int64_t>{0, 1, 2});
        CHECK(batches[2].second == std::vector<int64_t>{6, 7, 8});
      }
    }
  }
  nn::DataLoader exact(ds, {.batch_size = 5, .drop_last = true});
  CHECK(exact.num_batches() == 2);
  nn::DataLoader one(ds, {.batch_size = 64});
  CHECK(one.num_batches() == 1);
  CHECK(run_epoch(one, 0)[0].second.size() == 10);
  nn::DataLoader none(ds, {.batch_size = 64, .drop_last = true});
  CHECK(none.num_batches() == 0);
  CHECK(run_epoch(none, 0).empty());
}

TEST_CASE("dataloader: shuffles are keyed by (seed, epoch): same seed same order, other epochs other orders") {
  auto ds = numbered_dataset(50);
  nn::DataLoaderOptions opt{.batch_size = 8, .shuffle = true, .seed = 42};
  nn::DataLoader a(ds, opt), b(ds, opt);
  CHECK(run_epoch(a, 0) == run_epoch(b, 0));
  CHECK(run_epoch(a, 3) == run_epoch(b, 3));
  CHECK(a.order(0) != a.order(1));
  CHECK(a.order(1) != a.order(2));
  opt.seed = 43;
  CHECK(nn::DataLoader(ds, opt).order(0) != a.order(0));
  // A permutation, not the identity.
  std::vector<int64_t> order = a.order(7);
  CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 50);
  CHECK(*std::min_element(order.begin(), order.end()) == 0);
  CHECK(*std::max_element(order.begin(), order.end()) == 49);
  std::vector<int64_t> identity(50);
  for (int64_t i = 0; i < 50; ++i) identity[static_cast<size_t>(i)] = i;
  CHECK(order != identity);
  CHECK(nn::DataLoader(ds, {.batch_size = 8}).order(3) == identity);
  // Pinned: a checkpoint resumed by a later build must see the same order (Philox words and Fisher-Yates fixed).
  // The value was reproduced independently by a 20-line Python Philox4x32-10 + Fisher-Yates.
  nn::DataLoader small(numbered_dataset(8), {.shuffle = true, .seed = 0});
  std::vector<int64_t> pinned = small.order(0);
  MESSAGE("order(seed 0, epoch 0, n 8) = " << shape_str(pinned));
  CHECK(pinned == std::vector<int64_t>{6, 7, 1, 4, 3, 0, 2, 5});
  check_throws_with([&] { a.order(-1); }, {"epoch must be >= 0"});
}

TEST_CASE("dataloader: starting an epoch at batch i gives exactly the tail of the uninterrupted epoch") {
  auto ds = numbered_dataset(23);
  nn::DataLoader loader(ds, {.batch_size = 4, .shuffle = true, .seed = 9, .prefetch = 3});
  auto full = run_epoch(loader, 2);
  REQUIRE(full.size() == 6);
  for (int64_t start = 0; start <= 6; ++start) {
    auto tail = run_epoch(loader, 2, start);
    CHECK(tail == decltype(full)(full.begin() + start, full.end()));
  }
  check_throws_with([&] { loader.epoch(2, 7); }, {"start_batch 7 out of range [0, 6]"});
  check_throws_with([&] { loader.epoch(2, -1); }, {"start_batch -1 out of range"});
}

TEST_CASE("dataloader: prefetching changes nothing: identical batches with depth 0, 1 and 4") {
  auto ds = numbered_dataset(37);
  std::vector<std::vector<std::string>> runs;
  for (int64_t depth : {0, 1, 4}) {
    nn::DataLoader loader(ds, {.batch_size = 5, .shuffle = true, .seed = 1, .prefetch = depth});
    std::vector<std::string> bytes;
    for (int64_t e = 0; e < 3; ++e) {
      nn::Epoch epoch = loader.epoch(e);
      while (std::optional<nn::Batch> b = epoch.next()) {
        std::vector<float> d = b->data.to_vector<float>();
        bytes.emplace_back(reinterpret_cast<const char*>(d.data()), d.size() * sizeof(float));
      }
      CHECK_FALSE(epoch.next().has_value());  // stays finished
    }
    runs.push_back(bytes);
  }
  CHECK(runs[0] == runs[1]);
  CHECK(runs[0] == runs[2]);
}

TEST_CASE("dataloader: an Epoch destroyed mid-epoch stops its prefetch thread without hanging") {
  // 40 batches of 5 ms each: finishing the epoch would take 200+ ms per epoch; stopping must not wait for it.
  auto ds = std::make_shared<SlowDataset>(40, 5);
  nn::DataLoader loader(ds, {.batch_size = 1, .prefetch = 2});
  const auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 5; ++rep) {
    nn::Epoch epoch = loader.epoch(0);
    REQUIRE(epoch.next().has_value());
  }  // destroyed after one batch, with a full queue and the thread waiting (or building)
  {
    nn::Epoch untouched = loader.epoch(0);  // destroyed before any next()
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(seconds < 1.0);
  // The thread built at most a few batches ahead each time, never the whole epoch.
  CHECK(ds->calls.load() < 6 * 10);

  // Moving an Epoch keeps its thread running; the moved-from Epoch refuses next().
  nn::Epoch moved = loader.epoch(0, 35);
  nn::Epoch target = std::move(moved);
  int64_t count = 0;
  while (target.next()) ++count;
  CHECK(count == 5);
  check_throws_with([&] { moved.next(); }, {"moved from"});
  // The loader may go first: the Epoch holds the data set.
  std::optional<nn::Epoch> outlives;
  {
    nn::DataLoader temporary(numbered_dataset(4), {.batch_size = 2});
    outlives.emplace(temporary.epoch(0));
  }
  CHECK(outlives->next()->index == 0);
}

TEST_CASE("dataloader: an error while building a batch is rethrown to the consumer, with or without prefetch") {
  for (int64_t depth : {0, 2}) {
    INFO("prefetch " << depth);
    auto ds = std::make_shared<SlowDataset>(10, 0, /*fail_at=*/6);
    nn::DataLoader loader(ds, {.batch_size = 2, .prefetch = depth});
    nn::Epoch epoch = loader.epoch(0);
    for (int b = 0; b < 3; ++b) CHECK(epoch.next()->index == b);  // examples 0-5 are fine
    check_throws_with([&] { epoch.next(); }, {"SlowDataset: example 6 is broken"});
    check_throws_with([&] { epoch.next(); }, {"example 6 is broken"});  // and again: the epoch is failed
  }
  check_throws_with([] { nn::DataLoader(nullptr); }, {"dataset is null"});
  check_throws_with([] { nn::DataLoader(numbered_dataset(3), {.batch_size = 0}); }, {"batch_size must be >= 1"});
  check_throws_with([] { nn::DataLoader(std::make_shared<SlowDataset>(0, 0)); }, {"dataset is empty"});
}
