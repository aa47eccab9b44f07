// The end of a job's life and of the server's: cancel (queued and running) and
// graceful shutdown on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using LifecycleTest = ServerTest;

// Expects the server to exit with code 0 within `deadline`.
void ExpectCleanExit(TestServer& server, milliseconds deadline) {
  std::optional<int> status = server.WaitForExit(deadline);
  ASSERT_TRUE(status.has_value()) << "the server did not exit within " << deadline.count() << " ms; its stderr:\n"
                                  << server.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "server " << DescribeWaitStatus(*status) << "; its stderr:\n"
      << server.log();
}

TEST_F(LifecycleTest, CanceledQueuedJobNeverStarts) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string blocker = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  const std::string victim = Field(SubmitJob(client(), "render", json::object{{"ms", 10}}), "id");
  const std::string after = Field(SubmitJob(client(), "render", json::object{{"ms", 10}}), "id");

  Response res = client().Delete("/v1/jobs/" + victim);
  ASSERT_EQ(res.status, 200) << Describe(res);
  json::object canceled = res.json().as_object();
  EXPECT_EQ(Field(canceled, "status"), "canceled");
  EXPECT_TRUE(canceled.at("started_at").is_null());
  EXPECT_GT(TimeOf(canceled, "finished_at"), 0);
  // The job behind it moved up.
  EXPECT_EQ(GetJob(client(), after).at("position"), 0);

  ASSERT_EQ(client().Delete("/v1/jobs/" + blocker).status, 200);
  EXPECT_EQ(Field(WaitFinished(client(), after), "status"), "succeeded");
  // The gpu has been free since; the canceled job still never ran.
  json::object later = GetJob(client(), victim);
  EXPECT_EQ(Field(later, "status"), "canceled");
  EXPECT_TRUE(later.at("started_at").is_null()) << json::serialize(later);
  EXPECT_EQ(later.at("attempts"), 0);
}

