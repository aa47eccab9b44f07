// AttemptTimer: the one timer an attempt owns at a time — its timeout while it runs,
// or its back-off before the next attempt. Setting another, resetting it, or
// destroying its owner cancels the one pending, so no timer outlives the attempt it
// belongs to and what its callback captured is freed with it.
//
// Not thread-safe: its owner (a job, under JobService's mutex) serializes calls. The
// TimerQueue it schedules on is thread-safe and takes its own lock last, so these
// calls are safe under the owner's lock.
#pragma once

#include <chrono>
#include <functional>
#include <utility>

#include "util/timer_queue.h"

namespace offload {

class AttemptTimer {
 public:
  explicit AttemptTimer(TimerQueue* queue) : queue_(queue) {}
  ~AttemptTimer() { Cancel(); }
  AttemptTimer(const AttemptTimer&) = delete;
  AttemptTimer& operator=(const AttemptTimer&) = delete;

  // Cancels the pending timer, if any, and runs `fn` on the queue's thread after
  // `delay`.
  void Set(std::chrono::milliseconds delay, std::function<void()> fn) {
    Cancel();
    handle_ = queue_->Schedule(delay, std::move(fn));
  }
  // The callback is running (or ran): nothing is pending any more. Called from the
  // callback, under the owner's lock, so that a later Cancel does not look it up.
  void Fired() { handle_ = 0; }
  void Cancel() {
    if (handle_ != 0) queue_->Cancel(handle_);
    handle_ = 0;
  }
  bool pending() const { return handle_ != 0; }

 private:
  TimerQueue* const queue_;
  TimerQueue::Handle handle_ = 0;
};

}  // namespace offload
