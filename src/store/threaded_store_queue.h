// ThreadedStoreQueue: the StoreQueue of a store that does disk I/O (SQLite).
//
// One writer thread applies the writes, so no caller waits for the disk. Each time it
// wakes it takes every write queued since its last batch (up to kMaxBatch) and applies
// them as one Store::Apply: one transaction and one sync for the batch, however many
// jobs it holds (group commit). While a batch syncs the next one gathers, so the
// busier the server the larger the batches and the fewer syncs per job.
//
// A refused batch is applied again one write at a time, so that only the writes at
// fault fail: a duplicate id, or a large result on a nearly full disk, does not refuse
// another job's submit. Callbacks run on the writer thread, in write order.
//
// Reads run on a pool of two reader threads, beside the writer (SQLite's WAL lets
// them read while a batch commits).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "store/store_queue.h"
#include "util/mutex.h"

namespace offload {

class ThreadPool;

// Thread-safe. Owns its threads.
class ThreadedStoreQueue final : public StoreQueue {
 public:
  // A larger batch is split: this bounds the wait of the first write in it.
  static constexpr std::size_t kMaxBatch = 4096;

  // Borrows `store`, which must outlive the queue. Starts the writer and readers.
  explicit ThreadedStoreQueue(Store* store);
  ~ThreadedStoreQueue() override;
  ThreadedStoreQueue(const ThreadedStoreQueue&) = delete;
  ThreadedStoreQueue& operator=(const ThreadedStoreQueue&) = delete;

  void Write(StoreOp op, WriteDone done) override;
  void RunCallbacks() override {}
  void Read(std::function<void()> fn) override;
  void WaitForWrites() override;

 private:
  struct Pending {
    StoreOp op;
    WriteDone done;
  };
  void WriterLoop();
  // Applies `batch` as one transaction, or one op at a time when that is refused,
  // and runs the callbacks. Writer thread only.
  void ApplyBatch(std::vector<Pending>* batch);

  // Constant after construction.
  Store* const store_;
  std::unique_ptr<ThreadPool> readers_;

  Mutex mu_;
  CondVar work_cv_;      // Writes queued, or stopping.
  CondVar finished_cv_;  // finished_ advanced.
  std::deque<Pending> queue_ GUARDED_BY(mu_);
  std::uint64_t queued_ GUARDED_BY(mu_) = 0;    // Writes ever queued.
  std::uint64_t finished_ GUARDED_BY(mu_) = 0;  // Writes applied whose callback has returned.
  bool stopping_ GUARDED_BY(mu_) = false;

  // Writer thread only.
  std::chrono::steady_clock::time_point last_batch_warning_{};
  // Started last in the constructor, once every member above exists.
  std::thread writer_;
};

}  // namespace offload
