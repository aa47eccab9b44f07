// InlineStoreQueue: the StoreQueue of a store that does not block (the memory store).
//
// Write applies the write at once, on the caller's thread and under the queue's lock,
// so the store's order is the order of the Write calls and a Read right after a Write
// sees it. The callback is kept, with the write's result, for RunCallbacks(): callers queue
// writes under their own lock and run callbacks once they have released it.
//
// RunCallbacks hands over rather than waits: a thread that finds another one running the
// callbacks returns at once, and the running thread takes the callbacks queued
// meanwhile before it stops. So a callback may Write and RunCallbacks, and no thread waits
// on another's callbacks (only WaitForWrites does, at shutdown).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "store/store_queue.h"
#include "util/mutex.h"

namespace offload {

// Thread-safe.
class InlineStoreQueue final : public StoreQueue {
 public:
  // Borrows `store`, which must outlive the queue.
  explicit InlineStoreQueue(Store* store) : store_(store) {}
  ~InlineStoreQueue() override;
  InlineStoreQueue(const InlineStoreQueue&) = delete;
  InlineStoreQueue& operator=(const InlineStoreQueue&) = delete;

  void Write(StoreOp op, WriteDone done) override;
  void RunCallbacks() override;
  void Read(std::function<void()> fn) override { fn(); }
  void WaitForWrites() override;

 private:
  // A write applied, waiting for RunCallbacks to run its callback.
  struct Applied {
    std::uint64_t seq;  // Its place among all writes, from 1.
    WriteDone done;
    Status result;
  };

  // Constant after construction.
  Store* const store_;

  Mutex mu_;
  CondVar finished_cv_;                          // finished_ advanced.
  std::vector<StoreOp> one_op_ GUARDED_BY(mu_);  // Reused for each write's Apply.
  // Callbacks not yet taken by a RunCallbacks, in write order. Writes without a callback
  // have no entry.
  std::deque<Applied> applied_ GUARDED_BY(mu_);
  std::uint64_t queued_ GUARDED_BY(mu_) = 0;  // Writes ever made.
  // Every write up to this seq has been applied and its callback has returned.
  std::uint64_t finished_ GUARDED_BY(mu_) = 0;
  bool running_callbacks_ GUARDED_BY(mu_) = false;  // A RunCallbacks() is running callbacks.
};

}  // namespace offload
