// Every endpoint of HTTP API v1 and every error status, against the real binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
namespace http = boost::beast::http;

using ApiTest = ServerTest;

bool IsUrlSafe(std::string_view id) {
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

TEST_F(ApiTest, SubmitAnswers202WithLocationAndJobObject) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Response res = client().Post("/v1/jobs", R"({"task": "cpu", "input": {"ms": 1}, "priority": 3})");
  ASSERT_EQ(res.status, 202) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "application/json");
  json::object job = res.json().as_object();
  const std::string id = Field(job, "id");
  // >= 64 random bits in a URL-safe alphabet: at least 11 characters of base64url.
  EXPECT_GE(id.size(), 11u);
  EXPECT_TRUE(IsUrlSafe(id)) << id;
  EXPECT_EQ(res.header("location"), "/v1/jobs/" + id);
  EXPECT_EQ(Field(job, "task"), "cpu");
  EXPECT_TRUE(Field(job, "status") == "queued" || Field(job, "status") == "running" ||
              Field(job, "status") == "succeeded")
      << json::serialize(job);
  EXPECT_EQ(job.at("priority"), 3);
  for (const char* key : {"position", "created_at", "started_at", "finished_at", "result", "error", "progress"}) {
    EXPECT_TRUE(job.contains(key)) << "job object lacks " << key << ": " << json::serialize(job);
  }
  EXPECT_GT(TimeOf(job, "created_at"), 0);

  // Ids are distinct.
  std::set<std::string> ids{id};
  for (int i = 0; i < 20; ++i) ids.insert(Field(SubmitJob(client(), "noop", nullptr), "id"));
  EXPECT_EQ(ids.size(), 21u);
}

TEST_F(ApiTest, GetJobReturnsTheJobAndItsJsonResult) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = Field(SubmitJob(client(), "cpu", json::object{{"ms", 2}}), "id");
  json::object done = WaitFinished(client(), id);
  ASSERT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);

  Response res = client().Get("/v1/jobs/" + id);
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "application/json");
  json::object job = res.json().as_object();
  EXPECT_EQ(Field(job, "id"), id);
  EXPECT_EQ(Field(job, "status"), "succeeded");
  EXPECT_TRUE(job.at("position").is_null());
  EXPECT_TRUE(job.at("error").is_null());
  const std::int64_t created = TimeOf(job, "created_at");
  const std::int64_t started = TimeOf(job, "started_at");
  const std::int64_t finished = TimeOf(job, "finished_at");
  EXPECT_GT(created, 0);
  EXPECT_LE(created, started);
  EXPECT_LE(started, finished);
  ASSERT_TRUE(job.at("result").is_object()) << json::serialize(job);
  EXPECT_EQ(job.at("result").at("ms"), 2);

  // /result: the result alone, as JSON.
  Response result = client().Get("/v1/jobs/" + id + "/result");
  ASSERT_EQ(result.status, 200) << Describe(result);
  EXPECT_EQ(result.header("content-type"), "application/json");
  EXPECT_EQ(result.json(), job.at("result"));
}

