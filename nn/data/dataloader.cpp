// DataLoader: the per-epoch Philox permutation, and Epoch's prefetch thread with its bounded queue.
#include "nn/data/dataloader.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "backends/error.h"
#include "backends/philox.h"

namespace atelier::nn {
namespace {

// The Philox stream of epoch e's shuffle is this tag ^ e: far from stream 0, which the default generator (model
// initialisation, noise) uses, so a loader seeded like the model still draws unrelated numbers.
constexpr uint64_t kShuffleStreamTag = 0x5348554646000000ull;  // "SHUFF"

}  // namespace

// Everything one epoch needs, owned by the Epoch and shared with its prefetch thread (which only reads the fields
// above the mutex, and touches the queue fields under it).
struct Epoch::State {
  std::shared_ptr<const Dataset> dataset;
  std::vector<int64_t> order;
  int64_t epoch = 0;  // passed to the dataset (Dataset::batch_for_epoch)
  int64_t batch_size = 1;
  int64_t next_batch = 0;  // the consumer's position
  int64_t end_batch = 0;   // one past the last batch
  int64_t depth = 0;       // queue capacity; 0: no thread

  struct Item {
    Batch batch;
    std::exception_ptr error;
  };
  std::mutex mutex;
  std::condition_variable not_empty, not_full;
  std::deque<Item> queue;
  bool stop = false;
  std::exception_ptr failed;  // set once a batch failed: every later next() rethrows it
  std::thread thread;

  Batch build(int64_t b) const {
    const int64_t n = static_cast<int64_t>(order.size());
    const int64_t begin = b * batch_size, end = std::min(n, begin + batch_size);
    std::vector<int64_t> indices(order.begin() + begin, order.begin() + end);
    Batch batch = dataset->batch_for_epoch(epoch, indices);
    batch.index = b;
    return batch;
  }

  // The prefetch thread: builds batches in order into the queue, waiting while it is full. It stops at the end of
  // the epoch, after the first failure (which it queues for the consumer), or when asked to.
  void produce(int64_t first) {
    for (int64_t b = first; b < end_batch; ++b) {
      Item item;
      try {
        item.batch = build(b);
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed_here = item.error != nullptr;
      std::unique_lock<std::mutex> lock(mutex);
      not_full.wait(lock, [&] { return stop || static_cast<int64_t>(queue.size()) < depth; });
      if (stop) return;
      queue.push_back(std::move(item));
      not_empty.notify_one();
      if (failed_here) return;
    }
  }

  void shutdown() {
    if (!thread.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    not_full.notify_all();
    thread.join();
  }
};

Epoch::Epoch(std::unique_ptr<State> state) : state_(std::move(state)) {
  if (state_->depth > 0 && state_->next_batch < state_->end_batch) {
    State* s = state_.get();  // stable: State lives on the heap, so moving the Epoch does not move it
    s->thread = std::thread([s, first = s->next_batch] { s->produce(first); });
  }
}

Epoch::Epoch(Epoch&&) noexcept = default;

Epoch& Epoch::operator=(Epoch&& other) noexcept {
  if (this != &other) {
    if (state_) state_->shutdown();
    state_ = std::move(other.state_);
  }
  return *this;
}

Epoch::~Epoch() {
  if (state_) state_->shutdown();
}

std::optional<Batch> Epoch::next() {
  ATELIER_CHECK(state_ != nullptr, "Epoch::next: this Epoch was moved from");
  State& s = *state_;
  if (s.failed) std::rethrow_exception(s.failed);
  if (s.next_batch >= s.end_batch) return std::nullopt;
  if (s.depth == 0) {
    try {
      Batch batch = s.build(s.next_batch);
      ++s.next_batch;
      return batch;
    } catch (...) {
      s.failed = std::current_exception();
      throw;
    }
  }
  State::Item item;
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    s.not_empty.wait(lock, [&] { return !s.queue.empty(); });
    item = std::move(s.queue.front());
    s.queue.pop_front();
  }
  s.not_full.notify_one();
  if (item.error) {
    s.failed = item.error;
    std::rethrow_exception(item.error);
  }
  ++s.next_batch;
  return std::move(item.batch);
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  ATELIER_CHECK(dataset_ != nullptr, "DataLoader: the dataset is null");
  ATELIER_CHECK(dataset_->size() >= 1, "DataLoader: the dataset is empty");
  ATELIER_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got " << options_.batch_size);
  ATELIER_CHECK(options_.prefetch >= 0, "DataLoader: prefetch must be >= 0, got " << options_.prefetch);
}

int64_t DataLoader::num_batches() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  ATELIER_CHECK(epoch >= 0, "DataLoader::order: epoch must be >= 0, got " << epoch);
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  if (!options_.shuffle) return order;
  // Fisher-Yates from the back. Draw k uses 64 bits: words 2(k%2) and 2(k%2)+1 of Philox block k/2. j is the top
  // 64 bits of r * (i + 1) (Lemire's multiply-shift), uniform in [0, i] up to a bias below n / 2^64.
  const uint64_t stream = kShuffleStreamTag ^ static_cast<uint64_t>(epoch);
  uint64_t k = 0;
  for (int64_t i = n - 1; i > 0; --i, ++k) {
    PhiloxBlock block = philox4x32_10(options_.seed, stream, k / 2);
    const int w = static_cast<int>(2 * (k % 2));
    const uint64_t r = (static_cast<uint64_t>(block.w[w]) << 32) | block.w[w + 1];
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

Epoch DataLoader::epoch(int64_t epoch, int64_t start_batch) const {
  const int64_t batches = num_batches();
  ATELIER_CHECK(start_batch >= 0 && start_batch <= batches,
                "DataLoader::epoch: start_batch " << start_batch << " out of range [0, " << batches << "]");
  auto state = std::make_unique<Epoch::State>();
  state->dataset = dataset_;
  state->order = order(epoch);
  state->epoch = epoch;
  state->batch_size = options_.batch_size;
  state->next_batch = start_batch;
  state->end_batch = batches;
  state->depth = options_.prefetch;
  return Epoch(std::move(state));
}

}  // namespace atelier::nn
