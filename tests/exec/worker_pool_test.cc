#include "exec/worker_pool.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "exec/exec_test_util.h"
#include "exec/proc_util.h"

namespace offload {
namespace {

using namespace std::chrono_literals;
using testing::CountOpenFds;
using testing::CountZombieChildren;
using testing::Describe;
using testing::IsDead;
using testing::Pending;
using testing::ReadFileForTest;
using testing::WaitUntil;
namespace json = boost::json;

// tests/exec/testdata/test_worker.py: each job's input names an "op".
class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sup_ = ProcessSupervisor::Create();
    dir_ = std::filesystem::temp_directory_path() / ("offload-pool-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    testing::WarmUp(*sup_);
    fds_before_ = CountOpenFds(::getpid());
  }
  void TearDown() override {
    pool_.reset();
    EXPECT_EQ(CountZombieChildren(::getpid()), 0);
    EXPECT_TRUE(testing::ChildrenOf(::getpid()).empty());
    EXPECT_TRUE(WaitUntil([&] { return CountOpenFds(::getpid()) == fds_before_; }, 5s))
        << CountOpenFds(::getpid()) << " open, " << fds_before_ << " before";
    std::filesystem::remove_all(dir_);
  }

  static WorkerPoolOptions Options(std::map<std::string, std::string> env = {}) {
    WorkerPoolOptions o;
    o.task = "test";
    o.spawn.argv = {testing::TestPython(), OFFLOAD_SOURCE_DIR "/tests/exec/testdata/test_worker.py"};
    env["PYTHONPATH"] = OFFLOAD_SOURCE_DIR "/clients/python";
    env["PYTHONDONTWRITEBYTECODE"] = "1";
    o.spawn.environment = MergeEnvironment(env);
    o.workers = 1;
    return o;
  }
  WorkerPool& Make(WorkerPoolOptions o) {
    pool_ = std::make_unique<WorkerPool>(sup_, std::move(o));
    return *pool_;
  }

  // Runs one job to its end.
  Result Run(json::value input, std::string id = "job-1") {
    Pending p(*pool_, std::move(input), std::move(id));
    auto r = p.Wait();
    EXPECT_TRUE(r) << "no outcome within the deadline";
    return r ? *r : Result::Fail("test", "no outcome");
  }
  json::value Ok(json::value input) {
    Result r = Run(std::move(input));
    EXPECT_TRUE(r.ok()) << Describe(r);
    return r.ok() ? r.output()->json : json::value();
  }
  static std::int64_t Pid(const json::value& v) {
    return v.is_object() && v.as_object().contains("pid") ? v.at("pid").as_int64() : -1;
  }

