// ThreadPool: a fixed set of threads that run submitted work (in-process task handlers,
// store reads).
//
// Owns its threads; the destructor drains nothing: it stops taking work, wakes every
// thread and joins them (callers stop submitting first). The threads can run at a lower
// CPU priority than the I/O threads (the handler pool uses nice +5), so that a core full
// of job work still leaves the event loop room to answer status requests promptly.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

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
  void Submit(std::function<void()> fn);
  std::size_t size() const { return threads_.size(); }

 private:
  void Loop(int nice_increment);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> work_;  // guarded by mu_
  std::size_t idle_ = 0;                    // guarded by mu_; threads waiting on cv_
  // Mirrors !work_.empty() for threads that spin before they sleep (read without mu_).
  std::atomic<bool> has_work_{false};
  bool stopping_ = false;                   // guarded by mu_
  std::vector<std::thread> threads_;        // constant after construction
};

}  // namespace offload
