// StoreQueue: runs Store calls where they may block, and turns many small writes into
// few transactions (group commit).
//
// Writes are applied in the order they were queued, and Write never runs a callback
// itself, so a caller may queue writes while holding its own lock: that is how
// JobService keeps the store's order of state changes equal to its own.
//
// For a blocking store (SQLite) the queue owns one writer thread and a small pool of
// reader threads. Each batch the writer takes is one Store::Apply — one transaction,
// one sync — so durability costs one fsync per batch, not per job. For a
// non-blocking store (memory) no thread is started: Write applies the write at once
// (the store then always holds what was written, in order) and queues its callback
// for Drain(), which runs it on the calling thread; reads run inline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "util/thread_pool.h"
#include "store/store.h"

namespace offload {

// Thread-safe. Owns its threads; the destructor applies what is queued, then joins.
class StoreQueue {
 public:
  using WriteDone = std::function<void(Status)>;

  // Borrows `store`, which must outlive the queue.
  explicit StoreQueue(Store* store);
  ~StoreQueue();
  StoreQueue(const StoreQueue&) = delete;
  StoreQueue& operator=(const StoreQueue&) = delete;

  // Queues a write (applies it, for a non-blocking store); never blocks on disk and
  // never calls `done` itself. `done` (may be empty) runs once the write is durable
  // or has failed, in write order: on the writer thread, or in Drain() for a
  // non-blocking store.
  void Write(StoreOp op, WriteDone done);
  // For a non-blocking store, runs the callbacks of the writes made so far on this
  // thread — or, when another thread is running them, leaves this call's to it and
  // returns at once (a lock-free hand-over: no thread waits for another's callbacks).
  // A no-op for a blocking store. REQUIRES: the caller holds no lock that a callback
  // takes. Safe to call from a callback.
  void Drain();
  // Runs `fn` on a reader thread (inline for a non-blocking store).
  void Read(std::function<void()> fn);
  // Blocks until every write queued before the call has been applied.
  void Flush();

  Store& store() { return *store_; }

 private:
  struct Pending {
    StoreOp op;
    WriteDone done;
  };
  // A write a non-blocking store has applied, waiting for Drain to run its callback.
  struct Applied {
    WriteDone done;
    Status result;
  };
  void WriterLoop();
  // Applies `batch` as one transaction, falling back to one op at a time when a
  // single op is at fault, and runs the callbacks.
  void ApplyBatch(std::vector<Pending>* batch);

  // Constant after construction.
  Store* store_;
  const bool threaded_;
  std::unique_ptr<ThreadPool> readers_;

  std::mutex mu_;
  std::condition_variable work_cv_;     // Writes queued, or stopping.
  std::condition_variable flushed_cv_;  // applied_ advanced.
  std::deque<Pending> queue_;           // guarded by mu_
  std::deque<Applied> applied_calls_;   // guarded by mu_; non-blocking store only
  std::vector<StoreOp> one_op_;         // guarded by mu_; reused for one write
  std::uint64_t queued_ = 0;            // guarded by mu_; writes ever queued
  std::uint64_t applied_ = 0;           // guarded by mu_; writes ever applied
  bool stopping_ = false;               // guarded by mu_
  bool draining_ = false;               // guarded by mu_; a Drain() is running
  std::thread writer_;
  std::chrono::steady_clock::time_point last_batch_warning_{};  // Writer thread only.
};

}  // namespace offload
