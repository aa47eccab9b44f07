// StoreQueue, both implementations: write order, group commit, the one-by-one retry of
// a refused batch, RunCallbacks's hand-over and what WaitForWrites and the destructor promise.
//
// Every state is reached on purpose: RecordingStore holds Apply at a gate, as a slow
// disk would, so that a test decides which writes queue behind a batch in flight; no
// test sleeps to wait for a state.
#include "store/store_queue.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/inline_store_queue.h"
#include "store/memory_store.h"
#include "store/threaded_store_queue.h"
#include "support/faulty_store.h"
#include "util/mutex.h"

namespace offload {
namespace {

using testing::FaultyStore;

// How long a test waits for something that must happen.
constexpr std::chrono::seconds kDeadline{10};
// How long a test gives a call that must block the chance to return wrongly: the only
// way to show that a call waits is to let it try not to. A correct queue passes
// whatever this is; a broken one fails unless the machine stalls this long.
constexpr std::chrono::milliseconds kGrace{100};

// A one-shot event another thread waits for.
class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  // True once notified; false if `timeout` passed first.
  bool WaitFor(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    MutexLock lock(&mu_);
    while (!notified_ && cv_.WaitUntil(&mu_, deadline)) {
    }
    return notified_;
  }
  bool notified() {
    MutexLock lock(&mu_);
    return notified_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool notified_ GUARDED_BY(mu_) = false;
};

// What happened, in order, from any thread.
class EventLog {
 public:
  void Add(std::string event) {
    MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() {
    MutexLock lock(&mu_);
    return events_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> events_ GUARDED_BY(mu_);
};

// "insert job-1 queued": one op as RecordingStore records it.
std::string Describe(const StoreOp& op) {
  return std::string(op.kind == StoreOp::Kind::kInsert ? "insert " : "update ") + op.job.id + " " +
         std::string(JobStatusName(op.job.status));
}

// A store that records every batch given to Apply and can hold Apply at a gate
// before it reaches the wrapped store. Thread-safe.
class RecordingStore final : public Store {
 public:
  RecordingStore(std::unique_ptr<Store> inner, bool blocking, std::size_t writers = 1)
      : inner_(std::move(inner)), blocking_(blocking), writers_(writers) {}

  // From now on Apply waits at the gate (at most kDeadline) until Release().
  void Hold() {
    MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    MutexLock lock(&mu_);
    held_ = false;
    cv_.SignalAll();
  }
  // Waits until `n` batches have reached Apply (held or not); false after kDeadline.
  bool WaitForBatches(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    MutexLock lock(&mu_);
    while (batches_.size() < n && cv_.WaitUntil(&mu_, deadline)) {
    }
    return batches_.size() >= n;
  }
  std::vector<std::vector<std::string>> batches() {
    MutexLock lock(&mu_);
    return batches_;
  }
  // Waits until OnIdle has been called `n` times; false after kDeadline.
  bool WaitForIdles(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    MutexLock lock(&mu_);
    while (idles_.size() < n && cv_.WaitUntil(&mu_, deadline)) {
    }
    return idles_.size() >= n;
  }
  // Per OnIdle call: how many batches had come by then.
  std::vector<std::size_t> idles() {
    MutexLock lock(&mu_);
    return idles_;
  }

  Status Apply(const std::vector<StoreOp>& ops) override {
    {
      MutexLock lock(&mu_);
      std::vector<std::string> batch;
      for (const StoreOp& op : ops) batch.push_back(Describe(op));
      batches_.push_back(std::move(batch));
      cv_.SignalAll();
      const auto deadline = std::chrono::steady_clock::now() + kDeadline;
      while (held_ && cv_.WaitUntil(&mu_, deadline)) {
      }
    }
    return inner_->Apply(ops);
  }
  ErrorOr<std::optional<JobRecord>> Get(const std::string& id) override { return inner_->Get(id); }
  ErrorOr<JobPage> List(const JobQuery& query) override { return inner_->List(query); }
  ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) override { return inner_->RemoveFinishedBefore(cutoff); }
  ErrorOr<std::vector<std::string>> FinishedWithFilesBefore(UnixMillis cutoff) override {
    return inner_->FinishedWithFilesBefore(cutoff);
  }
  ErrorOr<std::vector<JobRecord>> LoadUnfinished() override { return inner_->LoadUnfinished(); }
  ErrorOr<std::uint64_t> MaxSeq() override { return inner_->MaxSeq(); }
  ErrorOr<std::vector<IdempotencyEntry>> LoadIdempotencyKeys(UnixMillis since) override {
    return inner_->LoadIdempotencyKeys(since);
  }
  bool blocking() const override { return blocking_; }
  std::size_t writers() const override { return writers_; }
  void OnIdle() override {
    MutexLock lock(&mu_);
    idles_.push_back(batches_.size());
    cv_.SignalAll();
  }

 private:
  const std::unique_ptr<Store> inner_;
  const bool blocking_;
  const std::size_t writers_;
  Mutex mu_;
  CondVar cv_;  // A batch came, the gate opened, or OnIdle was called.
  std::vector<std::vector<std::string>> batches_ GUARDED_BY(mu_);
  std::vector<std::size_t> idles_ GUARDED_BY(mu_);
  bool held_ GUARDED_BY(mu_) = false;
};

StoreOp Insert(int n, JobStatus status = JobStatus::kQueued) {
  StoreOp op{StoreOp::Kind::kInsert, {}};
  op.job.id = "job-" + std::to_string(n);
  op.job.task = "echo";
  op.job.seq = static_cast<std::uint64_t>(n);
  op.job.status = status;
  op.job.input = std::make_shared<const boost::json::value>(n);
  return op;
}

StoreOp Update(int n, JobStatus status) {
  StoreOp op = Insert(n, status);
  op.kind = StoreOp::Kind::kUpdate;
  return op;
}

// "ok", or the error's code name.
std::string Outcome(const Status& s) { return s ? "ok" : std::string(ErrorCodeName(s.error().code)); }

// Store chain: RecordingStore -> FaultyStore -> MemoryStore. A blocking() store gets
// a ThreadedStoreQueue, another an InlineStoreQueue.
class StoreQueueFixture : public ::testing::Test {
 protected:
  void Open(bool blocking, std::size_t writers = 1) {
    auto faulty = std::make_unique<FaultyStore>(std::make_unique<MemoryStore>(), /*blocking=*/false);
    faulty_ = faulty.get();
    auto recording = std::make_unique<RecordingStore>(std::move(faulty), blocking, writers);
    store_ = recording.get();
    owned_store_ = std::move(recording);
    queue_ = StoreQueue::Create(store_);
  }

