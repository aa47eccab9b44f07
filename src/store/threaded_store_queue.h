// ThreadedStoreQueue: the StoreQueue of a store that does disk I/O (SQLite,
// PostgreSQL).
//
// Writer threads apply the writes, so no caller waits for the disk: one, or as many as
// the store's writers(), each with the writes of its share of the jobs (by id), so
// that every job's writes stay in order. Each time a writer wakes it takes every write
// queued to it since its last batch (up to kMaxBatch) and applies them as one
// Store::Apply: one transaction and one sync for the batch, however many jobs it holds
// (group commit). While a batch syncs the next one gathers, so the busier the server
// the larger the batches and the fewer syncs per job.
//
// A refused batch is applied again one write at a time, so that only the writes at
// fault fail: a duplicate id, or a large result on a nearly full disk, does not refuse
// another job's submit. Callbacks run on the writer threads, in write order per job.
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

  // Borrows `store`, which must outlive the queue. Starts the writers and readers.
  explicit ThreadedStoreQueue(Store* store);
  ~ThreadedStoreQueue() override;
  ThreadedStoreQueue(const ThreadedStoreQueue&) = delete;
  ThreadedStoreQueue& operator=(const ThreadedStoreQueue&) = delete;

  void Write(StoreOp op, WriteDone done) override;
  void RunCallbacks() override {}
  void Read(std::function<void()> fn) override;
  void WaitForWrites() override;
  StoreWriteStats write_stats() const override LOCKS_EXCLUDED(stats_mu_);

 private:
  struct Pending {
    StoreOp op;
    WriteDone done;
  };
  // One writer thread and the writes queued to it.
  struct Writer {
    Mutex mu;
    CondVar work_cv;      // Writes queued, or stopping.
    CondVar finished_cv;  // finished advanced.
    std::deque<Pending> queue GUARDED_BY(mu);
    std::uint64_t queued GUARDED_BY(mu) = 0;    // Writes ever queued.
    std::uint64_t finished GUARDED_BY(mu) = 0;  // Writes applied whose callback has returned.
    bool stopping GUARDED_BY(mu) = false;
    // Its thread only.
    std::chrono::steady_clock::time_point last_batch_warning{};
    std::thread thread;
  };
  void WriterLoop(Writer* w);
  // Applies `batch` as one transaction, or one op at a time when that is refused,
  // and runs the callbacks. On w's thread only.
  void ApplyBatch(Writer* w, std::vector<Pending>* batch);
  // The results of `ops`, a batch that failed with `why`: each op applied alone, so
  // that only those at fault fail (a duplicate id, a result too large for the disk).
  std::vector<Status> ApplyOneByOne(Writer* w, const std::vector<StoreOp>& ops, const Error& why);
  // The results of `ops`, a batch refused for a tenant's max_queued (which PostgreSQL
  // counts in the batch's transaction): the inserts under a quota, and the other ops
  // of their jobs, alone, each counted for itself; the rest of the batch together, so
  // that a tenant at its quota does not cost everyone else a transaction per write.
  std::vector<Status> ApplyAroundQuotas(Writer* w, const std::vector<StoreOp>& ops);

  // Constant after construction (each Writer's thread is started last, once every
  // writer exists).
  Store* const store_;
  std::unique_ptr<ThreadPool> readers_;
  std::vector<std::unique_ptr<Writer>> writers_;
  mutable Mutex stats_mu_;
  StoreWriteStats stats_ GUARDED_BY(stats_mu_);

  // Writes queued to any writer whose callback has not returned: a callback's write
  // counts before its own ends, so 0 means that no write is left and none can come.
  Mutex outstanding_mu_;
  CondVar drained_cv_;  // outstanding_ reached 0.
  std::uint64_t outstanding_ GUARDED_BY(outstanding_mu_) = 0;
};

}  // namespace offload
