// JobService end to end, without HTTP: see job_service_fixture.h.
#include <gtest/gtest.h>

#include "job_service_fixture.h"

namespace offload {
namespace {

TEST_F(JobServiceTest, SubmitAnswersRunningWhenFreeAndQueuedWithPositionOtherwise) {
  auto a = Submit("gated", json::object{{"tag", 1}, {"progress", 0.25}});
  ASSERT_TRUE(a.has_value()) << a.error().detail;
  EXPECT_EQ(a->record.status, JobStatus::kRunning);
  EXPECT_FALSE(a->position.has_value());
  EXPECT_EQ(a->record.attempts, 1);
  EXPECT_GT(a->record.created_at, 0);
  EXPECT_GT(a->record.started_at, 0);
  EXPECT_EQ(a->record.finished_at, 0);
  EXPECT_EQ(a->record.id.size(), 15u);

  auto b = Submit("gated", Tag(2));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->record.status, JobStatus::kQueued);
  ASSERT_TRUE(b->position.has_value());
  EXPECT_EQ(*b->position, 0u);
  EXPECT_EQ(b->record.started_at, 0);
  auto c = Submit("gated", Tag(3));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->position, std::optional<std::size_t>(1));
  EXPECT_NE(a->record.id, b->record.id);
  EXPECT_LT(a->record.seq, b->record.seq);
  EXPECT_LT(b->record.seq, c->record.seq);

  ASSERT_TRUE(gate_.WaitStarted(1));
  auto live = Get(a->record.id);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->record.status, JobStatus::kRunning);
  EXPECT_EQ(live->record.progress, std::optional<double>(0.25));
  EXPECT_EQ(Get(c->record.id)->position, std::optional<std::size_t>(1));

  EXPECT_EQ(Resource("gpu").in_use, 1);
  EXPECT_EQ(Resource("gpu").queued_demand, 2);
  EXPECT_EQ(Resource("cpu").in_use, 0);
  EXPECT_EQ(Task("gated").queued, 2u);

  gate_.OpenAll();
  JobSnapshot done = WaitFinished(c->record.id);
  EXPECT_EQ(done.record.status, JobStatus::kSucceeded);
  ASSERT_NE(done.record.result, nullptr);
  EXPECT_EQ(done.record.result->json, Tag(3));
  EXPECT_GT(done.record.finished_at, 0);
  EXPECT_EQ(done.record.progress, std::optional<double>(1.0));
  EXPECT_EQ(StatusOf(a->record.id), JobStatus::kSucceeded);
  EXPECT_EQ(Resource("gpu").in_use, 0);
  EXPECT_EQ(Resource("gpu").queued_demand, 0);
  EXPECT_EQ(gate_.started(), (std::vector<int>{1, 2, 3}));
}

TEST_F(JobServiceTest, ExclusiveResourceRunsJobsStrictlyInSubmissionOrder) {
  constexpr int kJobs = 8;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) ids.push_back(SubmitGated(i));
  std::vector<int> expected;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(gate_.WaitStarted(i + 1)) << "job " << i << " never started";
    expected.push_back(i);
    ASSERT_EQ(gate_.started(), expected) << "only job " << i << " may have started";
    EXPECT_EQ(Resource("gpu").in_use, 1);
    gate_.Open(i);
  }
  UnixMillis previous_finish = 0;
  for (int i = 0; i < kJobs; ++i) {
    JobSnapshot s = WaitFinished(ids[i]);
    EXPECT_EQ(s.record.status, JobStatus::kSucceeded) << i;
    EXPECT_GE(s.record.started_at, previous_finish) << "job " << i << " overlapped the one before";
    previous_finish = s.record.finished_at;
  }
  EXPECT_EQ(gate_.max_running(), 1) << "two jobs held the GPU at once";
  EXPECT_EQ(Resource("gpu").in_use, 0);
}