  // A callback that logs "<label> <outcome>".
  StoreQueue::WriteDone Logged(std::string label) {
    return [this, label](Status s) { log_.Add(label + " " + Outcome(s)); };
  }

  std::optional<JobRecord> Stored(int n) {
    auto got = store_->Get("job-" + std::to_string(n));
    EXPECT_TRUE(got.has_value());
    return got ? *got : std::nullopt;
  }

  EventLog log_;
  FaultyStore* faulty_ = nullptr;    // Owned by store_.
  RecordingStore* store_ = nullptr;  // Owned by owned_store_.
  std::unique_ptr<Store> owned_store_;
  std::unique_ptr<StoreQueue> queue_;  // Declared last: destroyed before the store.
};

// The parameter is the store's blocking().
class StoreQueueTest : public StoreQueueFixture, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override { Open(GetParam()); }
};

TEST_P(StoreQueueTest, CreatePicksTheImplementationByTheStore) {
  if (GetParam()) {
    EXPECT_NE(dynamic_cast<ThreadedStoreQueue*>(queue_.get()), nullptr);
  } else {
    EXPECT_NE(dynamic_cast<InlineStoreQueue*>(queue_.get()), nullptr);
  }
}

// However the writes fall into batches, the store sees them and the callbacks run in
// the order they were queued.
TEST_P(StoreQueueTest, WritesAreAppliedAndAnsweredInTheOrderTheyWereQueued) {
  constexpr int kJobs = 300;
  std::vector<std::string> expected;
  for (int n = 1; n <= kJobs; ++n) {
    queue_->Write(Insert(n), Logged("insert " + std::to_string(n)));
    expected.push_back("insert " + std::to_string(n) + " ok");
    if (n % 3 == 0) {
      queue_->Write(Update(n, JobStatus::kRunning), Logged("update " + std::to_string(n)));
      expected.push_back("update " + std::to_string(n) + " ok");
    }
    if (n % 5 == 0) queue_->Write(Update(n, JobStatus::kSucceeded), nullptr);
    queue_->RunCallbacks();
  }
  queue_->WaitForWrites();
  EXPECT_EQ(log_.events(), expected);

  // The ops the store applied, all batches end to end: each job's first, in job order.
  std::vector<std::string> first_ops;
  for (const auto& batch : store_->batches()) {
    for (const std::string& op : batch) {
      if (op.rfind("insert ", 0) == 0) first_ops.push_back(op.substr(0, op.rfind(' ')));
    }
  }
  ASSERT_EQ(first_ops.size(), static_cast<std::size_t>(kJobs));
  for (int n = 1; n <= kJobs; ++n) EXPECT_EQ(first_ops[n - 1], "insert job-" + std::to_string(n));
  // And each job holds its last state.
  for (int n = 1; n <= kJobs; ++n) {
    const JobStatus last = n % 5 == 0 ? JobStatus::kSucceeded : n % 3 == 0 ? JobStatus::kRunning : JobStatus::kQueued;
    ASSERT_TRUE(Stored(n).has_value()) << n;
    EXPECT_EQ(Stored(n)->status, last) << n;
  }
}

// A write refused on its own (the batch holds nothing else) fails its callback, and
// is not tried again; the next write goes on.
TEST_P(StoreQueueTest, ARefusedWriteFailsItsCallbackOnly) {
  faulty_->FailWrites(1, 1);
  queue_->Write(Insert(1), Logged("1"));
  queue_->WaitForWrites();
  queue_->Write(Insert(2), Logged("2"));
  queue_->WaitForWrites();
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 unavailable", "2 ok"}));
  EXPECT_EQ(faulty_->writes(), 2u);
  EXPECT_FALSE(Stored(1).has_value());
  EXPECT_TRUE(Stored(2).has_value());
}

// A callback may queue a write and call RunCallbacks; the new write's callback runs after it
// returns, never inside it.
TEST_P(StoreQueueTest, ACallbackMayWriteAndRunCallbacks) {
  StoreQueue* queue = queue_.get();
  queue_->Write(Insert(1), [this, queue](Status) {
    log_.Add("1 begins");
    queue->Write(Insert(2), Logged("2"));
    queue->RunCallbacks();
    log_.Add("1 ends");
  });
  queue_->WaitForWrites();  // Write 1 and its callback, which queued write 2 ...
  queue_->WaitForWrites();  // ... and write 2.
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 begins", "1 ends", "2 ok"}));
  EXPECT_TRUE(Stored(2).has_value());
}

// The destructor applies what is queued, and what its callbacks queue meanwhile, and
// runs every callback before it returns.
TEST_P(StoreQueueTest, TheDestructorAppliesEveryWriteAndRunsEveryCallback) {
  if (GetParam()) {
    // Writes 1 and 2 queue behind a batch in flight, so that they share the next one
    // and write 3, queued by 1's callback, comes after 2.
    store_->Hold();
    queue_->Write(Insert(100), nullptr);
    ASSERT_TRUE(store_->WaitForBatches(1));
  }
  StoreQueue* queue = queue_.get();
  queue_->Write(Insert(1), [this, queue](Status s) {
    log_.Add("1 " + Outcome(s));
    queue->Write(Insert(3), Logged("3"));
  });
  queue_->Write(Insert(2), Logged("2"));
  store_->Release();
  queue_.reset();
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 ok", "2 ok", "3 ok"}));
  for (int n = 1; n <= 3; ++n) EXPECT_TRUE(Stored(n).has_value()) << n;
}

INSTANTIATE_TEST_SUITE_P(BothQueues, StoreQueueTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Threaded" : "Inline"; });

class ThreadedStoreQueueTest : public StoreQueueFixture {
 protected:
  void SetUp() override { Open(/*blocking=*/true); }

  // Holds the writer inside the Apply of a first write (job 100), so that the writes
  // queued next wait behind it; Release() lets it go.
  void HoldTheWriter() {
    store_->Hold();
    queue_->Write(Insert(100), nullptr);
    ASSERT_TRUE(store_->WaitForBatches(1));
  }
};

// Group commit: the writes queued while a batch is in flight are applied together.
TEST_F(ThreadedStoreQueueTest, WritesQueuedWhileTheWriterIsBusyGoInOneBatch) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  queue_->Write(Insert(1), Logged("1"));
  queue_->Write(Insert(2), Logged("2"));
  queue_->Write(Insert(3), Logged("3"));
  store_->Release();
  queue_->WaitForWrites();
  EXPECT_EQ(store_->batches(),
            (std::vector<std::vector<std::string>>{
                {"insert job-100 queued"}, {"insert job-1 queued", "insert job-2 queued", "insert job-3 queued"}}));
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 ok", "2 ok", "3 ok"}));
}

// Upkeep (the store's OnIdle) waits for a moment with no write queued: not between
// two batches of a backlog.
TEST_F(ThreadedStoreQueueTest, TheStoreHearsOfIdleMomentsOnlyOnceTheQueueIsEmpty) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  queue_->Write(Insert(1), nullptr);
  queue_->Write(Insert(2), nullptr);
  store_->Release();
  ASSERT_TRUE(store_->WaitForIdles(1));
  EXPECT_EQ(store_->idles(), (std::vector<std::size_t>{2})) << "idle between the held batch and the next";
}

// Of several writes of one job in a batch only its last state is written, in the
// place of its first write; each write's callback still runs.
TEST_F(ThreadedStoreQueueTest, WritesOfOneJobInABatchAreWrittenOnceWithItsLastState) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  queue_->Write(Insert(1), Logged("insert 1"));
  queue_->Write(Insert(2), Logged("insert 2"));
  queue_->Write(Update(1, JobStatus::kRunning), Logged("start 1"));
  queue_->Write(Update(1, JobStatus::kSucceeded), Logged("end 1"));
  store_->Release();
  queue_->WaitForWrites();
  ASSERT_EQ(store_->batches().size(), 2u);
  EXPECT_EQ(store_->batches()[1], (std::vector<std::string>{"insert job-1 succeeded", "insert job-2 queued"}));
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"insert 1 ok", "insert 2 ok", "start 1 ok", "end 1 ok"}));
  EXPECT_EQ(Stored(1)->status, JobStatus::kSucceeded);
}

