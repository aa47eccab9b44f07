#include "util/timer_queue.h"

#include <algorithm>

namespace offload {

TimerQueue::TimerQueue() : thread_([this] { Loop(); }) {}

TimerQueue::~TimerQueue() { Stop(); }

void TimerQueue::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
  // Dropped un-run: their captures are destroyed outside the lock, after the thread
  // has gone.
  std::map<Key, std::function<void()>> dropped;
  MutexLock lock(&mu_);
  dropped.swap(due_);
  deadline_.clear();
}

TimerQueue::Handle TimerQueue::Schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
  // Saturated: a job's timeout times a map chunk's size could overflow the clock.
  const auto bounded = std::clamp<std::chrono::milliseconds>(delay, std::chrono::milliseconds(0), kMaxDelay);
  const Clock::time_point at = Clock::now() + bounded;
  bool earliest;
  Handle handle;
  {
    MutexLock lock(&mu_);
    if (stopping_) return 0;
    handle = ++last_handle_;
    auto it = due_.emplace(Key{at, handle}, std::move(fn)).first;
    deadline_.emplace(handle, at);
    earliest = it == due_.begin();
  }
  // Only a new first deadline changes how long the thread sleeps.
  if (earliest) cv_.Signal();
  return handle;
}

bool TimerQueue::Cancel(Handle handle) {
  if (handle == 0) return false;
  std::function<void()> dropped;  // Destroyed after the lock is released.
  {
    MutexLock lock(&mu_);
    auto d = deadline_.find(handle);
    if (d == deadline_.end()) return false;
    auto it = due_.find(Key{d->second, handle});
    dropped = std::move(it->second);
    due_.erase(it);
    deadline_.erase(d);
  }
  return true;
}

std::size_t TimerQueue::pending() const {
  MutexLock lock(&mu_);
  return due_.size();
}

void TimerQueue::Loop() {
  // Not a MutexLock: the lock is released around each callback.
  mu_.Lock();
  while (!stopping_) {
    if (due_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    auto first = due_.begin();
    // A copy: while the thread waits, Cancel may erase the entry it came from.
    const Clock::time_point at = first->first.first;
    if (at > Clock::now()) {
      cv_.WaitUntil(&mu_, at);
      continue;
    }
    std::function<void()> fn = std::move(first->second);
    deadline_.erase(first->first.second);
    due_.erase(first);
    mu_.Unlock();
    fn();
    fn = nullptr;  // Its captures go before the lock is taken again.
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace offload