TEST_F(ApiTest, MandelbrotResultIsAPng) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id =
      Field(SubmitJob(client(), "mandelbrot", json::object{{"width", 64}, {"height", 48}, {"max_iter", 50}}), "id");
  json::object job = WaitFinished(client(), id);
  ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  EXPECT_TRUE(job.at("result").is_null()) << "binary results are not inlined";

  Response res = client().Get("/v1/jobs/" + id + "/result");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "image/png");
  const std::string signature("\x89PNG\r\n\x1a\n", 8);
  ASSERT_GE(res.body.size(), 24u);
  EXPECT_EQ(res.body.substr(0, 8), signature);
  // IHDR (the first chunk) holds width and height, big-endian, at bytes 16..23.
  EXPECT_EQ(res.body.substr(12, 4), "IHDR");
  auto be32 = [&](std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(res.body[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(res.body[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(res.body[at + 2])} << 8) |
           std::uint32_t{static_cast<unsigned char>(res.body[at + 3])};
  };
  EXPECT_EQ(be32(16), 64u);
  EXPECT_EQ(be32(20), 48u);
}

TEST_F(ApiTest, RunAnswersTheResultAlone) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Response res = client().Post("/v1/tasks/cpu/run", R"({"ms": 1})");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "application/json");
  json::value body = res.json();
  ASSERT_TRUE(body.is_object()) << Describe(res);
  EXPECT_EQ(body.at("ms"), 1);
  EXPECT_FALSE(body.as_object().contains("id")) << "the result alone, not the job object";

  Response png = client().Post("/v1/tasks/mandelbrot/run", R"({"width": 16, "height": 16})");
  ASSERT_EQ(png.status, 200) << Describe(png);
  EXPECT_EQ(png.header("content-type"), "image/png");
  EXPECT_EQ(png.body.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  Response noop = client().Post("/v1/tasks/noop/run", "");
  ASSERT_EQ(noop.status, 200) << Describe(noop);
  EXPECT_EQ(noop.body, "null");
}

TEST_F(ApiTest, RunRejectsBadRequests) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/nosuchtask/run", "{}"), 422));
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/sleep/run", R"({"ms": -5})"), 422));
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/sleep/run", R"({"ms": )"), 400));
}

TEST_F(ApiTest, ListJobsNewestFirstWithFiltersAndCursor) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::vector<std::string> all;  // In submission order.
  std::vector<std::string> sleeps;
  for (int i = 0; i < 7; ++i) {
    const bool is_sleep = i % 3 == 1;
    json::object job =
        is_sleep ? SubmitJob(client(), "sleep", json::object{{"ms", 1}}) : SubmitJob(client(), "noop", nullptr);
    all.push_back(Field(job, "id"));
    if (is_sleep) sleeps.push_back(Field(job, "id"));
  }
  for (const auto& id : all) ASSERT_EQ(Field(WaitFinished(client(), id), "status"), "succeeded");

  // Pages of 3 following next_cursor visit every job once, newest first.
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    Response res = client().Get("/v1/jobs?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(res.status, 200) << Describe(res);
    json::object body = res.json().as_object();
    const json::array& jobs = body.at("jobs").as_array();
    EXPECT_LE(jobs.size(), 3u);
    for (const auto& j : jobs) seen.push_back(Field(j.as_object(), "id"));
    if (body.at("next_cursor").is_null()) break;
    cursor = std::string(body.at("next_cursor").as_string());
  }
  std::vector<std::string> newest_first(all.rbegin(), all.rend());
  EXPECT_EQ(seen, newest_first);

  Response by_task = client().Get("/v1/jobs?task=sleep");
  ASSERT_EQ(by_task.status, 200) << Describe(by_task);
  std::vector<std::string> sleep_ids;
  for (const auto& j : by_task.json().at("jobs").as_array()) {
    EXPECT_EQ(Field(j.as_object(), "task"), "sleep");
    sleep_ids.push_back(Field(j.as_object(), "id"));
  }
  EXPECT_EQ(sleep_ids, std::vector<std::string>(sleeps.rbegin(), sleeps.rend()));

  Response succeeded = client().Get("/v1/jobs?status=succeeded&limit=100");
  ASSERT_EQ(succeeded.status, 200) << Describe(succeeded);
  EXPECT_EQ(succeeded.json().at("jobs").as_array().size(), all.size());
  EXPECT_TRUE(succeeded.json().at("next_cursor").is_null());
  Response queued = client().Get("/v1/jobs?status=queued");
  ASSERT_EQ(queued.status, 200) << Describe(queued);
  EXPECT_TRUE(queued.json().at("jobs").as_array().empty());

  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs?status=bogus"), 422));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs?limit=0"), 422));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs?limit=abc"), 422));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs?cursor=xyz"), 400));
}