// A batch refused for one bad op (a second insert of job 100) is applied again one op
// at a time: only that op fails, and the writes merged into one op share its result.
TEST_F(ThreadedStoreQueueTest, ARefusedBatchIsAppliedOneOpAtATimeSoOnlyTheBadOpFails) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  queue_->Write(Insert(100), Logged("again 100"));
  queue_->Write(Insert(2), Logged("insert 2"));
  queue_->Write(Update(2, JobStatus::kRunning), Logged("start 2"));
  queue_->Write(Insert(3), Logged("insert 3"));
  store_->Release();
  queue_->WaitForWrites();
  EXPECT_EQ(store_->batches(), (std::vector<std::vector<std::string>>{
                                   {"insert job-100 queued"},
                                   {"insert job-100 queued", "insert job-2 running", "insert job-3 queued"},
                                   {"insert job-100 queued"},
                                   {"insert job-2 running"},
                                   {"insert job-3 queued"}}));
  EXPECT_EQ(log_.events(),
            (std::vector<std::string>{"again 100 conflict", "insert 2 ok", "start 2 ok", "insert 3 ok"}));
  EXPECT_EQ(Stored(2)->status, JobStatus::kRunning);
  EXPECT_TRUE(Stored(3).has_value());
}

// A batch refused for a tenant at its max_queued: the rest of it is applied together,
// the quota's inserts (and their jobs' other writes) alone; only those fail.
TEST_F(ThreadedStoreQueueTest, ABatchRefusedForAQuotaAppliesTheRestTogether) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  faulty_->RefuseTenant("alice");
  StoreOp capped = Insert(1);
  capped.job.tenant = "alice";
  capped.tenant_max_queued = 5;
  StoreOp canceled = Update(1, JobStatus::kCanceled);
  canceled.job.tenant = "alice";
  queue_->Write(Insert(2), Logged("insert 2"));
  queue_->Write(std::move(capped), Logged("insert 1"));
  queue_->Write(Update(2, JobStatus::kRunning), Logged("start 2"));
  queue_->Write(Insert(3), Logged("insert 3"));
  queue_->Write(std::move(canceled), Logged("cancel 1"));
  store_->Release();
  queue_->WaitForWrites();
  EXPECT_EQ(store_->batches(), (std::vector<std::vector<std::string>>{
                                   {"insert job-100 queued"},
                                   {"insert job-2 running", "insert job-1 canceled", "insert job-3 queued"},
                                   {"insert job-2 running", "insert job-3 queued"},
                                   {"insert job-1 canceled"}}));
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"insert 2 ok", "insert 1 quota_exceeded", "start 2 ok",
                                                     "insert 3 ok", "cancel 1 quota_exceeded"}));
  EXPECT_EQ(Stored(2)->status, JobStatus::kRunning);
  EXPECT_TRUE(Stored(3).has_value());
  EXPECT_FALSE(Stored(1).has_value());
}