TEST_F(LifecycleTest, CanceledRunningJobStopsPromptlyAndFreesItsResources) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string running = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  const std::string next = Field(SubmitJob(client(), "render", json::object{{"ms", 10}}), "id");

  const auto start = Clock::now();
  Response res = client().Delete("/v1/jobs/" + running);
  EXPECT_LT(Clock::now() - start, milliseconds(5'000));
  ASSERT_EQ(res.status, 200) << Describe(res);
  json::object canceled = res.json().as_object();
  EXPECT_EQ(Field(canceled, "status"), "canceled");
  EXPECT_GT(TimeOf(canceled, "started_at"), 0);
  EXPECT_GT(TimeOf(canceled, "finished_at"), 0);
  ASSERT_TRUE(canceled.at("error").is_object()) << json::serialize(canceled);
  EXPECT_EQ(Field(canceled.at("error").as_object(), "type"), "canceled");

  // The gpu goes to the next job once the handler has stopped (within 50 ms by the
  // built-ins' contract; a generous bound here for loaded or sanitized builds).
  json::object done = WaitFinished(client(), next);
  EXPECT_EQ(Field(done, "status"), "succeeded");
  EXPECT_LT(TimeOf(done, "started_at") - TimeOf(canceled, "finished_at"), 1'000);
  EXPECT_EQ(Field(GetJob(client(), running), "status"), "canceled");

  // The same for a job burning cpu.
  const std::string burner = Field(SubmitJob(client(), "cpu", json::object{{"ms", 60'000}}), "id");
  WaitForInUse(client(), "cpu", 1);
  ASSERT_EQ(client().Delete("/v1/jobs/" + burner).status, 200);
  WaitForInUse(client(), "cpu", 0, milliseconds(2'000));
  EXPECT_EQ(Field(GetJob(client(), burner), "status"), "canceled");
}

TEST_F(LifecycleTest, ShutdownLetsRunningJobsFinishAndAnswersWaiters) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "30s"
[resources]
cpu = 2
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
)"));
  const std::string running = Field(SubmitJob(client(), "render", json::object{{"ms", 1'000}}), "id");
  const std::string queued = Field(SubmitJob(client(), "render", json::object{{"ms", 10}}), "id");
  HttpClient waiter_running(server_.port());
  HttpClient waiter_queued(server_.port());
  HttpClient runner(server_.port());
  ASSERT_EQ(waiter_running.Send(http::verb::get, "/v1/jobs/" + running + "?wait=60"), "");
  ASSERT_EQ(waiter_queued.Send(http::verb::get, "/v1/jobs/" + queued + "?wait=60"), "");
  ASSERT_EQ(runner.Send(http::verb::post, "/v1/tasks/render/run", R"({"ms": 10})"), "");

  const auto start = Clock::now();
  server_.Signal(SIGTERM);

  Response finished = waiter_running.Receive(milliseconds(20'000));
  ASSERT_EQ(finished.status, 200) << Describe(finished);
  EXPECT_EQ(Field(finished.json().as_object(), "status"), "succeeded") << finished.body;

  // The queued job never starts. A memory store cancels it; a durable one keeps it
  // queued for the next start. Either way its waiter gets an answer.
  Response dropped = waiter_queued.Receive(milliseconds(20'000));
  ASSERT_EQ(dropped.status, 200) << Describe(dropped);
  json::object q = dropped.json().as_object();
  EXPECT_TRUE(Field(q, "status") == "canceled" || Field(q, "status") == "queued") << dropped.body;
  EXPECT_TRUE(q.at("started_at").is_null()) << dropped.body;

  // A run whose job never started has no result to give: a problem, not silence.
  Response run = runner.Receive(milliseconds(20'000));
  EXPECT_EQ(run.header("content-type"), "application/problem+json") << Describe(run);
  EXPECT_GE(run.status, 400) << Describe(run);

  ExpectCleanExit(server_, milliseconds(15'000));
  // It waited for the running job, not for the whole grace period.
  EXPECT_LT(Clock::now() - start, milliseconds(15'000));
}

TEST_F(LifecycleTest, ShutdownWithAMemoryStoreCancelsQueuedJobs) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
store = "memory"
shutdown_grace = "30s"
[resources]
cpu = 2
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
)"));
  ASSERT_EQ(Field(SubmitJob(client(), "render", json::object{{"ms", 500}}), "status"), "running");
  const std::string queued = Field(SubmitJob(client(), "render", json::object{{"ms", 10}}), "id");
  HttpClient waiter(server_.port());
  ASSERT_EQ(waiter.Send(http::verb::get, "/v1/jobs/" + queued + "?wait=60"), "");
  server_.Signal(SIGTERM);

  // Nothing would keep it across the restart, so it is canceled, never started.
  Response res = waiter.Receive(milliseconds(20'000));
  ASSERT_EQ(res.status, 200) << Describe(res);
  json::object job = res.json().as_object();
  EXPECT_EQ(Field(job, "status"), "canceled") << res.body;
  EXPECT_TRUE(job.at("started_at").is_null()) << res.body;
  ASSERT_TRUE(job.at("error").is_object()) << res.body;
  EXPECT_EQ(Field(job.at("error").as_object(), "type"), "shutdown");
  ExpectCleanExit(server_, milliseconds(15'000));
}

TEST_F(LifecycleTest, DrainingRefusesNewJobsWith503AndStillAnswersReads) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "60s"
)"));
  const std::string id = Field(SubmitJob(client(), "sleep", json::object{{"ms", 60'000}}), "id");
  server_.Signal(SIGTERM);

  // The signal is handled asynchronously: poll the health check until it says so.
  const auto until = Clock::now() + milliseconds(10'000);
  Response health;
  for (;;) {
    health = client().Get("/healthz");
    if (health.status == 503 || Clock::now() >= until) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(health.status, 503) << Describe(health);
  EXPECT_EQ(health.json().at("status"), "draining");

  Response refused = client().Post("/v1/jobs", R"({"task": "noop"})");
  EXPECT_TRUE(IsProblem(refused, 503));
  EXPECT_FALSE(refused.header("retry-after").empty()) << Describe(refused);
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/noop/run", ""), 503));

  json::object job = GetJob(client(), id);
  EXPECT_EQ(Field(job, "status"), "running");
  EXPECT_EQ(client().Get("/v1/jobs").status, 200);
  EXPECT_EQ(client().Get("/v1/resources").status, 200);

  // Canceling the last running job ends the drain long before shutdown_grace.
  ASSERT_EQ(client().Delete("/v1/jobs/" + id).status, 200);
  ExpectCleanExit(server_, milliseconds(15'000));
}

TEST_F(LifecycleTest, ShutdownGraceCancelsJobsThatRunTooLong) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "300ms"
)"));
  const std::string id = Field(SubmitJob(client(), "sleep", json::object{{"ms", 60'000}}), "id");
  HttpClient waiter(server_.port());
  HttpClient runner(server_.port());
  ASSERT_EQ(waiter.Send(http::verb::get, "/v1/jobs/" + id + "?wait=60"), "");
  ASSERT_EQ(runner.Send(http::verb::post, "/v1/tasks/sleep/run", R"({"ms": 60000})"), "");
  WaitForInUse(client(), "cpu", 2);

  server_.Signal(SIGTERM);
  Response res = waiter.Receive(milliseconds(20'000));
  ASSERT_EQ(res.status, 200) << Describe(res);
  json::object job = res.json().as_object();
  EXPECT_EQ(Field(job, "status"), "canceled") << res.body;
  ASSERT_TRUE(job.at("error").is_object()) << res.body;
  EXPECT_EQ(Field(job.at("error").as_object(), "type"), "shutdown");

  // The run client gets an answer too: the job's end as a problem.
  Response run = runner.Receive(milliseconds(20'000));
  EXPECT_EQ(run.header("content-type"), "application/problem+json") << Describe(run);
  EXPECT_GE(run.status, 400) << Describe(run);

  ExpectCleanExit(server_, milliseconds(15'000));
}

}  // namespace
}  // namespace offload::testing
