// JobService under a store that refuses writes, and the timers of attempts: what
// the service promises when things go wrong (docs/design.md, "What is handled").
#include "job_service_fixture.h"
#include "support/faulty_store.h"

namespace offload {
namespace {

using testing::FaultyStore;

// Parameter: whether the store is blocking (writer thread and batches, as SQLite)
// or applied inline (as the memory store): the two paths of StoreQueue.
class JobServiceStoreFaultTest : public JobServiceTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    auto memory = OpenStore("memory");
    ASSERT_TRUE(memory.has_value());
    auto faulty = std::make_unique<FaultyStore>(std::move(*memory), GetParam());
    store_ = faulty.get();
    Start(BaseConfig(), std::move(faulty));
  }
  std::optional<JobRecord> Stored(const std::string& id) {
    auto got = store_->inner().Get(id);
    EXPECT_TRUE(got.has_value());
    return got ? *got : std::nullopt;
  }

  FaultyStore* store_ = nullptr;  // Owned by the service.
};

// Before the fix the job left memory after its refused final write: GET served the
// stored `running` row, and a restart ran it again.
TEST_P(JobServiceStoreFaultTest, RefusedFinalStateStaysInMemoryAndIsWrittenOnceTheStoreTakesIt) {
  const std::string first = SubmitGated(1);
  ASSERT_TRUE(gate_.WaitStarted(1));
  // Its running state is stored first: a batched queue that still held it would
  // write it together with the final state, and refuse both.
  ASSERT_TRUE(Eventually([&] { return Stored(first) && Stored(first)->status == JobStatus::kRunning; }));
  store_->FailFinalWrites(true);
  gate_.Open(1);
  ASSERT_TRUE(Eventually([&] { return service_->store_health().unstored_finals == 1; }));
  EXPECT_NE(service_->store_health().last_error.find("injected"), std::string::npos);

  // The job's state in memory is the truth while the store lags behind.
  auto live = Get(first);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->record.status, JobStatus::kSucceeded);
  EXPECT_EQ(service_->active_jobs(), 1u);
  ASSERT_TRUE(Stored(first).has_value());
  EXPECT_EQ(Stored(first)->status, JobStatus::kRunning);

  // Nothing new starts while a finished job cannot be recorded: a submit is stored
  // and queued, and stays queued.
  const std::string second = SubmitGated(2);
  EXPECT_EQ(StatusOf(second), JobStatus::kQueued);
  EXPECT_EQ(gate_.started().size(), 1u);

  // It is tried again with back-off, not once.
  const std::uint64_t refused = store_->refused();
  ASSERT_TRUE(Eventually([&] { return store_->refused() >= refused + 2; }));

  store_->FailFinalWrites(false);
  ASSERT_TRUE(Eventually([&] { return service_->store_health().unstored_finals == 0; }));
  ASSERT_TRUE(Stored(first).has_value());
  EXPECT_EQ(Stored(first)->status, JobStatus::kSucceeded);
  EXPECT_EQ(Stored(first)->result->json, json::value(Tag(1)));
  // And work resumes on its own.
  ASSERT_TRUE(gate_.WaitStarted(2));
  gate_.Open(2);
  EXPECT_EQ(WaitFinished(second).record.status, JobStatus::kSucceeded);
  ASSERT_TRUE(Eventually([&] { return Stored(second) && Stored(second)->status == JobStatus::kSucceeded; }));
}