TEST_F(JobServiceTest, JobsOnOtherResourcesStartWhileTheGpuQueueWaits) {
  SubmitGated(1);
  ASSERT_TRUE(gate_.WaitStarted(1));  // Handlers record their start on pool threads.
  SubmitGated(2);                     // Waits for the GPU.
  auto cpu_job = Submit("gated_cpu", Tag(3));
  ASSERT_TRUE(cpu_job.has_value());
  EXPECT_EQ(cpu_job->record.status, JobStatus::kRunning);
  ASSERT_TRUE(gate_.WaitStarted(2));
  EXPECT_EQ(gate_.started(), (std::vector<int>{1, 3}));
  EXPECT_EQ(Resource("cpu").in_use, 1);
  gate_.OpenAll();
}

TEST_F(JobServiceTest, CpuCapacityBoundsConcurrency) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(SubmitGated(i, 0, "gated_cpu"));
  ASSERT_TRUE(gate_.WaitStarted(4));
  EXPECT_EQ(Resource("cpu").in_use, 4);
  EXPECT_EQ(Resource("cpu").queued_demand, 2);
  EXPECT_EQ(StatusOf(ids[4]), JobStatus::kQueued);
  EXPECT_EQ(Get(ids[5])->position, std::optional<std::size_t>(1));
  gate_.Open(2);
  ASSERT_TRUE(gate_.WaitStarted(5));
  EXPECT_EQ(gate_.started().back(), 4) << "the oldest queued job goes next";
  gate_.OpenAll();
  for (const auto& id : ids) EXPECT_EQ(WaitFinished(id).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(gate_.max_running(), 4);
  EXPECT_EQ(Resource("cpu").in_use, 0);
}

TEST_F(JobServiceTest, HigherPriorityStartsFirstAndFifoWithinAPriority) {
  SubmitGated(0);  // Holds the GPU while the others queue.
  ASSERT_TRUE(gate_.WaitStarted(1));
  const std::string p0a = SubmitGated(1, 0);
  const std::string p5a = SubmitGated(2, 5);
  const std::string p0b = SubmitGated(3, 0);
  const std::string p5b = SubmitGated(4, 5);
  const std::string p10 = SubmitGated(5, 10);
  const std::string neg = SubmitGated(6, -1);

  EXPECT_EQ(Get(p10)->position, std::optional<std::size_t>(0));
  EXPECT_EQ(Get(p5a)->position, std::optional<std::size_t>(1));
  EXPECT_EQ(Get(p5b)->position, std::optional<std::size_t>(2));
  EXPECT_EQ(Get(p0a)->position, std::optional<std::size_t>(3));
  EXPECT_EQ(Get(p0b)->position, std::optional<std::size_t>(4));
  EXPECT_EQ(Get(neg)->position, std::optional<std::size_t>(5));
  EXPECT_EQ(Get(p10)->record.priority, 10);

  const std::vector<int> expected = {0, 5, 2, 4, 1, 3, 6};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE(gate_.WaitStarted(i + 1));
    ASSERT_EQ(gate_.started().back(), expected[i]) << "start #" << i;
    gate_.Open(expected[i]);
  }
  EXPECT_EQ(WaitFinished(neg).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(gate_.started(), expected);
  EXPECT_EQ(gate_.max_running(), 1);
}

