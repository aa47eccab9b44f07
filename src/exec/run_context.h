// RunContext: the server's side of offload::Context for one execution of a job.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
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
  RunContext();

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

  // An executor that queues an execution before it really runs (a worker pool whose
  // workers are still starting) marks it waiting, then running once it is handed
  // over, so that its timeout counts from then rather than from its Start.
  void MarkWaiting() { running_since_ns_.store(kWaiting, std::memory_order_release); }
  void MarkRunning();
  // How long it has run: since it was created, unless it was marked waiting; zero
  // while it waits.
  std::chrono::nanoseconds RunningFor() const;

 private:
  // Set once, under mu_ (so that SleepFor, which checks it under mu_, cannot miss
  // the wake-up); read anywhere.
  std::atomic<StopReason> stop_{StopReason::kNone};
  std::atomic<double> progress_{-1};
  static constexpr std::int64_t kWaiting = -1;
  std::atomic<std::int64_t> running_since_ns_;  // steady_clock; kWaiting while it waits.
  Mutex mu_;
  CondVar cv_;  // A stop was requested.
  std::function<void()> on_stop_ GUARDED_BY(mu_);
};

}  // namespace offload