// A batch the disk refused once (FaultyStore) is tried op by op, and nothing is lost.
TEST_F(ThreadedStoreQueueTest, ABatchTheDiskRefusedIsTriedOpByOp) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  faulty_->FailWrites(2, 1);  // Apply 1 is job 100's; 2 is the batch below.
  queue_->Write(Insert(1), Logged("1"));
  queue_->Write(Insert(2), Logged("2"));
  store_->Release();
  queue_->WaitForWrites();
  EXPECT_EQ(store_->batches(), (std::vector<std::vector<std::string>>{{"insert job-100 queued"},
                                                                      {"insert job-1 queued", "insert job-2 queued"},
                                                                      {"insert job-1 queued"},
                                                                      {"insert job-2 queued"}}));
  EXPECT_EQ(faulty_->refused(), 1u);
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 ok", "2 ok"}));
  EXPECT_TRUE(Stored(1).has_value());
  EXPECT_TRUE(Stored(2).has_value());
}

// Write returns while the disk is busy; the callback runs on the writer thread, and
// RunCallbacks runs nothing.
TEST_F(ThreadedStoreQueueTest, CallbacksRunOnTheWriterThreadNotInRunCallbacks) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  std::thread::id ran_on;
  queue_->Write(Insert(1), [&](Status) {
    ran_on = std::this_thread::get_id();
    log_.Add("1");
  });
  queue_->RunCallbacks();
  EXPECT_TRUE(log_.events().empty());
  store_->Release();
  queue_->WaitForWrites();
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1"}));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST_F(ThreadedStoreQueueTest, WaitForWritesWaitsForTheBatchInFlight) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  queue_->Write(Insert(1), Logged("1"));
  Notification returned;
  std::thread releaser([&] {
    returned.WaitFor(kGrace);  // Expected to time out: WaitForWrites must not return yet.
    store_->Release();
  });
  queue_->WaitForWrites();
  const std::vector<std::string> seen = log_.events();
  returned.Notify();
  releaser.join();
  EXPECT_EQ(seen, (std::vector<std::string>{"1 ok"})) << "WaitForWrites returned before the write's callback ran";
}