TEST_F(JobServiceTest, CanceledQueuedJobNeverStarts) {
  const std::string running = SubmitGated(1);
  const std::string queued = SubmitGated(2);
  auto waited = std::make_shared<std::promise<JobSnapshot>>();
  auto waited_f = waited->get_future();
  ASSERT_NE(service_->AwaitFinish(queued, [waited](ErrorOr<JobSnapshot> s) { waited->set_value(*s); }), 0u);

  auto c = Cancel(queued);
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_EQ(c->record.status, JobStatus::kCanceled);
  ASSERT_TRUE(c->record.error.has_value());
  EXPECT_EQ(c->record.error->type, "canceled");
  EXPECT_EQ(c->record.started_at, 0);
  EXPECT_GT(c->record.finished_at, 0);
  EXPECT_FALSE(c->position.has_value());
  ASSERT_EQ(waited_f.wait_for(kDeadline), std::future_status::ready) << "the waiter was not told";
  EXPECT_EQ(waited_f.get().record.status, JobStatus::kCanceled);
  EXPECT_EQ(StatusOf(queued), JobStatus::kCanceled);
  EXPECT_EQ(Resource("gpu").queued_demand, 0);
  EXPECT_EQ(Task("gated").queued, 0u);

  const std::string later = SubmitGated(3);
  EXPECT_EQ(Get(later)->position, std::optional<std::size_t>(0));
  gate_.Open(1);
  ASSERT_TRUE(gate_.WaitStarted(2));
  gate_.Open(3);
  EXPECT_EQ(WaitFinished(later).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(gate_.started(), (std::vector<int>{1, 3})) << "the canceled job ran";
  EXPECT_EQ(StatusOf(running), JobStatus::kSucceeded);
  EXPECT_EQ(StatusOf(queued), JobStatus::kCanceled);
}

TEST_F(JobServiceTest, CancelingTheHeadUnblocksTheJobsBehindIt) {
  // A 2-CPU job waits behind a running 3-CPU job; cancelling it lets the 1-CPU job
  // that was blocked behind it start at once.
  ServerConfig c = BaseConfig();
  AddTask(&c, "gated_cpu3", "builtin:gated", {{"cpu", 3}});
  AddTask(&c, "gated_cpu2", "builtin:gated", {{"cpu", 2}});
  service_.reset();
  Start(c);
  SubmitGated(1, 0, "gated_cpu3");
  ASSERT_TRUE(gate_.WaitStarted(1));  // Handlers record their start on pool threads.
  const std::string blocked = SubmitGated(2, 0, "gated_cpu2");
  const std::string small = SubmitGated(3, 0, "gated_cpu");
  EXPECT_EQ(StatusOf(small), JobStatus::kQueued) << "no backfilling past an earlier job";
  ASSERT_TRUE(Cancel(blocked).has_value());
  ASSERT_TRUE(gate_.WaitStarted(2));
  EXPECT_EQ(gate_.started(), (std::vector<int>{1, 3}));
  EXPECT_EQ(Resource("cpu").in_use, 4);
  gate_.OpenAll();
}

TEST_F(JobServiceTest, CanceledRunningJobSeesTheTokenAndReleasesItsResourcesWhenItStops) {
  const std::string id = SubmitGated(0);  // Keeps the test's tags aligned with starts.
  gate_.Open(0);
  ASSERT_EQ(WaitFinished(id).record.status, JobStatus::kSucceeded);

  auto r = Submit("gated", json::object{{"tag", 1}, {"linger", true}});
  ASSERT_TRUE(r.has_value());
  const std::string running = r->record.id;
  ASSERT_TRUE(gate_.WaitStarted(2));
  auto waited = std::make_shared<std::promise<JobSnapshot>>();
  auto waited_f = waited->get_future();
  ASSERT_NE(service_->AwaitFinish(running, [waited](ErrorOr<JobSnapshot> s) { waited->set_value(*s); }), 0u);

  auto c = Cancel(running);
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_EQ(c->record.status, JobStatus::kCanceled);
  EXPECT_GT(c->record.finished_at, 0);
  ASSERT_TRUE(c->record.error.has_value());
  EXPECT_EQ(c->record.error->type, "canceled");
  ASSERT_EQ(waited_f.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(waited_f.get().record.status, JobStatus::kCanceled);
  ASSERT_TRUE(gate_.WaitSawCancel(1)) << "the handler never saw ctx.canceled()";

  // The handler has not returned: it still holds the GPU, so the next job waits.
  const std::string next = SubmitGated(2);
  EXPECT_EQ(StatusOf(next), JobStatus::kQueued);
  EXPECT_EQ(Resource("gpu").in_use, 1);
  EXPECT_EQ(StatusOf(running), JobStatus::kCanceled);
  auto again = Cancel(running);
  ASSERT_TRUE(again.has_value()) << "cancelling a job that is still stopping is not a conflict";
  EXPECT_EQ(again->record.status, JobStatus::kCanceled);

  gate_.Open(1);  // Now it stops.
  ASSERT_TRUE(gate_.WaitStarted(3)) << "the GPU was never released";
  EXPECT_EQ(gate_.started().back(), 2);
  auto final_state = Get(running);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_EQ(final_state->record.status, JobStatus::kCanceled);
  EXPECT_EQ(final_state->record.error->type, "canceled") << "the handler's own error must not replace the cancel";
  EXPECT_EQ(final_state->record.result, nullptr);
  auto late = Cancel(running);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kConflict);
  gate_.Open(2);
  EXPECT_EQ(WaitFinished(next).record.status, JobStatus::kSucceeded);
}

TEST_F(JobServiceTest, CancelOfAFinishedJobIsAConflictAndOfAnUnknownOneNotFound) {
  const std::string id = SubmitOk("noop", nullptr);
  ASSERT_EQ(WaitFinished(id).record.status, JobStatus::kSucceeded);
  auto c = Cancel(id);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ErrorCode::kConflict);
  EXPECT_NE(c.error().detail.find("succeeded"), std::string::npos) << c.error().detail;
  EXPECT_EQ(StatusOf(id), JobStatus::kSucceeded);

  auto unknown = Cancel("AAAAAAAAAAAAAAAA");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  auto get = Get("AAAAAAAAAAAAAAAA");
  ASSERT_FALSE(get.has_value());
  EXPECT_EQ(get.error().code, ErrorCode::kNotFound);
}

