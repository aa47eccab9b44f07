#include "util/thread_pool.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>

namespace offload {
namespace {

// How long an idle thread looks for work before it sleeps. On two cores at 50,000
// jobs/s this saves a wake-up for most jobs (about 10% more throughput measured with
// bench W1) and costs at most this much CPU each time a thread runs out of work.
constexpr std::chrono::microseconds kSpinFor{50};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(std::size_t threads, int nice_increment) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this, nice_increment] { Loop(nice_increment); });
  }
}

ThreadPool::~ThreadPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (auto& t : threads_) t.join();
}

void ThreadPool::Submit(std::function<void()> fn) {
  bool wake;
  {
    MutexLock lock(&mu_);
    work_.push_back(std::move(fn));
    has_work_.store(true, std::memory_order_release);
    // A thread that just finished a job picks the next one up without a wake-up;
    // only sleeping threads need the (syscall-costing) notify.
    wake = idle_ > 0;
  }
  if (wake) cv_.Signal();
}

void ThreadPool::Loop(int nice_increment) {
  if (nice_increment != 0) {
    // Linux applies setpriority(PRIO_PROCESS, tid) to the one thread. Failure only
    // costs responsiveness, so it is not fatal.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice_increment);
  }
  for (;;) {
    std::function<void()> fn;
    // Not a MutexLock: the lock is released while the thread spins.
    mu_.Lock();
    if (work_.empty() && !stopping_) {
      // Look again for a few microseconds before sleeping: at a high job rate the
      // next job comes that soon, and taking it awake saves a futex wake-up and a
      // context switch on both sides of the hand-off.
      mu_.Unlock();
      const auto until = std::chrono::steady_clock::now() + kSpinFor;
      while (!has_work_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) {
        for (int i = 0; i < 16; ++i) CpuRelax();
      }
      mu_.Lock();
    }
    ++idle_;
    while (!stopping_ && work_.empty()) cv_.Wait(&mu_);
    --idle_;
    if (work_.empty()) {  // stopping_
      mu_.Unlock();
      return;
    }
    fn = std::move(work_.front());
    work_.pop_front();
    if (work_.empty()) has_work_.store(false, std::memory_order_relaxed);
    mu_.Unlock();
    fn();
  }
}

}  // namespace offload
