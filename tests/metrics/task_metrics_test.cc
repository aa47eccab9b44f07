#include "service/task_metrics.h"

#include <gtest/gtest.h>

#include "service/job_lifecycle.h"

namespace offload {
namespace {

JobRecord Submitted(UnixMillis at) {
  JobRecord rec;
  rec.status = JobStatus::kQueued;
  rec.created_at = at;
  return rec;
}

TEST(TaskMetricsTest, ALifeWithARetryIsCountedOnceForEachChange) {
  TaskMetrics m;
  JobRecord rec = Submitted(1'000);
  m.Count(rec);
  EnterStatus(&rec, JobStatus::kRunning, 1'500);
  m.Count(rec);
  EnterStatus(&rec, JobStatus::kQueued, 2'000, JobError{"worker_died", "gone"});
  m.Count(rec);
  EnterStatus(&rec, JobStatus::kRunning, 4'000);
  m.Count(rec);
  EnterStatus(&rec, JobStatus::kSucceeded, 7'000);
  m.Count(rec);
  EXPECT_EQ(m.submitted, 1u);
  EXPECT_EQ(m.started, 2u);
  EXPECT_EQ(m.retried, 1u);
  EXPECT_EQ(m.succeeded, 1u);
  EXPECT_EQ(m.failed + m.canceled, 0u);
  // The queue wait is the first attempt's; the run time the last attempt's.
  EXPECT_EQ(m.queue_wait.count(), 1u);
  EXPECT_DOUBLE_EQ(m.queue_wait.sum(), 0.5);
  EXPECT_EQ(m.run_time.count(), 1u);
  EXPECT_DOUBLE_EQ(m.run_time.sum(), 3.0);
}

TEST(TaskMetricsTest, AJobCanceledBeforeItStartedHasNoRunTime) {
  TaskMetrics m;
  JobRecord rec = Submitted(1'000);
  m.Count(rec);
  EnterStatus(&rec, JobStatus::kCanceled, 2'000);
  m.Count(rec);
  EXPECT_EQ(m.canceled, 1u);
  EXPECT_EQ(m.run_time.count(), 0u);
  EXPECT_EQ(m.queue_wait.count(), 0u);
}

TEST(TaskMetricsTest, AClockBehindTheSubmittersGivesNoNegativeSpan) {
  TaskMetrics m;
  JobRecord rec = Submitted(5'000);
  EnterStatus(&rec, JobStatus::kRunning, 4'000);  // Started on a node whose clock is a second behind.
  m.Count(rec);
  EXPECT_EQ(m.queue_wait.count(), 1u);
  EXPECT_EQ(m.queue_wait.sum(), 0);
}

}  // namespace
}  // namespace offload
