// Waiting for jobs: `Prefer: wait=N`, `GET ?wait=N` long-polls, the run endpoint,
// and a run whose client disconnects.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using WaitingTest = ServerTest;

milliseconds Since(Clock::time_point start) { return std::chrono::duration_cast<milliseconds>(Clock::now() - start); }

TEST_F(WaitingTest, PreferWaitAnswers200WithTheFinishedJobWhenQuick) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const auto start = Clock::now();
  Response res = client().Post("/v1/jobs", R"({"task": "sleep", "input": {"ms": 20}})", {{"Prefer", "wait=20"}});
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_LT(Since(start), milliseconds(10'000));
  json::object job = res.json().as_object();
  EXPECT_EQ(Field(job, "status"), "succeeded");
  EXPECT_GT(TimeOf(job, "finished_at"), 0);

  // Other preferences may sit beside wait (RFC 7240).
  Response both = client().Post("/v1/jobs", R"({"task": "noop"})", {{"Prefer", "respond-async, wait=20"}});
  ASSERT_EQ(both.status, 200) << Describe(both);
  EXPECT_EQ(Field(both.json().as_object(), "status"), "succeeded");
}

TEST_F(WaitingTest, PreferWaitAnswers202WhenTheJobIsSlow) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const auto start = Clock::now();
  Response res = client().Post("/v1/jobs", R"({"task": "sleep", "input": {"ms": 60000}})", {{"Prefer", "wait=1"}});
  const milliseconds took = Since(start);
  ASSERT_EQ(res.status, 202) << Describe(res);
  json::object job = res.json().as_object();
  EXPECT_EQ(res.header("location"), "/v1/jobs/" + Field(job, "id"));
  EXPECT_EQ(Field(job, "status"), "running");
  EXPECT_GE(took, milliseconds(900)) << "answered before the preferred wait";
  EXPECT_LT(took, milliseconds(10'000));
  EXPECT_EQ(client().Delete("/v1/jobs/" + Field(job, "id")).status, 200);
}

TEST_F(WaitingTest, WaitsAreCappedByMaxWait) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
max_wait = "300ms"
shutdown_grace = "200ms"
)"));
  auto start = Clock::now();
  Response res = client().Post("/v1/jobs", R"({"task": "sleep", "input": {"ms": 60000}})", {{"Prefer", "wait=60"}});
  ASSERT_EQ(res.status, 202) << Describe(res);
  EXPECT_LT(Since(start), milliseconds(10'000));
  const std::string id = Field(res.json().as_object(), "id");

  start = Clock::now();
  Response poll = client().Get("/v1/jobs/" + id + "?wait=60");
  ASSERT_EQ(poll.status, 200) << Describe(poll);
  EXPECT_EQ(Field(poll.json().as_object(), "status"), "running");
  EXPECT_LT(Since(start), milliseconds(10'000));
  EXPECT_EQ(client().Delete("/v1/jobs/" + id).status, 200);
}

TEST_F(WaitingTest, LongPollAnswersAsSoonAsTheJobFinishes) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = Field(SubmitJob(client(), "sleep", json::object{{"ms", 300}}), "id");
  // A second waiter on its own connection is answered too.
  HttpClient other(server_.port());
  ASSERT_EQ(other.Send(http::verb::get, "/v1/jobs/" + id + "?wait=60"), "");

  const auto start = Clock::now();
  Response res = client().Get("/v1/jobs/" + id + "?wait=60", milliseconds(70'000));
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(Field(res.json().as_object(), "status"), "succeeded");
  EXPECT_LT(Since(start), milliseconds(10'000)) << "answered long after the job finished";

  Response second = other.Receive(milliseconds(10'000));
  ASSERT_EQ(second.status, 200) << Describe(second);
  EXPECT_EQ(Field(second.json().as_object(), "status"), "succeeded");

  // A finished job is answered at once, whatever the wait.
  const auto again = Clock::now();
  EXPECT_EQ(client().Get("/v1/jobs/" + id + "?wait=60").status, 200);
  EXPECT_LT(Since(again), milliseconds(5'000));
}

TEST_F(WaitingTest, LongPollReturnsTheCurrentJobWhenTheWaitEnds) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  const std::string queued = Field(SubmitJob(client(), "render", json::object{{"ms", 1}}), "id");
  const auto start = Clock::now();
  Response res = client().Get("/v1/jobs/" + id + "?wait=0.5");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(Field(res.json().as_object(), "status"), "running");
  EXPECT_GE(Since(start), milliseconds(450));
  Response q = client().Get("/v1/jobs/" + queued + "?wait=0.2");
  ASSERT_EQ(q.status, 200) << Describe(q);
  EXPECT_EQ(Field(q.json().as_object(), "status"), "queued");
  EXPECT_EQ(q.json().at("position"), 0);
  EXPECT_EQ(client().Delete("/v1/jobs/" + id).status, 200);
}

TEST_F(WaitingTest, RunWaitsForAQueuedJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string blocker = Field(SubmitJob(client(), "render", json::object{{"ms", 200}}), "id");
  Response res = client().Post("/v1/tasks/render/run", R"({"ms": 10})");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.body, "null");  // sleep's result, alone.
  EXPECT_EQ(Field(GetJob(client(), blocker), "status"), "succeeded");
}

TEST_F(WaitingTest, RunClientThatDisconnectsCancelsTheJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  HttpClient runner(server_.port());
  ASSERT_EQ(runner.Send(http::verb::post, "/v1/tasks/sleep/run", R"({"ms": 60000})"), "");

  // The run endpoint does not say the job's id: find it in the list.
  std::string id;
  const auto until = Clock::now() + milliseconds(10'000);
  while (id.empty() && Clock::now() < until) {
    Response list = client().Get("/v1/jobs?task=sleep&status=running");
    ASSERT_EQ(list.status, 200) << Describe(list);
    const json::array& jobs = list.json().at("jobs").as_array();
    if (!jobs.empty())
      id = Field(jobs[0].as_object(), "id");
    else
      std::this_thread::sleep_for(milliseconds(5));  // Poll, gently.
  }
  ASSERT_FALSE(id.empty()) << "the run's job never showed up as running";

  runner.Close();
  json::object job = WaitForStatus(client(), id, "canceled");
  ASSERT_TRUE(job.at("error").is_object()) << json::serialize(job);
  // Its own reason, not a DELETE's.
  EXPECT_EQ(Field(job.at("error").as_object(), "type"), "client_disconnected") << json::serialize(job);
  EXPECT_EQ(Field(job.at("error").as_object(), "message").find("DELETE"), std::string::npos);
  // The handler stopped and gave its cpu slot back.
  WaitForInUse(client(), "cpu", 0);
}

TEST_F(WaitingTest, WaiterThatDisconnectsDoesNotCancelTheJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = Field(SubmitJob(client(), "sleep", json::object{{"ms", 300}}), "id");
  {
    HttpClient waiter(server_.port());
    ASSERT_EQ(waiter.Send(http::verb::get, "/v1/jobs/" + id + "?wait=60"), "");
    ASSERT_EQ(waiter.Send(http::verb::post, "/v1/jobs", R"({"task": "noop"})"), "");
  }  // Closed here, with both requests unanswered or unread.
  EXPECT_EQ(Field(WaitFinished(client(), id), "status"), "succeeded");
}

TEST_F(WaitingTest, RunPastRunTimeoutAnswers504AndCancelsTheJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
run_timeout = "300ms"
shutdown_grace = "200ms"
)"));
  Response res = client().Post("/v1/tasks/sleep/run", R"({"ms": 60000})");
  ASSERT_TRUE(IsProblem(res, 504));
  Response list = client().Get("/v1/jobs?task=sleep");
  ASSERT_EQ(list.status, 200) << Describe(list);
  ASSERT_EQ(list.json().at("jobs").as_array().size(), 1u) << list.body;
  const json::object& job = list.json().at("jobs").at(0).as_object();
  EXPECT_EQ(Field(job, "status"), "canceled") << list.body;
  ASSERT_TRUE(job.at("error").is_object()) << list.body;
  EXPECT_EQ(Field(job.at("error").as_object(), "type"), "run_timeout") << list.body;
  EXPECT_NE(Field(job.at("error").as_object(), "message").find("run_timeout (300 ms)"), std::string::npos) << list.body;
}

}  // namespace
}  // namespace offload::testing
