#include "store/inline_store_queue.h"

#include <spdlog/spdlog.h>

#include <string>

namespace offload {

InlineStoreQueue::~InlineStoreQueue() { RunCallbacks(); }

void InlineStoreQueue::Write(StoreOp op, WriteDone done) {
  std::string failure;  // "job ID: why", when a write nobody waits for failed.
  {
    MutexLock lock(&mu_);
    // The store is called under mu_ so that its order is the order of the writes:
    // it is a short, non-blocking call that runs no callback of ours.
    one_op_.clear();
    one_op_.push_back(std::move(op));
    Status result = store_->Apply(one_op_);
    const std::uint64_t seq = ++queued_;
    if (done) {
      applied_.push_back(Applied{seq, std::move(done), std::move(result)});
    } else {
      if (!result) failure = "job " + one_op_[0].job.id + " failed: " + result.error().detail;
      // Finished now, unless earlier callbacks are still waiting or running.
      if (applied_.empty() && !running_callbacks_) finished_ = seq;
    }
  }
  if (!failure.empty()) spdlog::error("store: write of {}", failure);
}

void InlineStoreQueue::RunCallbacks() {
  {
    MutexLock lock(&mu_);
    if (running_callbacks_) return;  // The thread running them runs the callbacks queued meanwhile.
    running_callbacks_ = true;
  }
  std::deque<Applied> calls;
  for (;;) {
    {
      MutexLock lock(&mu_);
      // No callback is running here: every write before the first one waiting has
      // finished.
      const std::uint64_t finished = applied_.empty() ? queued_ : applied_.front().seq - 1;
      if (finished != finished_) {
        finished_ = finished;
        finished_cv_.SignalAll();
      }
      if (applied_.empty()) {
        running_callbacks_ = false;
        return;
      }
      calls.swap(applied_);
    }
    for (Applied& c : calls) c.done(std::move(c.result));
    calls.clear();
  }
}

void InlineStoreQueue::WaitForWrites() {
  std::uint64_t target;
  {
    MutexLock lock(&mu_);
    target = queued_;
  }
  // Runs the callbacks here, or hands them to the thread already running them.
  RunCallbacks();
  MutexLock lock(&mu_);
  while (finished_ < target) finished_cv_.Wait(&mu_);
}

}  // namespace offload