TEST_F(ApiTest, ListJobsShowsLiveStatusOfActiveJobs) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string blocker = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  const std::string waiting = Field(SubmitJob(client(), "render", json::object{{"ms", 1}}), "id");
  Response running = client().Get("/v1/jobs?status=running");
  ASSERT_EQ(running.status, 200) << Describe(running);
  ASSERT_EQ(running.json().at("jobs").as_array().size(), 1u) << Describe(running);
  EXPECT_EQ(Field(running.json().at("jobs").at(0).as_object(), "id"), blocker);
  Response queued = client().Get("/v1/jobs?status=queued");
  ASSERT_EQ(queued.status, 200) << Describe(queued);
  ASSERT_EQ(queued.json().at("jobs").as_array().size(), 1u) << Describe(queued);
  EXPECT_EQ(Field(queued.json().at("jobs").at(0).as_object(), "id"), waiting);
  EXPECT_EQ(queued.json().at("jobs").at(0).at("position"), 0);
  EXPECT_EQ(client().Delete("/v1/jobs/" + blocker).status, 200);
}

TEST_F(ApiTest, TasksListsBuiltinsAndConfiguredTasks) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Response res = client().Get("/v1/tasks");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "application/json");
  std::map<std::string, json::object> tasks;
  for (const auto& t : res.json().at("tasks").as_array()) {
    tasks[Field(t.as_object(), "name")] = t.as_object();
  }
  for (const char* name : {"noop", "sleep", "cpu", "mandelbrot", "render"}) {
    EXPECT_TRUE(tasks.count(name)) << name << " missing from " << res.body;
  }
  EXPECT_EQ(tasks["render"].at("uses"), (json::object{{"gpu", 1}}));
  EXPECT_EQ(tasks["cpu"].at("uses"), (json::object{{"cpu", 1}}));
  EXPECT_EQ(Field(tasks["mandelbrot"], "content_type"), "image/png");
  EXPECT_EQ(Field(tasks["sleep"], "content_type"), "application/json");
}

TEST_F(ApiTest, ResourcesShowCapacityUseAndQueuedDemand) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto resources = [&] {
    Response res = client().Get("/v1/resources");
    EXPECT_EQ(res.status, 200) << Describe(res);
    std::map<std::string, json::object> out;
    if (res.status != 200) return out;
    for (const auto& r : res.json().at("resources").as_array()) {
      out[Field(r.as_object(), "name")] = r.as_object();
    }
    return out;
  };
  auto idle = resources();
  ASSERT_TRUE(idle.count("cpu") && idle.count("gpu")) << "resources: cpu and gpu expected";
  EXPECT_EQ(idle["cpu"].at("capacity"), 2);
  EXPECT_EQ(idle["gpu"].at("capacity"), 1);
  EXPECT_EQ(idle["gpu"].at("in_use"), 0);
  EXPECT_EQ(idle["gpu"].at("queued_demand"), 0);

  const std::string blocker = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  SubmitJob(client(), "render", json::object{{"ms", 1}});
  SubmitJob(client(), "render", json::object{{"ms", 1}});
  auto busy = resources();
  EXPECT_EQ(busy["gpu"].at("in_use"), 1);
  EXPECT_EQ(busy["gpu"].at("queued_demand"), 2);
  EXPECT_EQ(busy["cpu"].at("in_use"), 0);
  EXPECT_EQ(client().Delete("/v1/jobs/" + blocker).status, 200);
}

TEST_F(ApiTest, Healthz) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Response res = client().Get("/healthz");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.json().at("status"), "ok");
}

TEST_F(ApiTest, MalformedJsonIs400) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", R"({"task": "noop", )"), 400));
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", "not json at all"), 400));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs/x?wait=soon"), 400));
  // The connection stays usable after a client error.
  EXPECT_EQ(client().Get("/healthz").status, 200);
}

TEST_F(ApiTest, UnknownTaskIs422NamingTheTask) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Response res = client().Post("/v1/jobs", R"({"task": "nosuchtask", "input": {}})");
  ASSERT_TRUE(IsProblem(res, 422));
  EXPECT_NE(res.json().at("detail").as_string().find("nosuchtask"), json::string::npos) << res.body;
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", R"({"input": {}})"), 422));
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", R"([1, 2])"), 422));
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", R"({"task": "noop", "priority": "high"})"), 422));
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", R"({"task": "noop", "colour": "red"})"), 422));
}

