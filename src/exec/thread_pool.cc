#include "exec/thread_pool.h"

#include <sys/resource.h>
#include <unistd.h>

namespace offload {

ThreadPool::ThreadPool(std::size_t threads, int nice_increment) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this, nice_increment] { Loop(nice_increment); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::Submit(std::function<void()> fn) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    work_.push_back(std::move(fn));
    // A thread that just finished a job picks the next one up without a wake-up;
    // only sleeping threads need the (syscall-costing) notify.
    wake = idle_ > 0;
  }
  if (wake) cv_.notify_one();
}

void ThreadPool::Loop(int nice_increment) {
  if (nice_increment != 0) {
    // Linux applies setpriority(PRIO_PROCESS, tid) to the one thread. Failure only
    // costs responsiveness, so it is not fatal.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice_increment);
  }
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(mu_);
      ++idle_;
      cv_.wait(lock, [this] { return stopping_ || !work_.empty(); });
      --idle_;
      if (work_.empty()) return;  // stopping_
      fn = std::move(work_.front());
      work_.pop_front();
    }
    fn();
  }
}

}  // namespace offload