// No order between reads and writes: a read runs on a reader thread while a write
// queued before it is still on its way to the disk, and does not see it.
TEST_F(ThreadedStoreQueueTest, ReadsDoNotWaitForWrites) {
  ASSERT_NO_FATAL_FAILURE(HoldTheWriter());
  Notification read;
  std::thread::id ran_on;
  bool found = true;
  queue_->Read([&] {
    ran_on = std::this_thread::get_id();
    auto got = store_->Get("job-100");
    found = !got || got->has_value();
    read.Notify();
  });
  ASSERT_TRUE(read.WaitFor(kDeadline)) << "the read waited for the write";
  EXPECT_FALSE(found);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  store_->Release();
}

// A store that runs two writes at once (PostgreSQL's writers) gets two writers, each
// with its share of the jobs.
class TwoWriterStoreQueueTest : public StoreQueueFixture {
 protected:
  void SetUp() override { Open(/*blocking=*/true, /*writers=*/2); }
  // A job number whose writes go to the other writer than job `n`'s.
  static int OnTheOtherWriter(int n) {
    auto writer_of = [](int m) { return std::hash<std::string>{}("job-" + std::to_string(m)) % 2; };
    int other = n + 1;
    while (writer_of(other) == writer_of(n)) ++other;
    return other;
  }
};

