// StoreQueue: runs Store calls where they may block, and turns many small writes into
// few transactions (group commit).
//
// Each job's writes are applied in the order they were queued (a store with one
// writer keeps that order across jobs too), and Write never runs a callback itself,
// so a caller may queue writes while holding its own lock: that is how JobService
// keeps the store's order of a job's state changes equal to its own.
//
// Two implementations, picked by Create from Store::blocking():
// - ThreadedStoreQueue, for a store that does disk I/O (SQLite, PostgreSQL): a writer
//   thread (one per Store::writers(), each with its share of the jobs) takes every
//   write queued to it since its last batch and applies them as one Store::Apply (one
//   transaction, one sync), so durability costs one fsync per batch, not per job;
//   reads run on a small pool of reader threads.
// - InlineStoreQueue, for a store that does not block (memory): Write applies the
//   write at once, so the store always holds what was written, in order, and queues
//   its callback for RunCallbacks(), which runs it on the calling thread; reads run inline.
#pragma once

#include <functional>
#include <memory>

#include "metrics/histogram.h"
#include "store/store.h"

namespace offload {

// What GET /metrics shows of a queue's writes: one observation per transaction.
struct StoreWriteStats {
  StoreWriteStats();
  Histogram batch_size;              // Writes per transaction (a job's writes coalesced count once).
  Histogram batch_seconds;           // How long a transaction took, its sync included.
  std::uint64_t failed_batches = 0;  // Transactions the store refused (then applied one write at a time).
};

// Thread-safe.
class StoreQueue {
 public:
  using WriteDone = std::function<void(Status)>;

  // A ThreadedStoreQueue when `store` is blocking(), an InlineStoreQueue otherwise.
  // Borrows `store`, which must outlive the queue.
  static std::unique_ptr<StoreQueue> Create(Store* store);

  // Applies every write queued, including those its callbacks queue meanwhile, and
  // runs their callbacks; then runs the reads queued; then returns. REQUIRES: no read
  // queues a write once the destructor has begun (it would not be applied).
  virtual ~StoreQueue() = default;

  // Queues a write; never blocks on disk and never calls `done` itself. `done` (may
  // be empty) runs once the write is durable or has failed, in each job's write order:
  // on a writer thread, or in RunCallbacks(). A write without `done` that fails is logged.
  virtual void Write(StoreOp op, WriteDone done) = 0;
  // Runs, on this thread, the callbacks of the writes an InlineStoreQueue has
  // applied — or, when another thread is running them, leaves this call's to it and
  // returns at once (a lock-free hand-over: no thread waits for another's callbacks).
  // A no-op for a ThreadedStoreQueue, whose writer thread runs them. REQUIRES: the
  // caller holds no lock that a callback takes. Safe to call from a callback.
  virtual void RunCallbacks() = 0;
  // Runs `fn` on a reader thread (inline for an InlineStoreQueue, where it sees every
  // write queued before it). A ThreadedStoreQueue promises no order between reads and
  // writes: a read may run before a write queued earlier is applied.
  virtual void Read(std::function<void()> fn) = 0;
  // Returns once every write queued before the call has been applied and its callback
  // has returned, wherever it runs (it waits for a RunCallbacks on another thread). For
  // shutdown, and tests. REQUIRES: not called from a callback, nor with a lock held
  // that a callback takes.
  virtual void WaitForWrites() = 0;
  // Of the transactions applied so far; empty for an InlineStoreQueue, which applies
  // each write alone and at once.
  virtual StoreWriteStats write_stats() const { return {}; }
};

}  // namespace offload
