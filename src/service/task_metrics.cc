#include "service/task_metrics.h"

#include <algorithm>
#include <array>

namespace offload {

namespace {

// From a millisecond to an hour: a queue that drains at once and a render that runs
// for minutes both land in buckets of their own.
constexpr std::array<double, 15> kJobSeconds = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                1,     2.5,   5,    15,    60,   300, 3600};

// Clocks of different nodes may disagree a little: a span is never negative.
double SecondsBetween(UnixMillis from, UnixMillis to) {
  return static_cast<double>(std::max<UnixMillis>(to - from, 0)) / 1000.0;
}

}  // namespace

TaskMetrics::TaskMetrics() : queue_wait(kJobSeconds), run_time(kJobSeconds) {}

void TaskMetrics::Count(const JobRecord& rec) {
  switch (rec.status) {
    case JobStatus::kQueued:
      if (rec.attempts == 0) {
        ++submitted;
      } else {
        ++retried;
      }
      return;
    case JobStatus::kRunning:
      ++started;
      if (rec.attempts == 1) queue_wait.Observe(SecondsBetween(rec.created_at, rec.started_at));
      return;
    case JobStatus::kSucceeded:
      ++succeeded;
      break;
    case JobStatus::kFailed:
      ++failed;
      break;
    case JobStatus::kCanceled:
      ++canceled;
      break;
  }
  if (rec.attempts > 0 && rec.started_at > 0) run_time.Observe(SecondsBetween(rec.started_at, rec.finished_at));
}

}  // namespace offload
