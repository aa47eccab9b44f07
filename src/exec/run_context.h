// RunContext: the server's side of offload::Context for one execution of a job.
#pragma once

#include <atomic>
#include <functional>

#include "offload/context.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

// Why an execution was asked to stop.
enum class StopReason { kNone, kCanceled, kTimeout, kShutdown };

// Thread-safe. Owns a lock, which it never holds while it calls out.
class RunContext final : public Context {
 public:
  bool canceled() const override { return stop_.load(std::memory_order_acquire) != StopReason::kNone; }
  bool SleepFor(std::chrono::milliseconds d) override LOCKS_EXCLUDED(mu_);
  void ReportProgress(double fraction) override;

  // Asks the handler to stop; the first reason given wins. Wakes SleepFor and runs
  // the OnStop callback.
  void RequestStop(StopReason reason) LOCKS_EXCLUDED(mu_);
  // For executors whose work cannot poll canceled() (a child process): `fn` runs
  // once, on the thread that calls the first RequestStop (which may hold the
  // service's lock: `fn` must only hand the stop over, e.g. post it to a loop), or
  // right here if a stop was requested already. A second call replaces the first.
  void OnStop(std::function<void()> fn) LOCKS_EXCLUDED(mu_);
  StopReason stop_reason() const { return stop_.load(std::memory_order_acquire); }
  // -1 until the handler reports progress.
  double progress() const { return progress_.load(std::memory_order_relaxed); }

 private:
  // Set once, under mu_ (so that SleepFor, which checks it under mu_, cannot miss
  // the wake-up); read anywhere.
  std::atomic<StopReason> stop_{StopReason::kNone};
  std::atomic<double> progress_{-1};
  Mutex mu_;
  CondVar cv_;  // A stop was requested.
  std::function<void()> on_stop_ GUARDED_BY(mu_);
};

}  // namespace offload