TEST_F(JobServiceTest, AwaitFinishAndCancelAwait) {
  const std::string id = SubmitGated(1);
  std::atomic<bool> removed_fired{false};
  const auto t1 = service_->AwaitFinish(id, [&](ErrorOr<JobSnapshot>) { removed_fired = true; });
  auto p = std::make_shared<std::promise<JobSnapshot>>();
  auto f = p->get_future();
  const auto t2 = service_->AwaitFinish(id, [p](ErrorOr<JobSnapshot> s) { p->set_value(std::move(*s)); });
  EXPECT_NE(t1, 0u);
  EXPECT_NE(t2, 0u);
  EXPECT_NE(t1, t2);
  EXPECT_TRUE(service_->CancelAwait(id, t1));
  EXPECT_FALSE(service_->CancelAwait(id, t1)) << "already removed";
  EXPECT_FALSE(service_->CancelAwait("AAAAAAAAAAAAAAAA", t2));
  EXPECT_EQ(f.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout) << "fired before the job finished";

  gate_.Open(1);
  ASSERT_EQ(f.wait_for(kDeadline), std::future_status::ready);
  JobSnapshot s = f.get();
  EXPECT_EQ(s.record.status, JobStatus::kSucceeded);
  EXPECT_EQ(s.record.result->json, Tag(1));
  EXPECT_FALSE(removed_fired) << "a removed waiter fired";
  EXPECT_FALSE(service_->CancelAwait(id, t2)) << "it already fired";
  EXPECT_EQ(service_->AwaitFinish(id, [](ErrorOr<JobSnapshot>) {}), 0u) << "finished: use Get";
  EXPECT_EQ(service_->AwaitFinish("AAAAAAAAAAAAAAAA", [](ErrorOr<JobSnapshot>) {}), 0u);
}

TEST_F(JobServiceTest, MaxQueuedRefusesWithQueueFull) {
  ServerConfig c = BaseConfig();
  c.tasks["gated"].max_queued = 2;
  service_.reset();
  Start(c);
  SubmitGated(1);  // Running: does not count as queued.
  const std::string q1 = SubmitGated(2);
  SubmitGated(3);
  auto full = Submit("gated", Tag(4));
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, ErrorCode::kQueueFull);
  EXPECT_NE(full.error().detail.find("max_queued"), std::string::npos) << full.error().detail;
  EXPECT_TRUE(Submit("gated_cpu", Tag(5)).has_value()) << "the limit is per task";
  ASSERT_TRUE(Cancel(q1).has_value());
  EXPECT_TRUE(Submit("gated", Tag(6)).has_value()) << "room again after a cancel";
  gate_.OpenAll();
}