TEST_F(ApiTest, BadInputIs422NamingTheField) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  struct Case {
    const char* body;
    const char* field;
  };
  const Case cases[] = {
      {R"({"task": "sleep", "input": {"ms": -1}})", "ms"},
      {R"({"task": "sleep", "input": {}})", "ms"},
      {R"({"task": "sleep", "input": {"ms": 99999999999}})", "ms"},
      {R"({"task": "cpu", "input": {"ms": "ten"}})", "ms"},
      {R"({"task": "render", "input": {"ms": -3}})", "ms"},
      {R"({"task": "mandelbrot", "input": {"width": 9000}})", "width"},
      {R"({"task": "mandelbrot", "input": {"height": 0}})", "height"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    Response res = client().Post("/v1/jobs", c.body);
    ASSERT_TRUE(IsProblem(res, 422));
    EXPECT_NE(res.json().at("detail").as_string().find(c.field), json::string::npos) << res.body;
  }
  // Rejected jobs are not stored.
  Response list = client().Get("/v1/jobs");
  ASSERT_EQ(list.status, 200);
  EXPECT_TRUE(list.json().at("jobs").as_array().empty()) << list.body;
}

TEST_F(ApiTest, NumberOutOfRangeIs422NamingTheField) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  struct Case {
    const char* target;
    const char* body;
    const char* place;
  };
  const Case cases[] = {
      {"/v1/jobs", R"({"task": "noop", "input": {"x": 1e400}})", "input.x: "},
      {"/v1/jobs", R"({"task": "noop", "input": {"x": [-1e400]}})", "input.x[0]: "},
      {"/v1/jobs", R"({"task": "noop", "input": {"n": 18446744073709551616}})", "input.n: "},
      {"/v1/jobs", R"({"task": "noop", "map": [{}, {"x": 1e400}]})", "map[1].x: "},
      {"/v1/tasks/noop/run", R"({"x": 1e400})", "input.x: "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    Response res = client().Post(c.target, c.body);
    ASSERT_TRUE(IsProblem(res, 422));
    EXPECT_EQ(res.json().at("detail").as_string().find(c.place), 0u) << res.body;
  }
  // Refused before anything was stored.
  Response list = client().Get("/v1/jobs");
  ASSERT_EQ(list.status, 200);
  EXPECT_TRUE(list.json().at("jobs").as_array().empty()) << list.body;
}

// The exact text, not the parsed value: "2.5E0" and "2.5" parse alike.
TEST_F(ApiTest, DoublesAreWrittenInShortestForm) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "200ms"
[tasks.echo]
command = ["cat"]
)"));
  const std::string input = R"({"a":0.1,"b":2.5,"c":1.0,"d":1e300,"u":18446744073709551615,"i":-9223372036854775808})";
  const std::string written = R"({"a":0.1,"b":2.5,"c":1,"d":1e+300,"u":18446744073709551615,"i":-9223372036854775808})";
  Response run = client().Post("/v1/tasks/echo/run", input);
  ASSERT_EQ(run.status, 200) << Describe(run);
  EXPECT_EQ(run.body, written);

  Response job = client().Post("/v1/jobs", R"({"task": "echo", "input": )" + input + "}", {{"Prefer", "wait=20"}});
  ASSERT_EQ(job.status, 200) << Describe(job);
  EXPECT_NE(job.body.find(R"("result":)" + written), std::string::npos) << job.body;
  EXPECT_TRUE(job.body.find(R"("progress":1,)") != std::string::npos ||
              job.body.find(R"("progress":1})") != std::string::npos)
      << job.body;
}

