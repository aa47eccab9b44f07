#include "exec/run_context.h"

#include <algorithm>

namespace offload {

bool RunContext::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return canceled(); });
}

void RunContext::ReportProgress(double fraction) {
  if (!(fraction >= 0)) fraction = 0;  // Also catches NaN.
  progress_.store(std::min(fraction, 1.0), std::memory_order_relaxed);
}

void RunContext::RequestStop(StopReason reason) {
  std::function<void()> on_stop;
  {
    std::lock_guard lock(mu_);
    StopReason none = StopReason::kNone;
    if (stop_.compare_exchange_strong(none, reason, std::memory_order_acq_rel)) {
      on_stop = std::move(on_stop_);
      on_stop_ = nullptr;
    }
  }
  cv_.notify_all();
  if (on_stop) on_stop();
}

void RunContext::OnStop(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (!canceled()) {
      on_stop_ = std::move(fn);
      return;
    }
  }
  fn();
}

}  // namespace offload