TEST_F(JobServiceTest, DrainingRefusesSubmitsAndStartsNothingNew) {
  const std::string running = SubmitGated(1);
  const std::string queued = SubmitGated(2);
  EXPECT_FALSE(service_->draining());
  service_->BeginDrain();
  EXPECT_TRUE(service_->draining());
  auto r = Submit("noop", nullptr);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);

  gate_.Open(1);
  EXPECT_EQ(WaitFinished(running).record.status, JobStatus::kSucceeded) << "running jobs may finish while draining";
  EXPECT_TRUE(service_->WaitForIdle(Millis(5000)));
  EXPECT_EQ(StatusOf(queued), JobStatus::kQueued) << "nothing new starts while draining";

  service_->CancelAll();
  JobSnapshot s = WaitFinished(queued);
  EXPECT_EQ(s.record.status, JobStatus::kCanceled);
  ASSERT_TRUE(s.record.error.has_value());
  EXPECT_EQ(s.record.error->type, "shutdown");
  EXPECT_EQ(gate_.started(), std::vector<int>{1});
}

TEST_F(JobServiceTest, CancelAllStopsRunningJobs) {
  const std::string running = SubmitGated(1);
  ASSERT_TRUE(gate_.WaitStarted(1));
  service_->BeginDrain();
  service_->CancelAll();
  EXPECT_TRUE(service_->WaitForIdle(Millis(5000)));
  JobSnapshot s = WaitFinished(running);
  EXPECT_EQ(s.record.status, JobStatus::kCanceled);
  ASSERT_TRUE(s.record.error.has_value());
  EXPECT_EQ(s.record.error->type, "shutdown");
  EXPECT_EQ(Resource("gpu").in_use, 0);
}

TEST_F(JobServiceTest, TaskTimeoutFailsTheJobWithTypeTimeout) {
  ServerConfig c = BaseConfig();
  c.tasks["gated"].timeout = Millis(50);
  service_.reset();
  Start(c);
  EXPECT_EQ(Task("gated").timeout, Millis(50));
  gate_.Open(2);                          // Job 2 finishes as soon as it starts, well within its own timeout.
  const std::string id = SubmitGated(1);  // Never opened.
  const std::string next = SubmitGated(2);
  JobSnapshot s = WaitFinished(id);
  EXPECT_EQ(s.record.status, JobStatus::kFailed);
  ASSERT_TRUE(s.record.error.has_value());
  EXPECT_EQ(s.record.error->type, "timeout");
  EXPECT_GE(s.record.finished_at - s.record.started_at, 49);  // Whole ms on both ends.
  EXPECT_TRUE(gate_.WaitSawCancel(1)) << "the handler was not asked to stop";
  ASSERT_TRUE(gate_.WaitStarted(2)) << "the GPU was not released after the timeout";
  EXPECT_EQ(WaitFinished(next).record.status, JobStatus::kSucceeded)
      << "the timer of the first job must not hit the second";
}

TEST_F(JobServiceTest, HandlerFailuresAndExceptionsBecomeJobErrors) {
  JobSnapshot failed = WaitFinished(SubmitOk("fails", nullptr));
  EXPECT_EQ(failed.record.status, JobStatus::kFailed);
  ASSERT_TRUE(failed.record.error.has_value());
  EXPECT_EQ(failed.record.error->type, "bad_luck");
  EXPECT_EQ(failed.record.error->message, "it failed");
  EXPECT_EQ(failed.record.result, nullptr);

  JobSnapshot thrown = WaitFinished(SubmitOk("boom", nullptr));
  EXPECT_EQ(thrown.record.status, JobStatus::kFailed);
  ASSERT_TRUE(thrown.record.error.has_value());
  EXPECT_EQ(thrown.record.error->type, "handler_error");
  EXPECT_EQ(thrown.record.error->message, "kaboom");
  EXPECT_EQ(Resource("cpu").in_use, 0);
}

