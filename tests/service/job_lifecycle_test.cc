#include "service/job_lifecycle.h"

#include <gtest/gtest.h>

#include "offload/error_types.h"

namespace offload {
namespace {

constexpr JobStatus kAll[] = {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed,
                              JobStatus::kCanceled};

TEST(JobLifecycleTest, OnlyQueuedAndRunningMoveAndNeitherToItself) {
  for (JobStatus from : kAll) {
    for (JobStatus to : kAll) {
      const bool expected = !IsFinished(from) && from != to;
      EXPECT_EQ(IsAllowedTransition(from, to), expected) << JobStatusName(from) << " -> " << JobStatusName(to);
    }
  }
}

TEST(JobLifecycleTest, StartingCountsAnAttemptAndStampsTheStart) {
  JobRecord rec;
  EnterStatus(&rec, JobStatus::kRunning, 100);
  EXPECT_EQ(rec.status, JobStatus::kRunning);
  EXPECT_EQ(rec.started_at, 100);
  EXPECT_EQ(rec.attempts, 1);
  EXPECT_EQ(rec.finished_at, 0);
}

TEST(JobLifecycleTest, ARetryKeepsTheErrorInHistoryAndForgetsTheRun) {
  JobRecord rec;
  for (int i = 0; i < 7; ++i) {
    EnterStatus(&rec, JobStatus::kRunning, 100 + i);
    rec.progress = 0.5;
    EnterStatus(&rec, JobStatus::kQueued, 200 + i, JobError{"boom", std::to_string(i)});
  }
  EXPECT_EQ(rec.status, JobStatus::kQueued);
  EXPECT_EQ(rec.attempts, 7);
  EXPECT_EQ(rec.started_at, 0);
  EXPECT_FALSE(rec.progress.has_value());
  EXPECT_FALSE(rec.error.has_value()) << "a queued job has no error of its own";
  ASSERT_EQ(rec.error_history.size(), kErrorHistory);
  EXPECT_EQ(rec.error_history.front().message, "2") << "the oldest are dropped first";
  EXPECT_EQ(rec.error_history.back().message, "6");
}

TEST(JobLifecycleTest, FinalStatusesStampTheEndOnce) {
  JobRecord rec;
  EnterStatus(&rec, JobStatus::kRunning, 100);
  EnterStatus(&rec, JobStatus::kFailed, 150, JobError{"boom", "it broke"});
  EXPECT_EQ(rec.finished_at, 150);
  EXPECT_EQ(rec.error->type, "boom");

  JobRecord done;
  done.finished_at = 90;  // Set earlier (a cancel of a job still stopping).
  EnterStatus(&done, JobStatus::kCanceled, 150);
  EXPECT_EQ(done.finished_at, 90);
}

TEST(JobLifecycleTest, ACancelWithoutAReasonIsACancelByRequest) {
  JobRecord rec;
  EnterStatus(&rec, JobStatus::kCanceled, 100);
  ASSERT_TRUE(rec.error.has_value());
  EXPECT_EQ(rec.error->type, error_type::kCanceled);
  EXPECT_EQ(rec.started_at, 0) << "a job canceled while queued never started";

  JobRecord shut;
  EnterStatus(&shut, JobStatus::kCanceled, 100, JobError{error_type::kShutdown, "bye"});
  EXPECT_EQ(shut.error->type, error_type::kShutdown);
}

TEST(JobLifecycleTest, SuccessCompletesProgressAndAStartForAJobThatNeverRan) {
  JobRecord rec;  // An empty map succeeds straight from the queue.
  EnterStatus(&rec, JobStatus::kSucceeded, 100);
  EXPECT_EQ(rec.started_at, 100);
  EXPECT_EQ(rec.finished_at, 100);
  EXPECT_EQ(rec.progress, 1.0);
  EXPECT_FALSE(rec.error.has_value());
}

}  // namespace
}  // namespace offload