TEST_F(ApiTest, BodyOverMaxBodyIs413) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
max_body = 1024
shutdown_grace = "200ms"
)"));
  std::string big = R"({"task": "noop", "input": ")" + std::string(4096, 'x') + R"("})";
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", big), 413));
  // A body under the limit still works, on a new connection if the server closed
  // this one.
  Response ok = client().Post("/v1/jobs", R"({"task": "noop"})");
  EXPECT_EQ(ok.status, 202) << Describe(ok);
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/noop/run", big), 413));
}

TEST_F(ApiTest, FullQueueIs429WithRetryAfter) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "200ms"
[resources]
cpu = 2
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
max_queued = 2
)"));
  json::object blocker = SubmitJob(client(), "render", json::object{{"ms", 60'000}});
  ASSERT_EQ(Field(blocker, "status"), "running") << json::serialize(blocker);
  SubmitJob(client(), "render", json::object{{"ms", 1}});
  SubmitJob(client(), "render", json::object{{"ms", 1}});
  Response full = client().Post("/v1/jobs", R"({"task": "render", "input": {"ms": 1}})");
  ASSERT_TRUE(IsProblem(full, 429));
  EXPECT_FALSE(full.header("retry-after").empty()) << Describe(full);
  // Other tasks' queues are not affected.
  EXPECT_EQ(client().Post("/v1/jobs", R"({"task": "noop"})").status, 202);
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/render/run", R"({"ms": 1})"), 429));
  EXPECT_EQ(client().Delete("/v1/jobs/" + Field(blocker, "id")).status, 200);
}

TEST_F(ApiTest, UnknownIdIs404) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs/AAAAAAAAAAAAAAAA"), 404));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs/AAAAAAAAAAAAAAAA?wait=1"), 404));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs/AAAAAAAAAAAAAAAA/result"), 404));
  EXPECT_TRUE(IsProblem(client().Delete("/v1/jobs/AAAAAAAAAAAAAAAA"), 404));
  EXPECT_TRUE(IsProblem(client().Get("/v2/jobs"), 404));
  EXPECT_TRUE(IsProblem(client().Get("/v1"), 404));
  EXPECT_TRUE(IsProblem(client().Get("/nothing"), 404));
  // The root leads a browser to the dashboard.
  EXPECT_EQ(client().Get("/").status, 302);
}

// The 404's detail quotes the id: its bytes must not make the body invalid UTF-8.
TEST_F(ApiTest, UnknownIdThatIsNotUtf8Is404WithAValidUtf8Body) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const char* target : {"/v1/jobs/%FF%FE", "/v1/jobs/a%C3%28b/result", "/v1/jobs/%ED%A0%80"}) {
    SCOPED_TRACE(target);
    Response res = client().Get(target);
    // IsProblem parses the body with Boost.JSON, which refuses invalid UTF-8.
    ASSERT_TRUE(IsProblem(res, 404));
    EXPECT_NE(res.body.find("\xEF\xBF\xBD"), std::string::npos) << "the bad bytes became U+FFFD: " << res.body;
  }
}