TEST_F(JobServiceTest, BadSubmitsCreateNoJob) {
  auto unknown = Submit("render", nullptr);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.error().detail.find("render"), std::string::npos);

  auto bad_input = Submit("sleep", json::object{{"ms", -1}});
  ASSERT_FALSE(bad_input.has_value());
  EXPECT_EQ(bad_input.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_input.error().detail.find("input.ms"), std::string::npos) << bad_input.error().detail;

  EXPECT_TRUE(List(JobQuery{}).jobs.empty());
}

TEST_F(JobServiceTest, BuiltinSleepRunsAndSucceeds) {
  JobSnapshot s = WaitFinished(SubmitOk("sleep", json::object{{"ms", 1}}));
  EXPECT_EQ(s.record.status, JobStatus::kSucceeded);
  ASSERT_NE(s.record.result, nullptr);
  EXPECT_TRUE(s.record.result->json.is_null());
}

TEST_F(JobServiceTest, ListIsNewestFirstWithCursorAndFilters) {
  std::vector<std::string> all;  // In submission order.
  const std::string g1 = SubmitGated(1);
  all.push_back(g1);
  std::vector<std::string> noops;
  for (int i = 0; i < 4; ++i) {
    noops.push_back(SubmitOk("noop", nullptr));
    all.push_back(noops.back());
  }
  const std::string g2 = SubmitGated(2);
  all.push_back(g2);
  const std::string g3 = SubmitGated(3);
  all.push_back(g3);
  for (const auto& id : noops) ASSERT_EQ(WaitFinished(id).record.status, JobStatus::kSucceeded);
  ASSERT_TRUE(gate_.WaitStarted(1));

  std::vector<std::string> newest_first(all.rbegin(), all.rend());
  Page everything = List(JobQuery{});
  EXPECT_EQ(Ids(everything.jobs), newest_first);
  EXPECT_FALSE(everything.next.has_value());
  // Active jobs come with their live view.
  EXPECT_EQ(everything.jobs[0].record.status, JobStatus::kQueued);
  EXPECT_EQ(everything.jobs[0].position, std::optional<std::size_t>(1));
  EXPECT_EQ(everything.jobs.back().record.status, JobStatus::kRunning);

  // Pages of 3: 3 + 3 + 1, chained by the cursor.
  std::vector<std::string> paged;
  JobQuery q;
  q.limit = 3;
  std::vector<std::size_t> sizes;
  for (int page = 0; page < 10; ++page) {
    Page p = List(q);
    sizes.push_back(p.jobs.size());
    for (const auto& id : Ids(p.jobs)) paged.push_back(id);
    if (!p.next) break;
    q.before_seq = *p.next;
  }
  EXPECT_EQ(paged, newest_first);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 1}));

  JobQuery by_task;
  by_task.task = "gated";
  EXPECT_EQ(Ids(List(by_task).jobs), (std::vector<std::string>{g3, g2, g1}));

  JobQuery by_status;
  by_status.status = JobStatus::kSucceeded;
  EXPECT_EQ(Ids(List(by_status).jobs), (std::vector<std::string>(noops.rbegin(), noops.rend())));
  by_status.status = JobStatus::kQueued;
  EXPECT_EQ(Ids(List(by_status).jobs), (std::vector<std::string>{g3, g2}));
  by_status.status = JobStatus::kRunning;
  EXPECT_EQ(Ids(List(by_status).jobs), std::vector<std::string>{g1});

  JobQuery both;
  both.task = "noop";
  both.status = JobStatus::kSucceeded;
  both.limit = 2;
  Page first = List(both);
  EXPECT_EQ(Ids(first.jobs), (std::vector<std::string>{noops[3], noops[2]}));
  ASSERT_TRUE(first.next.has_value());
  both.before_seq = *first.next;
  Page second = List(both);
  EXPECT_EQ(Ids(second.jobs), (std::vector<std::string>{noops[1], noops[0]}));

  JobQuery none;
  none.task = "mandelbrot";
  EXPECT_TRUE(List(none).jobs.empty());
  gate_.OpenAll();
}