  std::shared_ptr<ProcessSupervisor> sup_;
  std::unique_ptr<WorkerPool> pool_;
  std::filesystem::path dir_;
  int fds_before_ = 0;
};

TEST_F(WorkerPoolTest, AWorkerServesManyJobsAndLoadsOnce) {
  Make(Options({{"LOAD_MS", "100"}}));
  std::int64_t pid = -1;
  for (int i = 1; i <= 5; ++i) {
    json::value v = Ok(json::parse(R"({"op": "echo", "value": )" + std::to_string(i) + "}"));
    EXPECT_EQ(v.at("value").as_int64(), i);
    EXPECT_EQ(v.at("loads").as_int64(), 1);
    EXPECT_EQ(v.at("jobs").as_int64(), i);
    if (pid < 0) pid = Pid(v);
    EXPECT_EQ(Pid(v), pid);
  }
  EXPECT_EQ(pool_->StatsForTest().started, 1);
}

TEST_F(WorkerPoolTest, WorkersArePreforkedBeforeTheFirstJob) {
  auto o = Options();
  o.workers = 2;
  Make(o);
  ASSERT_TRUE(WaitUntil([&] { return pool_->StatsForTest().ready_pids.size() == 2; }));
}

TEST_F(WorkerPoolTest, ReplacesAWorkerAfterMaxJobs) {
  auto o = Options();
  o.max_jobs_per_worker = 2;
  Make(o);
  std::vector<std::int64_t> pids;
  for (int i = 0; i < 5; ++i) {
    json::value v = Ok(json::parse(R"({"op": "echo"})"));
    EXPECT_EQ(v.at("loads").as_int64(), 1);
    pids.push_back(Pid(v));
  }
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
  EXPECT_EQ(pids[2], pids[3]);
  EXPECT_NE(pids[3], pids[4]);
  EXPECT_TRUE(IsDead(static_cast<pid_t>(pids[0])));
}

TEST_F(WorkerPoolTest, ReplacesAWorkerOverMaxRss) {
  auto o = Options();
  o.max_rss = 80 << 20;
  Make(o);
  const auto a = Pid(Ok(json::parse(R"({"op": "echo"})")));
  EXPECT_EQ(Pid(Ok(json::parse(R"({"op": "echo"})"))), a);             // Small: kept.
  EXPECT_EQ(Pid(Ok(json::parse(R"({"op": "grow", "mb": 120})"))), a);  // Crosses the line...
  const auto b = Pid(Ok(json::parse(R"({"op": "echo"})")));
  EXPECT_NE(b, a);  // ...and is replaced after that job.
  EXPECT_EQ(pool_->StatsForTest().unexpected_exits, 0);
}

TEST_F(WorkerPoolTest, ACrashMidJobFailsItAndAFreshWorkerTakesOver) {
  Make(Options());
  const auto a = Pid(Ok(json::parse(R"({"op": "echo"})")));
  Result r = Run(json::parse(R"({"op": "crash", "code": 7})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "worker_died");
  EXPECT_NE(r.error().message.find("exited with status 7"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("crashing mid-job"), std::string::npos) << r.error().message;
  Result segv = Run(json::parse(R"({"op": "segv"})"));
  ASSERT_FALSE(segv.ok());
  EXPECT_NE(segv.error().message.find("SIGSEGV"), std::string::npos) << segv.error().message;
  const auto b = Pid(Ok(json::parse(R"({"op": "echo"})")));
  EXPECT_NE(b, a);
  EXPECT_EQ(pool_->StatsForTest().unexpected_exits, 2);
}

TEST_F(WorkerPoolTest, ACrashLoopAtStartBacksOffAndFailsWaitingJobs) {
  auto o = Options();
  o.spawn.argv = {"/bin/sh", "-c", "echo 'test_worker: crashing at start as asked' >&2; exit 3"};
  o.backoff_initial = 100ms;
  Make(o);
  const auto t0 = std::chrono::steady_clock::now();
  Result r = Run(json::parse(R"({"op": "echo"})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "worker_died");
  EXPECT_NE(r.error().message.find("before it was ready"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("crashing at start"), std::string::npos) << r.error().message;
  // Restarts wait 100, 200, 400 ms...: four starts take at least 700 ms.
  ASSERT_TRUE(WaitUntil([&] { return pool_->StatsForTest().started >= 4; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 690ms);
}

TEST_F(WorkerPoolTest, CancelOfARunningJobKillsItsWorker) {
  Make(Options());
  const auto a = Pid(Ok(json::parse(R"({"op": "echo"})")));
  Pending p(*pool_, json::parse(R"({"op": "progress", "ms": 60000})"));
  ASSERT_TRUE(WaitUntil([&] { return p.context().progress() == 0.5; }));
  p.context().RequestStop(StopReason::kCanceled);
  auto r = p.Wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error().type, "canceled");
  EXPECT_TRUE(IsDead(static_cast<pid_t>(a)));
  EXPECT_NE(Pid(Ok(json::parse(R"({"op": "echo"})"))), a);
  EXPECT_EQ(pool_->StatsForTest().unexpected_exits, 0);
}

TEST_F(WorkerPoolTest, TimeoutOfAWorkerIgnoringSigtermEndsWithSigkill) {
  auto o = Options();
  o.kill_grace = 300ms;
  Make(o);
  Pending p(*pool_, json::parse(R"({"op": "ignore_term"})"));
  ASSERT_TRUE(WaitUntil([&] { return p.context().progress() == 0.5; }));
  const auto t0 = std::chrono::steady_clock::now();
  p.context().RequestStop(StopReason::kTimeout);
  auto r = p.Wait(5s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 290ms);
  EXPECT_TRUE(Run(json::parse(R"({"op": "noop"})")).ok());
}

TEST_F(WorkerPoolTest, AStoppedWorkerTakesItsGrandchildrenAlong) {
  Make(Options());
  const std::string pidfile = (dir_ / "grandchild").string();
  Pending p(*pool_, json::object{{"op", "grandchild"}, {"pidfile", pidfile}});
  ASSERT_TRUE(WaitUntil([&] { return !ReadFileForTest(pidfile).empty(); }));
  const pid_t grandchild = std::atoi(ReadFileForTest(pidfile).c_str());
  ASSERT_GT(grandchild, 0);
  p.context().RequestStop(StopReason::kCanceled);
  ASSERT_TRUE(p.Wait(5s));
  EXPECT_TRUE(WaitUntil([&] { return IsDead(grandchild); }, 5s));
}

TEST_F(WorkerPoolTest, StdoutFloodFailsTheJobAndTheWorkerIsReplaced) {
  auto o = Options();
  o.max_result = 1 << 20;
  o.kill_grace = 1s;
  Make(o);
  Result r = Run(json::parse(R"({"op": "flood", "mb": 20})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "result_too_large");
  EXPECT_TRUE(Ok(json::parse(R"({"op": "echo"})")).is_object());
}

TEST_F(WorkerPoolTest, ErrorsFromTheWorkerFailTheJobButKeepTheWorker) {
  Make(Options());
  const auto a = Pid(Ok(json::parse(R"({"op": "echo"})")));
  Result invalid = Run(json::parse(R"({"op": "fail", "type": "invalid_input", "message": "no x"})"));
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.error().type, "invalid_input");
  EXPECT_EQ(invalid.error().message, "no x");
  Result raised = Run(json::parse(R"({"op": "raise"})"));
  ASSERT_FALSE(raised.ok());
  EXPECT_EQ(raised.error().type, "handler_error");
  EXPECT_EQ(raised.error().message, "ValueError: raised as asked");
  EXPECT_EQ(Pid(Ok(json::parse(R"({"op": "echo"})"))), a);
}

TEST_F(WorkerPoolTest, AResultWithANumberOutOfRangeFailsTheJobNamingIt) {
  Make(Options());
  Result r =
      Run(json::object{{"op", "raw"}, {"line", R"({"type":"result","id":"$ID","result":{"x":[1,1e400]}})"}}, "raw-job");
  ASSERT_FALSE(r.ok()) << "1e400 became " << Describe(r);
  EXPECT_EQ(r.error().type, "invalid_result");
  EXPECT_NE(r.error().message.find("result.x[1]: the number 1e400 is out of range"), std::string::npos)
      << r.error().message;
  // The worker's own result for raw-job comes after and is ignored; the worker serves on.
  EXPECT_TRUE(Ok(json::parse(R"({"op": "echo"})")).is_object());
}

TEST_F(WorkerPoolTest, InputNumbersReachTheWorkerWithTheirKind) {
  Make(Options());
  EXPECT_EQ(Ok(json::parse(R"({"op": "types", "values": [1.0, 2, 2.5, -0.0, 1e300, 18446744073709551615]})")),
            json::parse(R"(["float", "int", "float", "float", "float", "int"])"));
}

TEST_F(WorkerPoolTest, StrayStdoutLinesAreIgnored) {
  Make(Options());
  EXPECT_EQ(Ok(json::parse(R"({"op": "noise"})")), json::value("ok"));
}

TEST_F(WorkerPoolTest, BinaryResultsComeBase64Encoded) {
  auto o = Options();
  o.content_type = "application/octet-stream";
  Make(o);
  Result r = Run(json::parse(R"({"op": "binary"})"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  std::string expected;
  for (int i = 0; i < 256; ++i) expected.push_back(static_cast<char>(i));
  EXPECT_EQ(r.output()->bytes, expected);
  EXPECT_EQ(r.output()->content_type, "application/octet-stream");
}

TEST_F(WorkerPoolTest, JobsWaitForABusyWorkerAndCanBeCanceledWhileWaiting) {
  Make(Options());
  Pending first(*pool_, json::parse(R"({"op": "sleep", "ms": 300})"), "first");
  Pending second(*pool_, json::parse(R"({"op": "echo"})"), "second");
  Pending third(*pool_, json::parse(R"({"op": "echo"})"), "third");
  ASSERT_TRUE(WaitUntil([&] { return pool_->StatsForTest().waiting_jobs == 2; }));
  second.context().RequestStop(StopReason::kCanceled);
  auto r2 = second.Wait(2s);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->error().type, "canceled");
  EXPECT_FALSE(first.done());  // The stop did not touch the running job.
  auto r1 = first.Wait();
  auto r3 = third.Wait();
  ASSERT_TRUE(r1 && r3);
  EXPECT_TRUE(r1->ok()) << Describe(*r1);
  ASSERT_TRUE(r3->ok()) << Describe(*r3);
  EXPECT_EQ(Pid(r1->output()->json), Pid(r3->output()->json));
}

TEST_F(WorkerPoolTest, DestroyingThePoolStopsBusyWorkers) {
  Make(Options());
  Pending p(*pool_, json::parse(R"({"op": "progress", "ms": 60000})"));
  ASSERT_TRUE(WaitUntil([&] { return p.context().progress() == 0.5; }));
  pool_.reset();
  auto r = p.Wait(1s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error().type, "shutdown");
}

TEST_F(WorkerPoolTest, AProgramThatCannotStartFailsJobsClearly) {
  auto o = Options();
  o.spawn.argv = {"/nonexistent/worker"};
  Make(o);
  Result r = Run(nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "worker_unavailable");
  EXPECT_NE(r.error().message.find("/nonexistent/worker"), std::string::npos) << r.error().message;
}

TEST_F(WorkerPoolTest, ThroughputOfNoopJobs) {
  auto o = Options();
  o.workers = 2;
  Make(o);
  ASSERT_TRUE(WaitUntil([&] { return pool_->StatsForTest().ready_pids.size() == 2; }));
  constexpr int kJobs = 2000;
  const auto t0 = std::chrono::steady_clock::now();
  // Keep 8 in flight, as a scheduler with a few slots would.
  std::deque<std::unique_ptr<Pending>> inflight;
  int submitted = 0;
  while (submitted < kJobs || !inflight.empty()) {
    while (submitted < kJobs && inflight.size() < 8) {
      inflight.push_back(
          std::make_unique<Pending>(*pool_, json::parse(R"({"op": "noop"})"), "job-" + std::to_string(submitted++)));
    }
    auto r = inflight.front()->Wait();
    ASSERT_TRUE(r && r->ok());
    inflight.pop_front();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ info ] %d noop jobs on 2 Python workers in %.3f s: %.0f jobs/s\n", kJobs, secs, kJobs / secs);
}

// tests/exec/testdata/feature_worker.py: the optional features, by hand.
WorkerPoolOptions FeatureOptions(std::map<std::string, std::string> env) {
  WorkerPoolOptions o;
  o.task = "test";
  o.spawn.argv = {testing::TestPython(), OFFLOAD_SOURCE_DIR "/tests/exec/testdata/feature_worker.py"};
  env["PYTHONDONTWRITEBYTECODE"] = "1";
  o.spawn.environment = MergeEnvironment(env);
  o.workers = 1;
  return o;
}

// Per element of a batch: its outcome as a Result, std::nullopt where it did not run.
using Outcomes = std::vector<std::optional<Result>>;

Outcomes ToOutcomes(BatchOutcome batch, std::size_t size) {
  Outcomes out(size);
  auto error = batch.errors.begin();
  for (std::size_t i = 0; i < batch.ran() && i < size; ++i) {
    if (error != batch.errors.end() && error->first == i) {
      out[i] = Result::Fail(std::move(error->second));
      ++error;
    } else {
      out[i] = Result::Json(std::move(batch.values[i]));
    }
  }
  return out;
}

// Runs `inputs` as one batch, elements "map-1.0", "map-1.1"...; nullopt when no
// answer came within the deadline.
class PendingBatch {
 public:
  PendingBatch(Executor& executor, const std::vector<json::value>& inputs, bool stop_on_failure,
               std::vector<int> attempts = {})
      : context_(std::make_shared<RunContext>()) {
    auto promise = std::make_shared<std::promise<Outcomes>>();
    future_ = promise->get_future();
    Batch batch;
    batch.map_id = "map-1";
    batch.task = "test";
    batch.input = std::make_shared<const json::value>(json::array(inputs.begin(), inputs.end()));
    for (std::size_t i = 0; i < inputs.size(); ++i) batch.indices.push_back(i);
    batch.attempts = std::move(attempts);
    batch.stop_on_failure = stop_on_failure;
    batch.context = context_;
    executor.StartBatch(std::move(batch), [promise, n = inputs.size()](BatchOutcome o) {
      promise->set_value(ToOutcomes(std::move(o), n));
    });
  }
  RunContext& context() { return *context_; }
  std::optional<Outcomes> Wait(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    if (future_.wait_for(deadline) != std::future_status::ready) return std::nullopt;
    return future_.get();
  }

 private:
  std::shared_ptr<RunContext> context_;
  std::future<Outcomes> future_;
};

std::vector<json::value> Inputs(std::string_view json_array) {
  const json::value parsed = json::parse(json_array);
  const json::array& a = parsed.as_array();
  return std::vector<json::value>(a.begin(), a.end());
}

TEST_F(WorkerPoolTest, ABatchGoesToAWorkerThatSaysBatchAsOneMessage) {
  Make(FeatureOptions({}));
  PendingBatch b(*pool_, Inputs("[1, 2, 3]"), /*stop_on_failure=*/false);
  auto outcomes = b.Wait();
  ASSERT_TRUE(outcomes);
  ASSERT_EQ(outcomes->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*outcomes)[i] && (*outcomes)[i]->ok()) << i;
    EXPECT_EQ((*outcomes)[i]->output()->json, json::parse(R"({"v":)" + std::to_string(2 * (i + 1)) + R"(,"msgs":1})"));
  }
  ASSERT_TRUE(WaitUntil([&] { return pool_->Workers()->idle == 1; }));
  const WorkerStatus status = *pool_->Workers();
  EXPECT_EQ(status.features, (std::vector<std::string>{"batch", "cancel"}));
  // The one process, by pid, with the three elements it served.
  ASSERT_EQ(status.processes.size(), 1u);
  EXPECT_GT(status.processes[0].pid, 0);
  EXPECT_EQ(status.processes[0].state, "idle");
  EXPECT_EQ(status.processes[0].jobs, 3);
}

TEST_F(WorkerPoolTest, AWorkerWithoutBatchGetsTheElementsOneMessageEach) {
  Make(FeatureOptions({{"FEATURES", ""}}));
  PendingBatch b(*pool_, Inputs("[1, 2, 3]"), /*stop_on_failure=*/false);
  auto outcomes = b.Wait();
  ASSERT_TRUE(outcomes);
  ASSERT_EQ(outcomes->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*outcomes)[i] && (*outcomes)[i]->ok()) << i;
    EXPECT_EQ((*outcomes)[i]->output()->json.at("msgs").as_int64(), i + 1);
  }
}

TEST_F(WorkerPoolTest, ABatchStopsAtItsFirstFailureOnlyWhenAsked) {
  for (const char* features : {"batch", ""}) {
    SCOPED_TRACE(std::string("features: ") + features);
    Make(FeatureOptions({{"FEATURES", features}}));
    for (bool stop : {true, false}) {
      PendingBatch b(*pool_, Inputs(R"([1, {"fail": "no good"}, 3])"), stop);
      auto outcomes = b.Wait();
      ASSERT_TRUE(outcomes);
      ASSERT_EQ(outcomes->size(), 3u);
      ASSERT_TRUE((*outcomes)[0] && (*outcomes)[0]->ok());
      ASSERT_TRUE((*outcomes)[1] && !(*outcomes)[1]->ok());
      EXPECT_EQ((*outcomes)[1]->error().type, "bad");
      EXPECT_EQ((*outcomes)[1]->error().message, "no good");
      EXPECT_EQ((*outcomes)[1]->error().detail, "line 1\nline 2");
      if (stop) {
        EXPECT_FALSE((*outcomes)[2]) << "ran after the failure of a batch that stops on one";
      } else {
        ASSERT_TRUE((*outcomes)[2] && (*outcomes)[2]->ok());
      }
    }
    pool_.reset();
  }
}

// A death during a batch message cannot be laid on one element: the batch runs
// again one element per message, where it can, so that one poisonous element fails
// alone rather than whichever came first.
TEST_F(WorkerPoolTest, AWorkerDeathDuringABatchIsLaidOnTheElementThatCausedIt) {
  auto o = FeatureOptions({});
  o.backoff_initial = 10ms;
  Make(o);
  PendingBatch b(*pool_, Inputs(R"([1, {"crash": 1}, 3])"), /*stop_on_failure=*/false);
  auto outcomes = b.Wait();
  ASSERT_TRUE(outcomes);
  ASSERT_EQ(outcomes->size(), 3u);
  ASSERT_TRUE((*outcomes)[0] && (*outcomes)[0]->ok());
  EXPECT_EQ((*outcomes)[0]->output()->json.at("msgs"), 1) << "run again alone, by a fresh worker";
  ASSERT_TRUE((*outcomes)[1]);
  EXPECT_EQ((*outcomes)[1]->error().type, "worker_died");
  EXPECT_NE((*outcomes)[1]->error().message.find("status 9"), std::string::npos) << (*outcomes)[1]->error().message;
  EXPECT_FALSE((*outcomes)[2]) << "after the death, the rest goes back to the map";
}

TEST_F(WorkerPoolTest, AnErrorsDetailReachesTheJob) {
  Make(FeatureOptions({}));
  Result r = Run(json::parse(R"({"fail": "boom"})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "bad");
  EXPECT_EQ(r.error().detail, "line 1\nline 2");
}

TEST_F(WorkerPoolTest, ACancelAnsweredInTimeKeepsTheWorker) {
  auto o = FeatureOptions({});
  o.kill_grace = 30s;  // A kill would show as a slow test, and as a second start.
  Make(o);
  Pending p(*pool_, json::parse(R"({"wait_ms": 60000})"));
  ASSERT_TRUE(WaitUntil([&] { return pool_->Workers()->busy == 1; }));
  p.context().RequestStop(StopReason::kCanceled);
  auto r = p.Wait(10s);
  ASSERT_TRUE(r) << "the cancel was not answered";
  ASSERT_FALSE(r->ok());
  EXPECT_EQ(r->error().type, "canceled");
  Result next = Run(json::parse("5"));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(pool_->StatsForTest().started, 1) << "the worker was replaced";
}

TEST_F(WorkerPoolTest, ACancelNotAnsweredWithinKillGraceStopsTheWorker) {
  auto o = FeatureOptions({{"IGNORE_CANCEL", "1"}});
  o.kill_grace = 300ms;
  Make(o);
  Pending p(*pool_, json::parse(R"({"wait_ms": 60000})"));
  ASSERT_TRUE(WaitUntil([&] { return pool_->Workers()->busy == 1; }));
  const auto t0 = std::chrono::steady_clock::now();
  p.context().RequestStop(StopReason::kCanceled);
  auto r = p.Wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error().type, "canceled");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 290ms) << "stopped before its grace";
  ASSERT_TRUE(WaitUntil([&] { return pool_->StatsForTest().started == 2; }));
}

TEST_F(WorkerPoolTest, ACanceledBatchReportsWhatRanAndKeepsTheWorker) {
  auto o = FeatureOptions({});
  o.kill_grace = 30s;
  Make(o);
  PendingBatch b(*pool_, Inputs(R"([1, {"wait_ms": 60000}, 3])"), /*stop_on_failure=*/false);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Workers()->busy == 1; }));
  b.context().RequestStop(StopReason::kCanceled);
  auto outcomes = b.Wait(10s);
  ASSERT_TRUE(outcomes);
  ASSERT_EQ(outcomes->size(), 3u);
  EXPECT_TRUE((*outcomes)[0] && (*outcomes)[0]->ok());
  ASSERT_TRUE((*outcomes)[1]);
  EXPECT_EQ((*outcomes)[1]->error().type, "canceled");
  EXPECT_FALSE((*outcomes)[2]);
  EXPECT_EQ(pool_->StatsForTest().started, 1);
}

TEST_F(WorkerPoolTest, AFatalMessageAtStartIsWhatWaitingJobsFailWithAndWhatWorkersShow) {
  auto o = FeatureOptions({{"FATAL", "ModuleNotFoundError: No module named 'calc'"}});
  o.backoff_initial = 50ms;
  Make(o);
  Result r = Run(json::parse("1"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "import_error");
  EXPECT_EQ(r.error().message, "the worker could not start: ModuleNotFoundError: No module named 'calc'");
  EXPECT_NE(r.error().detail.find("Traceback"), std::string::npos) << r.error().detail;
  ASSERT_TRUE(WaitUntil([&] { return pool_->Workers()->restarts >= 2; }));
  std::optional<WorkerStatus> w = pool_->Workers();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->idle + w->busy, 0);
  ASSERT_TRUE(w->last_error);
  EXPECT_EQ(w->last_error->type, "import_error");
  EXPECT_EQ(w->last_exit, "exited with status 3");
  EXPECT_NE(w->trouble.find("No module named 'calc'"), std::string::npos) << w->trouble;
}

TEST_F(WorkerPoolTest, WorkersShowReadyAndBusyCountsAndNoTroubleWhenHealthy) {
  auto o = FeatureOptions({});
  o.workers = 2;
  o.kill_grace = 30s;
  Make(o);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Workers()->idle == 2; }));
  Pending p(*pool_, json::parse(R"({"wait_ms": 60000})"));
  ASSERT_TRUE(WaitUntil([&] {
    auto w = pool_->Workers();
    return w->idle == 1 && w->busy == 1;
  }));
  std::optional<WorkerStatus> w = pool_->Workers();
  EXPECT_EQ(w->configured, 2);
  EXPECT_EQ(w->starting, 0);
  EXPECT_EQ(w->restarts, 0);
  EXPECT_TRUE(w->trouble.empty()) << w->trouble;
  p.context().RequestStop(StopReason::kCanceled);
  ASSERT_TRUE(p.Wait(10s));
}

TEST(WorkerPoolLifetimeTest, ThePoolMayHoldTheOnlyReferenceToTheSupervisor) {
  WorkerPoolOptions o;
  o.task = "test";
  o.spawn.argv = {"/bin/sh", "-c",
                  "echo '{\"type\":\"ready\"}'; while read line; do "
                  "echo '{\"type\":\"error\",\"id\":\"job-1\",\"error\":\"no\"}'; done"};
  o.spawn.environment = MergeEnvironment({});
  for (int i = 0; i < 5; ++i) {
    auto pool = std::make_unique<WorkerPool>(ProcessSupervisor::Create(), o);
    Pending p(*pool, nullptr);
    auto r = p.Wait();
    ASSERT_TRUE(r && !r->ok());
    EXPECT_EQ(r->error().message, "no");
    pool.reset();
  }
}

}  // namespace
}  // namespace offload
