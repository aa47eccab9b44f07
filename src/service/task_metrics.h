// TaskMetrics: what GET /metrics counts of one task's jobs on this node
// (docs/operations.md names each series). The service counts each status change as
// it publishes it (JobService::NoteStatusLocked), so the counts and the event streams
// see the same changes.
//
// Not thread-safe: JobService keeps one per task under its mutex.
#pragma once

#include <cstdint>

#include "metrics/histogram.h"
#include "store/job_record.h"

namespace offload {

struct TaskMetrics {
  TaskMetrics();

  // The job is now `rec`, just changed to rec.status.
  void Count(const JobRecord& rec);

  std::uint64_t submitted = 0;  // Jobs accepted (their insert durable).
  std::uint64_t started = 0;    // Attempts started.
  std::uint64_t retried = 0;    // Attempts that failed and were queued again.
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t canceled = 0;
  // Seconds from submit to the first attempt's start.
  Histogram queue_wait;
  // Seconds from the last attempt's start to the job's end, for jobs that started.
  Histogram run_time;
};

}  // namespace offload
