// RunContext: the server's side of offload::Context for one execution of a job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "offload/context.h"

namespace offload {

// Why an execution was asked to stop.
enum class StopReason { kNone, kCanceled, kTimeout, kShutdown };

// Thread-safe.
class RunContext final : public Context {
 public:
  bool canceled() const override { return stop_.load(std::memory_order_acquire) != StopReason::kNone; }
  bool SleepFor(std::chrono::milliseconds d) override;
  void ReportProgress(double fraction) override;

  // Asks the handler to stop; the first reason given wins. Wakes SleepFor.
  void RequestStop(StopReason reason);
  StopReason stop_reason() const { return stop_.load(std::memory_order_acquire); }
  // -1 until the handler reports progress.
  double progress() const { return progress_.load(std::memory_order_relaxed); }

 private:
  std::atomic<StopReason> stop_{StopReason::kNone};
  std::atomic<double> progress_{-1};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace offload