TEST_F(JobServiceTest, RetentionRemovesOnlyFinishedJobsOlderThanTheRetention) {
  ServerConfig c = BaseConfig();
  c.retention = std::chrono::hours(1);
  service_.reset();
  Start(c, nullptr, clock_);
  const std::string running = SubmitGated(1);
  const std::string queued = SubmitGated(2);
  const std::string done = SubmitOk("noop", nullptr);
  ASSERT_EQ(WaitFinished(done).record.status, JobStatus::kSucceeded);

  clock_.Advance(std::chrono::minutes(59));
  service_->RemoveExpired();
  EXPECT_EQ(StatusOf(done), JobStatus::kSucceeded) << "removed before its retention passed";

  clock_.Advance(std::chrono::minutes(1) + std::chrono::milliseconds(1));
  service_->RemoveExpired();
  auto r = Get(done);
  ASSERT_FALSE(r.has_value()) << "the finished job outlived its retention";
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(StatusOf(running), JobStatus::kRunning);
  EXPECT_EQ(StatusOf(queued), JobStatus::kQueued);
  EXPECT_EQ(Ids(List(JobQuery{}).jobs), (std::vector<std::string>{queued, running}));
  gate_.OpenAll();
}

TEST_F(JobServiceTest, AnIdempotencyKeyReplaysItsJobUntilItsTtlThenMakesANewOne) {
  ServerConfig c = BaseConfig();
  c.idempotency_ttl = std::chrono::hours(24);
  service_.reset();
  Start(c, nullptr, clock_);
  auto submit = [&](json::value input) {
    return Sync([&](JobService::SnapshotCallback done) {
      SubmitRequest req = Request("noop", std::move(input), 0);
      req.idempotency_key = "order-7";
      service_->Submit(std::move(req), std::move(done));
    });
  };
  auto first = submit(nullptr);
  ASSERT_TRUE(first.has_value()) << first.error().detail;
  WaitFinished(first->record.id);

  clock_.Advance(std::chrono::hours(23));
  service_->RemoveExpired();
  auto replay = submit(nullptr);
  ASSERT_TRUE(replay.has_value()) << replay.error().detail;
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->record.id, first->record.id);
  auto other = submit(json::value(1));
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kInvalidArgument) << "the key was used with another request";

  clock_.Advance(std::chrono::hours(1));
  service_->RemoveExpired();
  auto fresh = submit(json::value(1));
  ASSERT_TRUE(fresh.has_value()) << fresh.error().detail;
  EXPECT_FALSE(fresh->replayed);
  EXPECT_NE(fresh->record.id, first->record.id) << "past its ttl the key makes a new job";
}

TEST_F(JobServiceTest, DefaultRetentionKeepsFinishedJobs) {
  const std::string done = SubmitOk("noop", nullptr);
  ASSERT_EQ(WaitFinished(done).record.status, JobStatus::kSucceeded);
  service_->RemoveExpired();
  EXPECT_EQ(StatusOf(done), JobStatus::kSucceeded);
}

TEST_F(JobServiceTest, ConcurrentSubmitsAllRunOnce) {
  constexpr int kThreads = 4, kPerThread = 25;
  std::mutex mu;
  std::vector<std::string> ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        service_->Submit(Request("noop", nullptr, i % 3), [&](SnapshotOr r) {
          ASSERT_TRUE(r.has_value());
          std::lock_guard lock(mu);
          ids.push_back(r->record.id);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  // Submit answers once the job is stored, possibly on another thread.
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return ids.size() == static_cast<std::size_t>(kThreads * kPerThread);
  })) << "some submits were never answered";
  for (const auto& id : ids) {
    JobSnapshot s = WaitFinished(id);
    EXPECT_EQ(s.record.status, JobStatus::kSucceeded);
    EXPECT_EQ(s.record.attempts, 1);
  }
  JobQuery q;
  q.limit = 1000;
  EXPECT_EQ(List(q).jobs.size(), ids.size());
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "duplicate ids";
  EXPECT_EQ(Resource("cpu").in_use, 0);
}