TEST_F(ApiTest, ResultOfAnUnfinishedJobIs409) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  json::object running = SubmitJob(client(), "render", json::object{{"ms", 60'000}});
  json::object queued = SubmitJob(client(), "render", json::object{{"ms", 1}});
  ASSERT_EQ(Field(running, "status"), "running");
  ASSERT_EQ(Field(queued, "status"), "queued");
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs/" + Field(running, "id") + "/result"), 409));
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs/" + Field(queued, "id") + "/result"), 409));
  EXPECT_EQ(client().Delete("/v1/jobs/" + Field(running, "id")).status, 200);
  // A canceled job has no result either: its error as a problem.
  Response canceled = client().Get("/v1/jobs/" + Field(running, "id") + "/result");
  EXPECT_EQ(canceled.header("content-type"), "application/problem+json") << Describe(canceled);
  EXPECT_GE(canceled.status, 400) << Describe(canceled);
}

TEST_F(ApiTest, ResultOfAFailedJobIsItsErrorAsAProblem) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "200ms"
[tasks.slow]
run = "builtin:sleep"
timeout = "50ms"
)"));
  const std::string id = Field(SubmitJob(client(), "slow", json::object{{"ms", 60'000}}), "id");
  json::object job = WaitFinished(client(), id);
  ASSERT_EQ(Field(job, "status"), "failed") << json::serialize(job);
  ASSERT_TRUE(job.at("error").is_object()) << json::serialize(job);
  EXPECT_EQ(Field(job.at("error").as_object(), "type"), "timeout");
  EXPECT_FALSE(Field(job.at("error").as_object(), "message").empty());
  Response res = client().Get("/v1/jobs/" + id + "/result");
  EXPECT_GE(res.status, 400) << Describe(res);
  EXPECT_TRUE(IsProblem(res, res.status));
}

TEST_F(ApiTest, DeleteOfAFinishedJobIs409) {
  ASSERT_NO_FATAL_FAILURE(StartServer(std::string(kGpuConfig) + R"(
[tasks.slow]
run = "builtin:sleep"
timeout = "20ms"
)"));
  const std::string id = Field(SubmitJob(client(), "noop", nullptr), "id");
  ASSERT_EQ(Field(WaitFinished(client(), id), "status"), "succeeded");
  EXPECT_TRUE(IsProblem(client().Delete("/v1/jobs/" + id), 409));
  // A canceled job whose handler is still stopping answers 200 again; once it
  // has stopped, it is finished like any other.
  const std::string other = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  EXPECT_EQ(client().Delete("/v1/jobs/" + other).status, 200);
  WaitForInUse(client(), "gpu", 0);
  EXPECT_TRUE(IsProblem(client().Delete("/v1/jobs/" + other), 409));
  // Failed is finished too.
  const std::string failed = Field(SubmitJob(client(), "slow", json::object{{"ms", 60'000}}), "id");
  ASSERT_EQ(Field(WaitFinished(client(), failed), "status"), "failed");
  EXPECT_TRUE(IsProblem(client().Delete("/v1/jobs/" + failed), 409));
}

TEST_F(ApiTest, WrongMethodIs405WithAllow) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = Field(SubmitJob(client(), "noop", nullptr), "id");
  struct Case {
    http::verb method;
    std::string target;
  };
  const Case cases[] = {
      {http::verb::put, "/v1/jobs"},
      {http::verb::delete_, "/v1/jobs"},
      {http::verb::post, "/v1/jobs/" + id},
      {http::verb::put, "/v1/jobs/" + id},
      {http::verb::delete_, "/v1/jobs/" + id + "/result"},
      {http::verb::post, "/v1/tasks"},
      {http::verb::get, "/v1/tasks/noop/run"},
      {http::verb::delete_, "/v1/resources"},
      {http::verb::post, "/healthz"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(http::to_string(c.method)) + " " + c.target);
    Response res = client().Request(c.method, c.target, c.method == http::verb::get ? "" : "{}");
    EXPECT_TRUE(IsProblem(res, 405));
    EXPECT_FALSE(res.header("allow").empty()) << Describe(res);
  }
}

// A listing is a page of job states: results (which may be megabytes each) come only
// when asked for, and never past max_list_bytes.
TEST_F(ApiTest, ListLeavesResultsOutUnlessAsked) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::vector<std::string> ids;
  for (int ms = 1; ms <= 3; ++ms) ids.push_back(Field(SubmitJob(client(), "cpu", json::object{{"ms", ms}}), "id"));
  const std::string png = Field(SubmitJob(client(), "mandelbrot", json::object{{"width", 8}, {"height", 8}}), "id");
  for (const auto& id : ids) ASSERT_EQ(Field(WaitFinished(client(), id), "status"), "succeeded");
  ASSERT_EQ(Field(WaitFinished(client(), png), "status"), "succeeded");

  Response plain = client().Get("/v1/jobs?limit=10");
  ASSERT_EQ(plain.status, 200) << Describe(plain);
  const json::array& jobs = plain.json().at("jobs").as_array();
  ASSERT_EQ(jobs.size(), 4u) << Describe(plain);
  for (const auto& j : jobs) {
    const json::object& job = j.as_object();
    SCOPED_TRACE(json::serialize(job));
    EXPECT_FALSE(job.contains("result"));
    // Where the result is, and what it is.
    EXPECT_EQ(Field(job, "result_url"), "/v1/jobs/" + Field(job, "id") + "/result");
    EXPECT_FALSE(Field(job, "result_type").empty());
  }

  Response full = client().Get("/v1/jobs?limit=10&include=result");
  ASSERT_EQ(full.status, 200) << Describe(full);
  for (const auto& j : full.json().at("jobs").as_array()) {
    const json::object& job = j.as_object();
    SCOPED_TRACE(json::serialize(job));
    ASSERT_TRUE(job.contains("result"));
    if (Field(job, "id") == png) {
      // Bytes are never inlined: result_url has them.
      EXPECT_TRUE(job.at("result").is_null());
      EXPECT_EQ(Field(job, "result_type"), "image/png");
      continue;
    }
    ASSERT_TRUE(job.at("result").is_object());
    EXPECT_EQ(job.at("result"), client().Get("/v1/jobs/" + Field(job, "id") + "/result").json());
  }
  EXPECT_TRUE(IsProblem(client().Get("/v1/jobs?include=input"), 422));
  // A single job still carries its result.
  EXPECT_TRUE(GetJob(client(), ids[0]).at("result").is_object());
}

// `command` tasks whose results are a JSON string of 200,000 characters; pages of them
// may be at most 500,000 bytes.
std::string BigResultsConfig(std::string_view store) {
  return std::string(R"(
max_list_bytes = 500000
store = ")") +
         std::string(store) + R"("

[tasks.big]
command = ["sh", "-c", 'printf "\""; head -c 200000 /dev/zero | tr "\0" x; printf "\""']
)";
}

void ExpectListingWithinBudget(HttpClient& client) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Field(SubmitJob(client, "big", nullptr), "id"));
  for (const auto& id : ids) ASSERT_EQ(Field(WaitFinished(client, id), "status"), "succeeded");

  // Four results (800 KB) do not fit in 500,000 bytes.
  Response over = client.Get("/v1/jobs?limit=4&include=result");
  ASSERT_TRUE(IsProblem(over, 422)) << Describe(over);
  EXPECT_EQ(over.json().at("type"), "urn:offload:problem:response-too-large");
  const std::string detail(over.json().at("detail").as_string());
  EXPECT_NE(detail.find("max_list_bytes"), std::string::npos) << detail;
  EXPECT_NE(detail.find("limit"), std::string::npos) << detail;
  EXPECT_NE(detail.find("result_url"), std::string::npos) << detail;

  // Two do, and so does the whole listing without results, in a few KB.
  Response two = client.Get("/v1/jobs?limit=2&include=result");
  ASSERT_EQ(two.status, 200) << Describe(two);
  ASSERT_EQ(two.json().at("jobs").as_array().size(), 2u);
  for (const auto& j : two.json().at("jobs").as_array()) {
    ASSERT_TRUE(j.at("result").is_string()) << Describe(two);
    EXPECT_EQ(j.at("result").as_string().size(), 200000u);
  }
  Response plain = client.Get("/v1/jobs?limit=4");
  ASSERT_EQ(plain.status, 200) << Describe(plain);
  EXPECT_EQ(plain.json().at("jobs").as_array().size(), 4u);
  EXPECT_LT(plain.body.size(), 4096u);
}

TEST_F(ApiTest, ListWithResultsPastMaxListBytesIs422Sqlite) {
  ASSERT_NO_FATAL_FAILURE(StartServer(BigResultsConfig("sqlite:./jobs.db")));
  ExpectListingWithinBudget(client());
}

TEST_F(ApiTest, ListWithResultsPastMaxListBytesIs422Memory) {
  ASSERT_NO_FATAL_FAILURE(StartServer(BigResultsConfig("memory")));
  ExpectListingWithinBudget(client());
}

}  // namespace
}  // namespace offload::testing
