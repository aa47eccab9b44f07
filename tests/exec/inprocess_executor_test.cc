// InProcessExecutor: handlers on a pool, and the promise of its destructor — once it
// returns, no callback of it runs any more.
#include "exec/inprocess_executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <thread>

#include "exec/exec_test_util.h"
#include "offload/error_types.h"

namespace offload {
namespace {

using namespace std::chrono_literals;
using testing::Pending;

// A handler that blocks until the test opens it, and says when it first started.
struct Blocker {
  std::promise<void> started;
  std::atomic<bool> said_started{false};
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();

  Handler handler() {
    return [this](const Job&, Context&) {
      if (!said_started.exchange(true)) started.set_value();
      opened.wait();
      return Result::Json("done");
    };
  }
};

Execution MakeExecution(std::string id) {
  Execution exec;
  exec.job_id = std::move(id);
  exec.task = "test";
  exec.input = std::make_shared<const boost::json::value>(nullptr);
  exec.context = std::make_shared<RunContext>();
  return exec;
}

TEST(InProcessExecutorTest, RunsTheHandlerOnThePool) {
  ThreadPool pool(1, 0);
  InProcessExecutor executor(
      [](const Job& job, Context&) {
        return Result::Json(boost::json::string(std::string(job.id) + " " + std::string(job.task)));
      },
      &pool);
  Pending run(executor, nullptr, "job-7");
  auto outcome = run.Wait();
  ASSERT_TRUE(outcome && outcome->ok());
  EXPECT_EQ(outcome->output()->json, "job-7 test");
}

TEST(InProcessExecutorTest, TheHandlerSeesTheJobsFiles) {
  ThreadPool pool(1, 0);
  InProcessExecutor executor(
      [](const Job& job, Context&) {
        std::string seen;
        for (const JobFile& f : job.files) seen += f.field + ":" + f.path + ":" + std::to_string(f.size) + " ";
        return Result::Json(boost::json::string(seen));
      },
      &pool);
  Execution exec = MakeExecution("job-8");
  exec.files = {JobFile{"body", "a.png", "image/png", 3, std::string(64, 'a'), "/files/inputs/job-8/0"},
                JobFile{"extra", "", "text/csv", 9, std::string(64, 'b'), "/files/inputs/job-8/1"}};
  std::promise<Result> done;
  executor.Start(std::move(exec), [&done](Result r) { done.set_value(std::move(r)); });
  Result r = done.get_future().get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.output()->json, "body:/files/inputs/job-8/0:3 extra:/files/inputs/job-8/1:9 ");
}

TEST(InProcessExecutorTest, AThrowingHandlerFailsWithHandlerError) {
  ThreadPool pool(1, 0);
  InProcessExecutor executor([](const Job&, Context&) -> Result { throw std::runtime_error("kaboom"); }, &pool);
  Pending run(executor, nullptr);
  auto outcome = run.Wait();
  ASSERT_TRUE(outcome && !outcome->ok());
  EXPECT_EQ(outcome->error().type, error_type::kHandlerError);
  EXPECT_EQ(outcome->error().message, "kaboom");
}

// The destructor runs on its own thread while the handler is blocked: it must not
// return before the handler's callback has run. A destructor that does not wait
// returns within the 200 ms the test gives it, and the test fails.
TEST(InProcessExecutorTest, TheDestructorWaitsForAHandlerInFlight) {
  ThreadPool pool(2, 0);
  Blocker blocker;
  auto executor = std::make_unique<InProcessExecutor>(blocker.handler(), &pool);
  std::atomic<bool> reported{false};
  executor->Start(MakeExecution("job-1"), [&](Result r) {
    EXPECT_TRUE(r.ok());
    reported = true;
  });
  blocker.started.get_future().wait();
  std::atomic<bool> reported_when_destroyed{false};
  std::promise<void> destroyed;
  std::thread destroyer([&] {
    executor.reset();
    reported_when_destroyed = reported.load();
    destroyed.set_value();
  });
  auto destroyed_f = destroyed.get_future();
  EXPECT_EQ(destroyed_f.wait_for(200ms), std::future_status::timeout)
      << "the destructor returned while the handler was still running";
  blocker.open.set_value();
  destroyer.join();
  EXPECT_TRUE(reported_when_destroyed);
}

TEST(InProcessExecutorTest, TheDestructorWaitsForABatchInFlight) {
  ThreadPool pool(2, 0);
  Blocker blocker;
  auto executor = std::make_unique<InProcessExecutor>(blocker.handler(), &pool);
  std::atomic<bool> reported{false};
  Batch batch;
  batch.map_id = "job-1";
  batch.input = std::make_shared<const boost::json::value>(boost::json::array{1, 2});
  batch.indices = {0, 1};
  batch.context = std::make_shared<RunContext>();
  executor->StartBatch(std::move(batch), [&](BatchOutcome outcome) {
    EXPECT_EQ(outcome.ran(), 2u);
    reported = true;
  });
  blocker.started.get_future().wait();
  std::atomic<bool> reported_when_destroyed{false};
  std::promise<void> destroyed;
  std::thread destroyer([&] {
    executor.reset();
    reported_when_destroyed = reported.load();
    destroyed.set_value();
  });
  auto destroyed_f = destroyed.get_future();
  EXPECT_EQ(destroyed_f.wait_for(200ms), std::future_status::timeout)
      << "the destructor returned while the batch was still running";
  blocker.open.set_value();
  destroyer.join();
  EXPECT_TRUE(reported_when_destroyed);
}

// Every execution that reported is no longer counted: the destructor of an
// executor whose work is done does not wait (the test would time out).
TEST(InProcessExecutorTest, AnIdleExecutorIsDestroyedAtOnce) {
  ThreadPool pool(2, 0);
  auto executor =
      std::make_unique<InProcessExecutor>([](const Job&, Context&) { return Result::Json(nullptr); }, &pool);
  for (int i = 0; i < 100; ++i) {
    Pending run(*executor, nullptr);
    ASSERT_TRUE(run.Wait());
  }
  executor.reset();
}

}  // namespace
}  // namespace offload