TEST_F(TwoWriterStoreQueueTest, AnotherJobsWritesGoOnWhileOneJobsWaitInOrder) {
  store_->Hold();
  queue_->Write(Insert(1), Logged("insert 1"));
  ASSERT_TRUE(store_->WaitForBatches(1));
  queue_->Write(Update(1, JobStatus::kRunning), Logged("start 1"));  // Behind job 1's insert.
  const int other = OnTheOtherWriter(1);
  queue_->Write(Insert(other), Logged("insert other"));
  EXPECT_TRUE(store_->WaitForBatches(2)) << "the other job's write waited for job 1's batch";
  store_->Release();
  queue_->WaitForWrites();
  const auto batches = store_->batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<std::string>{"insert job-1 queued"}));
  EXPECT_EQ(batches[1], (std::vector<std::string>{"insert job-" + std::to_string(other) + " queued"}));
  EXPECT_EQ(batches[2], (std::vector<std::string>{"update job-1 running"}));
  EXPECT_EQ(Stored(1)->status, JobStatus::kRunning);
  EXPECT_TRUE(Stored(other).has_value());
}

// A callback on one writer may queue a write to the other, which had nothing left to
// do: the destructor still applies it.
TEST_F(TwoWriterStoreQueueTest, TheDestructorAppliesWhatACallbackQueuesToTheOtherWriter) {
  const int other = OnTheOtherWriter(1);
  store_->Hold();
  StoreQueue* queue = queue_.get();  // queue_ is null while it is destroyed.
  queue_->Write(Insert(1), [this, queue, other](Status s) {
    log_.Add("insert 1 " + Outcome(s));
    queue->Write(Insert(other), Logged("insert other"));
  });
  ASSERT_TRUE(store_->WaitForBatches(1));
  std::thread releaser([&] {
    std::this_thread::sleep_for(kGrace);  // Lets the destructor start while job 1 is held.
    store_->Release();
  });
  queue_.reset();
  releaser.join();
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"insert 1 ok", "insert other ok"}));
  EXPECT_TRUE(Stored(other).has_value());
}

