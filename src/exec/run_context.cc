#include "exec/run_context.h"

#include <algorithm>

namespace offload {
namespace {

std::int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RunContext::RunContext() : running_since_ns_(SteadyNowNs()) {}

void RunContext::MarkRunning() { running_since_ns_.store(SteadyNowNs(), std::memory_order_release); }

std::chrono::nanoseconds RunContext::RunningFor() const {
  const std::int64_t since = running_since_ns_.load(std::memory_order_acquire);
  if (since == kWaiting) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(std::max<std::int64_t>(0, SteadyNowNs() - since));
}

bool RunContext::SleepFor(std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  MutexLock lock(&mu_);
  while (!canceled()) {
    if (!cv_.WaitUntil(&mu_, deadline)) return !canceled();
  }
  return false;
}

void RunContext::ReportProgress(double fraction) {
  if (!(fraction >= 0)) fraction = 0;  // Also catches NaN.
  progress_.store(std::min(fraction, 1.0), std::memory_order_relaxed);
}

void RunContext::RequestStop(StopReason reason) {
  std::function<void()> on_stop;
  {
    MutexLock lock(&mu_);
    StopReason none = StopReason::kNone;
    if (stop_.compare_exchange_strong(none, reason, std::memory_order_acq_rel)) {
      on_stop = std::move(on_stop_);
      on_stop_ = nullptr;
    }
  }
  cv_.SignalAll();
  if (on_stop) on_stop();
}

void RunContext::OnStop(std::function<void()> fn) {
  {
    MutexLock lock(&mu_);
    if (!canceled()) {
      on_stop_ = std::move(fn);
      return;
    }
  }
  fn();
}

}  // namespace offload
