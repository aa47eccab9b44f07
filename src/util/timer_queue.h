// TimerQueue: callbacks run at their deadlines on one thread, each cancellable by a
// handle until it starts.
//
// Why not Asio timers: a steady_timer may only be cancelled on its own executor, so a
// job that finished on a pool thread could not cancel its timeout there and then; the
// timer (and what its handler captured) lived on until it expired — 300 s for a job
// of a millisecond, 115 days for a `"timeout": 1e7`. Here Cancel is a map erase under
// a short lock from any thread, and what the callback captured is freed at once, so
// memory after N finished jobs does not depend on their timeouts.
//
// Threads: thread-safe. Owns one thread, which runs every callback with no lock of
// the queue's held, so a callback may take its owner's lock (and a caller holding
// that lock may Schedule or Cancel: the queue's own lock is always taken last).
// Complexity: O(log n) for Schedule and Cancel, n the timers pending.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <unordered_map>
#include <utility>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

class TimerQueue {
 public:
  using Clock = std::chrono::steady_clock;
  // Identifies one scheduled callback; never reused. 0 is never a handle.
  using Handle = std::uint64_t;

  TimerQueue();
  // Stop(), if it has not been called.
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Stops the thread: callbacks not yet started are dropped without running; one
  // that is running is waited for. Schedule and Cancel stay callable and do nothing,
  // so an owner may stop its timers while other threads still call them.
  // REQUIRES: not called from a callback.
  void Stop() LOCKS_EXCLUDED(mu_);

  // Runs `fn` on the queue's thread once `delay` has passed (callbacks due at the
  // same time run in the order they were scheduled). A delay past kMaxDelay is taken
  // as kMaxDelay. Returns 0, and drops `fn`, once stopped.
  static constexpr std::chrono::hours kMaxDelay{24 * 365 * 100};
  Handle Schedule(std::chrono::milliseconds delay, std::function<void()> fn) LOCKS_EXCLUDED(mu_);
  // Drops a callback that has not started. Returns true when it will now never run,
  // false when it ran, is running, or was cancelled already. Cancel(0) is a no-op.
  bool Cancel(Handle handle) LOCKS_EXCLUDED(mu_);
  // Callbacks scheduled and not yet started.
  std::size_t pending() const LOCKS_EXCLUDED(mu_);

 private:
  using Key = std::pair<Clock::time_point, Handle>;
  void Loop() LOCKS_EXCLUDED(mu_);

  mutable Mutex mu_;
  CondVar cv_;  // An earlier deadline was scheduled, or stopping.
  std::map<Key, std::function<void()>> due_ GUARDED_BY(mu_);
  std::unordered_map<Handle, Clock::time_point> deadline_ GUARDED_BY(mu_);  // The same entries.
  Handle last_handle_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  // Started by the constructor, joined by Stop; declared last, so that it starts
  // after the fields above are built.
  std::thread thread_;
};

}  // namespace offload