class InlineStoreQueueTest : public StoreQueueFixture {
 protected:
  void SetUp() override { Open(/*blocking=*/false); }
};

// The store holds a write as soon as Write returns, so a read right after sees it;
// the callback waits for RunCallbacks, which runs it on the calling thread.
TEST_F(InlineStoreQueueTest, WriteAppliesAtOnceAndLeavesTheCallbackToRunCallbacks) {
  std::thread::id ran_on;
  queue_->Write(Insert(1), [&](Status s) {
    ran_on = std::this_thread::get_id();
    log_.Add("1 " + Outcome(s));
  });
  EXPECT_EQ(store_->batches(), (std::vector<std::vector<std::string>>{{"insert job-1 queued"}}));
  bool found = false;
  queue_->Read([&] {
    auto got = store_->Get("job-1");
    found = got && got->has_value();
  });
  EXPECT_TRUE(found) << "Read did not run inline, or did not see the write";
  EXPECT_TRUE(log_.events().empty()) << "Write ran its callback";
  queue_->RunCallbacks();
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 ok"}));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

// Each write is applied alone: a bad one fails, the others are not touched.
TEST_F(InlineStoreQueueTest, EachWriteIsAppliedAlone) {
  queue_->Write(Insert(1), Logged("1"));
  queue_->Write(Insert(1), Logged("1 again"));
  queue_->Write(Insert(2), Logged("2"));
  queue_->RunCallbacks();
  EXPECT_EQ(store_->batches(), (std::vector<std::vector<std::string>>{
                                   {"insert job-1 queued"}, {"insert job-1 queued"}, {"insert job-2 queued"}}));
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1 ok", "1 again conflict", "2 ok"}));
}

// Thread A is running callbacks (held inside the first). A RunCallbacks on this thread hands
// its callback over to A and returns at once; A runs it, in order, before it stops.
TEST_F(InlineStoreQueueTest, RunCallbacksHandsItsCallbacksToTheThreadAlreadyRunningThem) {
  Notification in_first, release_first;
  std::thread::id second_ran_on;
  queue_->Write(Insert(1), [&](Status) {
    log_.Add("1");
    in_first.Notify();
    release_first.WaitFor(kDeadline);
  });
  std::thread a([&] { queue_->RunCallbacks(); });
  const std::thread::id a_id = a.get_id();
  ASSERT_TRUE(in_first.WaitFor(kDeadline));
  queue_->Write(Insert(2), [&](Status) {
    second_ran_on = std::this_thread::get_id();
    log_.Add("2");
  });
  queue_->RunCallbacks();  // Returns at once: A is running them.
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1"}));
  release_first.Notify();
  a.join();
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(second_ran_on, a_id);
}

// Unlike RunCallbacks, WaitForWrites does wait for the callbacks another thread is running.
TEST_F(InlineStoreQueueTest, WaitForWritesWaitsForCallbacksRunOnAnotherThread) {
  Notification in_first, release_first;
  queue_->Write(Insert(1), [&](Status) {
    in_first.Notify();
    release_first.WaitFor(kDeadline);
  });
  std::thread a([&] { queue_->RunCallbacks(); });
  ASSERT_TRUE(in_first.WaitFor(kDeadline));
  queue_->Write(Insert(2), Logged("2"));
  queue_->Write(Insert(3), nullptr);
  Notification returned;
  std::thread releaser([&] {
    returned.WaitFor(kGrace);  // Expected to time out: WaitForWrites must not return yet.
    release_first.Notify();
  });
  queue_->WaitForWrites();
  const std::vector<std::string> seen = log_.events();
  returned.Notify();
  releaser.join();
  a.join();
  EXPECT_EQ(seen, (std::vector<std::string>{"2 ok"})) << "WaitForWrites returned before a callback ran";
}

}  // namespace
}  // namespace offload