TEST(JobServiceCreateTest, RejectsATaskWithoutAHandler) {
  ServerConfig c = DefaultConfig();
  TaskConfig t;
  t.name = "render";
  t.run = "builtin:render";
  c.tasks["render"] = t;
  ThreadPool pool(InProcessPoolSize(c), /*nice_increment=*/5);
  auto service = CreateService(c, TaskRegistry::WithBuiltins(), *OpenStore("memory"), &pool);
  ASSERT_FALSE(service.has_value());
  EXPECT_EQ(service.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(service.error().detail.find("render"), std::string::npos);
}

TEST(JobServiceCreateTest, RejectsAnInvalidConfig) {
  ServerConfig c = DefaultConfig();
  c.tasks["sleep"].uses = {{"gpu", 1}};  // No gpu declared.
  ThreadPool pool(InProcessPoolSize(c), /*nice_increment=*/5);
  auto service = CreateService(c, TaskRegistry::WithBuiltins(), *OpenStore("memory"), &pool);
  ASSERT_FALSE(service.has_value());
  EXPECT_EQ(service.error().code, ErrorCode::kInvalidArgument);
}

TEST(JobServiceCreateTest, RejectsATaskWithoutAnExecutor) {
  ServerConfig c = DefaultConfig();
  ThreadPool pool(1, /*nice_increment=*/5);
  auto executors = MakeTaskExecutors(c, TaskRegistry::WithBuiltins(), &pool);
  ASSERT_TRUE(executors.has_value()) << executors.error().detail;
  executors->erase("sleep");
  auto service = JobService::Create(c, std::move(*executors), *OpenStore("memory"));
  ASSERT_FALSE(service.has_value());
  EXPECT_EQ(service.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(service.error().detail.find("\"sleep\""), std::string::npos) << service.error().detail;
}

TEST(JobServiceCreateTest, ParsedConfigWithARenamedBuiltinRuns) {
  auto config = ParseConfig(R"(
[resources]
cpu = 2
gpu = 1

[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
)",
                            "inline.toml");
  ASSERT_TRUE(config.has_value()) << config.error().detail;
  ThreadPool pool(InProcessPoolSize(*config), /*nice_increment=*/5);
  auto service = CreateService(*config, TaskRegistry::WithBuiltins(), *OpenStore("memory"), &pool);
  ASSERT_TRUE(service.has_value()) << service.error().detail;
  auto p = std::make_shared<std::promise<SnapshotOr>>();
  auto f = p->get_future();
  (*service)->Submit(Request("render", json::object{{"ms", 1}}), [p](SnapshotOr r) { p->set_value(std::move(r)); });
  ASSERT_EQ(f.wait_for(kDeadline), std::future_status::ready);
  SnapshotOr submitted = f.get();
  ASSERT_TRUE(submitted.has_value());
  EXPECT_EQ(submitted->record.task, "render");
  auto bad = std::make_shared<std::promise<SnapshotOr>>();
  auto bad_f = bad->get_future();
  (*service)->Submit(Request("render", json::object{{"ms", "x"}}),
                     [bad](SnapshotOr r) { bad->set_value(std::move(r)); });
  ASSERT_EQ(bad_f.wait_for(kDeadline), std::future_status::ready);
  EXPECT_FALSE(bad_f.get().has_value()) << "the renamed task keeps the built-in's validator";
  bool gpu_seen = false;
  for (const ResourceInfo& r : (*service)->Resources()) gpu_seen |= r.name == "gpu";
  EXPECT_TRUE(gpu_seen);
}

}  // namespace
}  // namespace offload
