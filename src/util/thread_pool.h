// ThreadPool: a fixed set of threads that run submitted work (in-process task handlers,
// store reads).
//
// Owns its threads; the destructor drains nothing: it stops taking work, wakes every
// thread and joins them (callers stop submitting first). The threads can run at a lower
// CPU priority than the I/O threads (the handler pool uses nice +5), so that a core full
// of job work still leaves the event loop room to answer status requests promptly.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

// Thread-safe.
class ThreadPool {
 public:
  ThreadPool(std::size_t threads, int nice_increment);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs `fn` on a pool thread, after the work submitted before it. REQUIRES: every
  // thread that calls Submit has returned from it (joined, or synchronized with the
  // owner) before the pool is destroyed: the notify comes after mu_ is released.
  void Submit(std::function<void()> fn) LOCKS_EXCLUDED(mu_);
  std::size_t size() const { return threads_.size(); }

 private:
  void Loop(int nice_increment) LOCKS_EXCLUDED(mu_);

  Mutex mu_;
  CondVar cv_;  // Work was submitted, or stopping.
  std::deque<std::function<void()>> work_ GUARDED_BY(mu_);
  std::size_t idle_ GUARDED_BY(mu_) = 0;  // Threads waiting on cv_.
  // Mirrors !work_.empty() for threads that spin before they sleep: written under
  // mu_, read without it.
  std::atomic<bool> has_work_{false};
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // Constant after construction.
};

}  // namespace offload