// A waiter hears "finished" only once the store says so too, however long that takes.
TEST_P(JobServiceStoreFaultTest, WaitersAreAnsweredOnceTheRefusedFinalStateIsStored) {
  const std::string id = SubmitGated(1);
  ASSERT_TRUE(gate_.WaitStarted(1));
  auto heard = std::make_shared<std::promise<JobSnapshot>>();
  ASSERT_NE(service_->AwaitFinish(id, [heard](ErrorOr<JobSnapshot> s) { heard->set_value(std::move(*s)); }), 0u);
  auto future = heard->get_future();
  store_->FailFinalWrites(true);
  gate_.Open(1);
  ASSERT_TRUE(Eventually([&] { return store_->refused() >= 2; }));
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  store_->FailFinalWrites(false);
  ASSERT_EQ(future.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(future.get().record.status, JobStatus::kSucceeded);
  EXPECT_EQ(Stored(id)->status, JobStatus::kSucceeded);
}

// Whichever write of a job after its insert is refused (its start, its end), the job
// ends recorded as it really ended.
TEST_P(JobServiceStoreFaultTest, EachRefusedWriteOfAJobLosesNothing) {
  for (int nth = 2; nth <= 3; ++nth) {
    SCOPED_TRACE(nth == 2 ? "refusing its start" : "refusing its end");
    const std::uint64_t base = store_->writes(), refused = store_->refused();
    // Write base + 1 is its insert, base + 2 its start, base + 3 its end: the gate
    // holds the job until its start is applied, so no batch merges them.
    store_->FailWrites(base + static_cast<std::uint64_t>(nth), 1);
    const std::string id = SubmitGated(nth);
    ASSERT_TRUE(gate_.WaitStarted(static_cast<std::size_t>(nth - 1)));
    service_->FlushStoreForTest();
    gate_.Open(nth);
    EXPECT_EQ(WaitFinished(id).record.status, JobStatus::kSucceeded);
    ASSERT_TRUE(Eventually([&] { return Stored(id) && Stored(id)->status == JobStatus::kSucceeded; }));
    EXPECT_EQ(Stored(id)->result->json, json::value(Tag(nth)));
    EXPECT_EQ(store_->refused(), refused + 1) << "the write meant to be refused was not";
  }
  EXPECT_EQ(service_->store_health().unstored_finals, 0u);
}

INSTANTIATE_TEST_SUITE_P(InlineAndBatched, JobServiceStoreFaultTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Batched" : "Inline"; });

class JobServiceTimerTest : public JobServiceTest {};

// Before the fix attempt 1's timeout timer, armed for 1 s, fired 1 s after attempt 1
// started and killed attempt 2 (same job, same seq) some 300 ms into its 700.
TEST_F(JobServiceTimerTest, RetryIsNotKilledByThePreviousAttemptsTimeout) {
  ServerConfig c = BaseConfig();
  c.tasks["echo"].timeout = Millis(1000);
  c.tasks["echo"].retries = 1;
  c.tasks["echo"].retry_backoff = Millis(1);
  service_.reset();
  Start(c);
  const std::string id = SubmitOk("echo", json::object{{"v", 1}, {"us", 700'000}, {"fail_until", 2}});
  JobSnapshot done = WaitFinished(id);
  EXPECT_EQ(done.record.status, JobStatus::kSucceeded)
      << (done.record.error ? done.record.error->type + ": " + done.record.error->message : "");
  EXPECT_EQ(done.record.attempts, 2);
}

// The timeout still applies to the attempt that runs too long.
TEST_F(JobServiceTimerTest, TimeoutStillStopsTheAttemptThatRunsTooLong) {
  ServerConfig c = BaseConfig();
  c.tasks["gated"].timeout = Millis(50);
  service_.reset();
  Start(c);
  const std::string id = SubmitGated(1);
  JobSnapshot done = WaitFinished(id);
  EXPECT_EQ(done.record.status, JobStatus::kFailed);
  ASSERT_TRUE(done.record.error.has_value());
  EXPECT_EQ(done.record.error->type, "timeout");
}

// Before the fix each finished job pinned its timer (and what it held) for its whole
// timeout: memory grew with the timeouts of jobs long gone.
TEST_F(JobServiceTimerTest, FinishedJobsHoldNoTimers) {
  ServerConfig c = BaseConfig();
  c.tasks["echo"].timeout = Millis(300'000);
  service_.reset();
  Start(c);
  const std::size_t idle = service_->PendingTimersForTest();  // Retention's.
  std::vector<std::string> ids;
  for (int i = 0; i < 500; ++i) ids.push_back(SubmitOk("echo", json::object{{"v", i}}));
  for (const auto& id : ids) ASSERT_EQ(WaitFinished(id).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(service_->PendingTimersForTest(), idle);
  // A canceled job in back-off drops its retry timer too.
  c.tasks["fails"].retries = 3;
  c.tasks["fails"].retry_backoff = Millis(60'000);
  service_.reset();
  Start(c);
  const std::string failing = SubmitOk("fails", json::object{});
  ASSERT_TRUE(Eventually([&] { return service_->PendingTimersForTest() == idle + 1; }));
  ASSERT_TRUE(Cancel(failing).has_value());
  EXPECT_EQ(service_->PendingTimersForTest(), idle);
}

TEST_F(JobServiceTest, EachCancelCauseHasItsOwnError) {
  const std::pair<CancelCause, const char*> causes[] = {{CancelCause::kRequest, "canceled"},
                                                        {CancelCause::kClientGone, "client_disconnected"},
                                                        {CancelCause::kRunTimeout, "run_timeout"},
                                                        {CancelCause::kShutdown, "shutdown"}};
  int tag = 0;
  for (auto [cause, type] : causes) {
    SCOPED_TRACE(type);
    const std::string id = SubmitGated(++tag);
    ASSERT_TRUE(gate_.WaitStarted(static_cast<std::size_t>(tag)));
    // cause is copied in: clang 14 cannot capture a structured binding by reference.
    auto canceled =
        Sync([&, cause = cause](JobService::SnapshotCallback done) { service_->Cancel(id, cause, std::move(done)); });
    ASSERT_TRUE(canceled.has_value());
    JobSnapshot done = WaitFinished(id);
    EXPECT_EQ(done.record.status, JobStatus::kCanceled);
    ASSERT_TRUE(done.record.error.has_value());
    EXPECT_EQ(done.record.error->type, type);
    if (cause != CancelCause::kRequest) {
      EXPECT_EQ(done.record.error->message.find("DELETE"), std::string::npos) << done.record.error->message;
    }
  }
}

}  // namespace
}  // namespace offload
