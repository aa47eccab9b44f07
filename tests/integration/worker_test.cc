// Programs behind offload, end to end: `command` tasks (a process per job) and
// `worker` tasks (persistent processes), through the real server: results, failures,
// timeouts and cancels that kill process groups, crashes, floods, and the checks
// that nothing is left behind (zombies, descriptors, grandchildren).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "exec/proc_util.h"
#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

const std::string kSource = OFFLOAD_SOURCE_DIR;

class WorkerTest : public ServerTest {
 protected:
  void SetUp() override { dir_ = MakeTestDir("offload-worker-it-"); }
  void TearDown() override {
    if (server_.running()) {
      // Whatever the test did, the server reaps every child it started (a child
      // that exits this very moment is a zombie for as long as the loop takes).
      EXPECT_TRUE(WaitUntil([&] { return CountZombieChildren(server_.pid()) == 0; }, milliseconds(2000)));
    }
    ServerTest::TearDown();
    std::filesystem::remove_all(dir_);
  }

  // A config with the test worker (tests/exec/testdata/test_worker.py) as task
  // "tw", plus `extra` TOML.
  std::string Config(const std::string& tw_keys, const std::string& extra = "") {
    return R"(
shutdown_grace = "1s"
store = "memory"
[resources]
cpu = 4

[tasks.tw]
worker = [")" +
           Python() + R"(", ")" + kSource + R"(/tests/exec/testdata/test_worker.py"]
env = { PYTHONPATH = ")" +
           kSource + R"(/clients/python", PYTHONDONTWRITEBYTECODE = "1" }
)" + tw_keys +
           "\n" + extra;
  }

  // Runs `input` on `task` to its end and returns the job object.
  json::object RunJob(const std::string& task, json::value input) {
    const std::string id = Field(SubmitJob(client(), task, std::move(input)), "id");
    return WaitFinished(client(), id, milliseconds(30'000));
  }
  static std::int64_t WorkerPid(const json::object& job) {
    const json::value* r = job.if_contains("result");
    if (!r || !r->is_object() || !r->as_object().contains("pid")) return -1;
    return r->at("pid").as_int64();
  }
  static std::string ErrorType(const json::object& job) {
    const json::value* e = job.if_contains("error");
    return e && e->is_object() ? std::string(e->at("type").as_string()) : "";
  }
  static std::string ErrorMessage(const json::object& job) {
    const json::value* e = job.if_contains("error");
    return e && e->is_object() ? std::string(e->at("message").as_string()) : "";
  }

  std::filesystem::path dir_;
};

TEST_F(WorkerTest, CommandTasksReturnJsonBytesAndFailuresWithStderr) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("", R"(
[tasks.echo]
command = ["cat"]

[tasks.png]
command = ["/bin/sh", "-c", "printf '\\211PNG\\r\\n\\032\\n'"]
content_type = "image/png"

[tasks.fails]
command = ["/bin/sh", "-c", "echo 'something broke' >&2; exit 3"]
)")));
  Response echo = client().Post("/v1/tasks/echo/run", R"({"x": [1, 2, 3]})");
  ASSERT_EQ(echo.status, 200) << Describe(echo);
  EXPECT_EQ(echo.json(), json::parse(R"({"x": [1, 2, 3]})"));

  Response png = client().Post("/v1/tasks/png/run", "{}");
  ASSERT_EQ(png.status, 200) << Describe(png);
  EXPECT_EQ(png.header("content-type"), "image/png");
  EXPECT_EQ(png.body, "\x89PNG\r\n\x1a\n");

  json::object failed = RunJob("fails", nullptr);
  EXPECT_EQ(Field(failed, "status"), "failed");
  EXPECT_EQ(ErrorType(failed), "command_failed");
  EXPECT_NE(ErrorMessage(failed).find("exited with status 3"), std::string::npos) << ErrorMessage(failed);
  EXPECT_NE(ErrorMessage(failed).find("something broke"), std::string::npos) << ErrorMessage(failed);
  Response result = client().Get("/v1/jobs/" + Field(failed, "id") + "/result");
  EXPECT_TRUE(IsProblem(result, 500)) << Describe(result);

  json::object tasks = client().Get("/v1/tasks").json().as_object();
  EXPECT_NE(json::serialize(tasks).find("\"png\""), std::string::npos);
}

TEST_F(WorkerTest, CancelOfARunningCommandKillsItsProcessGroup) {
  const std::string pidfile = (dir_ / "grandchild").string();
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 1", R"(
[tasks.true]
command = ["/bin/true"]

[tasks.spawner]
command = ["/bin/sh", "-c", "sleep 1000 & echo $! > )" + pidfile +
                                                                R"(; wait"]
)")));
  // Warm up: the server's process loop and its one worker exist from now on.
  ASSERT_EQ(Field(RunJob("true", nullptr), "status"), "succeeded");
  ASSERT_EQ(Field(RunJob("tw", json::parse(R"({"op": "noop"})")), "status"), "succeeded");
  const int fds_before = CountOpenFds(server_.pid());
  const std::string id = Field(SubmitJob(client(), "spawner", nullptr), "id");
  ASSERT_TRUE(WaitUntil([&] { return !ReadFileForTest(pidfile).empty(); }));
  const pid_t grandchild = std::atoi(ReadFileForTest(pidfile).c_str());
  ASSERT_GT(grandchild, 0);

  Response res = client().Delete("/v1/jobs/" + id);
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(Field(res.json().as_object(), "status"), "canceled");
  // The cpu slot comes back only once the process is reaped.
  WaitForInUse(client(), "cpu", 0);
  EXPECT_TRUE(WaitUntil([&] { return IsDead(grandchild); }, milliseconds(5000)));
  EXPECT_EQ(CountZombieChildren(server_.pid()), 0);
  EXPECT_TRUE(WaitUntil([&] { return CountOpenFds(server_.pid()) == fds_before; }, milliseconds(5000)))
      << CountOpenFds(server_.pid()) << " open, " << fds_before << " before";
}

TEST_F(WorkerTest, TheExampleWorkerLoadsItsModelOncePerProcess) {
  TestServerOptions options;
  options.extra_args = {"--config", kSource + "/examples/python-worker/offload.toml"};
  std::string err = server_.Start(options);
  ASSERT_TRUE(err.empty()) << err;
  client_.emplace(server_.port());

  std::set<std::int64_t> pids;
  for (int i = 0; i < 6; ++i) {
    Response res = client().Post("/v1/tasks/sentiment/run", R"({"text": "what a great day, I love it"})");
    ASSERT_EQ(res.status, 200) << Describe(res);
    json::value v = res.json();
    EXPECT_EQ(v.at("label"), "positive");
    EXPECT_EQ(v.at("worker").at("model_loads"), 1);
    pids.insert(v.at("worker").at("pid").as_int64());
  }
  EXPECT_LE(pids.size(), 2u);  // workers = 2: the same processes serve every job.
  Response bad = client().Post("/v1/tasks/sentiment/run", R"({"txt": "typo"})");
  EXPECT_TRUE(IsProblem(bad, 422)) << Describe(bad);
}

// A worker that cannot start is not a silent crash loop: the job that waited says
// why, GET /v1/tasks shows it, /healthz is degraded (still 200), and the task's
// workers recover once they start again.
TEST_F(WorkerTest, WorkersThatCannotStartShowOnTasksAndHealth) {
  const std::string flag = (dir_ / "broken").string();
  std::ofstream(flag) << "present\n";
  ASSERT_TRUE(std::filesystem::exists(flag)) << flag;
  // Fails at start while the flag file exists (feature_worker.py says "fatal").
  ASSERT_NO_FATAL_FAILURE(
      StartServer(Config("workers = 1\n", R"(
[tasks.fw]
worker = ["/bin/sh", "-c", "if [ -e )" + flag +
                                              R"( ]; then export FATAL='NameError: name x is not defined'; fi; exec )" +
                                              Python() + " " + kSource + R"(/tests/exec/testdata/feature_worker.py"]
workers = 1
)")));
  json::object job = RunJob("fw", json::value(1));
  EXPECT_EQ(Field(job, "status"), "failed") << json::serialize(job);
  EXPECT_EQ(ErrorType(job), "import_error");
  EXPECT_NE(ErrorMessage(job).find("name x is not defined"), std::string::npos) << ErrorMessage(job);
  EXPECT_NE(std::string(job.at("error").at("detail").as_string()).find("Traceback"), std::string::npos);

  Response health = client().Get("/healthz");
  ASSERT_EQ(health.status, 200) << Describe(health);
  EXPECT_EQ(health.json().at("status"), "degraded");
  EXPECT_NE(std::string(health.json().at("detail").as_string()).find("task fw"), std::string::npos) << Describe(health);

  json::object fw;
  const json::value tasks = client().Get("/v1/tasks").json();
  for (const auto& t : tasks.at("tasks").as_array()) {
    if (t.at("name") == "fw") fw = t.as_object();
  }
  ASSERT_TRUE(fw.contains("workers")) << json::serialize(fw);
  const json::value& w = fw.at("workers");
  EXPECT_EQ(w.at("configured"), 1);
  EXPECT_EQ(w.at("ready"), 0);
  EXPECT_GE(w.at("restarts").as_int64(), 1);
  EXPECT_EQ(w.at("last_exit"), "exited with status 3");
  EXPECT_EQ(w.at("last_error").at("type"), "import_error");
  EXPECT_TRUE(w.at("trouble").is_string());

  // Fixed: the next start succeeds, and health is ok again.
  std::filesystem::remove(flag);
  ASSERT_TRUE(WaitUntil([&] { return client().Get("/healthz").json().at("status") == "ok"; }, milliseconds(30'000)));
  json::object ok = RunJob("fw", json::value(4));
  EXPECT_EQ(Field(ok, "status"), "succeeded") << json::serialize(ok);
  EXPECT_EQ(ok.at("result").at("v"), 8);
  const json::value after = client().Get("/v1/tasks").json();
  for (const auto& t : after.at("tasks").as_array()) {
    if (t.at("name") == "tw") {
      EXPECT_TRUE(t.at("workers").at("trouble").is_null()) << json::serialize(t);
    }
    if (t.at("name") == "noop") {
      EXPECT_FALSE(t.as_object().contains("workers")) << "an in-process task has none";
    }
  }
}

TEST_F(WorkerTest, WorkersAreReusedAndRecycledAfterMaxJobs) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 1\nmax_jobs_per_worker = 3\n")));
  std::vector<std::int64_t> pids;
  for (int i = 0; i < 4; ++i) {
    json::object job = RunJob("tw", json::parse(R"({"op": "echo"})"));
    ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
    EXPECT_EQ(job.at("result").at("loads"), 1);
    pids.push_back(WorkerPid(job));
  }
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_EQ(pids[1], pids[2]);
  EXPECT_NE(pids[2], pids[3]);
}

TEST_F(WorkerTest, TimeoutKillsAWorkerThatIgnoresSigterm) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 1\ntimeout = \"1s\"\nkill_grace = \"300ms\"\n")));
  const auto t0 = Clock::now();
  json::object job = RunJob("tw", json::parse(R"({"op": "ignore_term"})"));
  EXPECT_EQ(Field(job, "status"), "failed") << json::serialize(job);
  EXPECT_EQ(ErrorType(job), "timeout");
  EXPECT_LT(Clock::now() - t0, milliseconds(10'000));
  WaitForInUse(client(), "cpu", 0);
  EXPECT_EQ(Field(RunJob("tw", json::parse(R"({"op": "noop"})")), "status"), "succeeded");
}

TEST_F(WorkerTest, CancelOfARunningWorkerJobReplacesTheWorker) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 1\n")));
  const std::int64_t before = WorkerPid(RunJob("tw", json::parse(R"({"op": "echo"})")));
  const std::string id = Field(SubmitJob(client(), "tw", json::parse(R"({"op": "progress", "ms": 60000})")), "id");
  ASSERT_TRUE(WaitUntil([&] {
    json::object j = GetJob(client(), id);
    return j.contains("progress") && j.at("progress").is_number() && j.at("progress").to_number<double>() == 0.5;
  }));
  Response res = client().Delete("/v1/jobs/" + id);
  ASSERT_EQ(res.status, 200) << Describe(res);
  WaitForInUse(client(), "cpu", 0);
  EXPECT_TRUE(IsDead(static_cast<pid_t>(before)));
  const std::int64_t after = WorkerPid(RunJob("tw", json::parse(R"({"op": "echo"})")));
  EXPECT_GT(after, 0);
  EXPECT_NE(after, before);
}

TEST_F(WorkerTest, ACrashOrAFloodFailsOnlyItsJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 2\nmax_result = \"1MiB\"\nkill_grace = \"1s\"\n")));
  json::object crashed = RunJob("tw", json::parse(R"({"op": "crash", "code": 9})"));
  EXPECT_EQ(Field(crashed, "status"), "failed");
  EXPECT_EQ(ErrorType(crashed), "worker_died");
  EXPECT_NE(ErrorMessage(crashed).find("exited with status 9"), std::string::npos) << ErrorMessage(crashed);

  const std::string flood = Field(SubmitJob(client(), "tw", json::parse(R"({"op": "flood", "mb": 50})")), "id");
  // The server keeps answering while the worker floods its pipe.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(client().Get("/healthz", milliseconds(2000)).status, 200);
  json::object flooded = WaitFinished(client(), flood);
  EXPECT_EQ(Field(flooded, "status"), "failed");
  EXPECT_EQ(ErrorType(flooded), "result_too_large") << ErrorMessage(flooded);
  EXPECT_EQ(Field(RunJob("tw", json::parse(R"({"op": "echo"})")), "status"), "succeeded");
}

TEST_F(WorkerTest, StatusReadsAnswerWhileEveryWorkerIsBusy) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 2\nuses = {cpu = 2}\n")));
  std::vector<std::string> busy;
  for (int i = 0; i < 2; ++i) {
    busy.push_back(Field(SubmitJob(client(), "tw", json::parse(R"({"op": "sleep", "ms": 60000})")), "id"));
  }
  const std::string queued = Field(SubmitJob(client(), "tw", json::parse(R"({"op": "noop"})")), "id");
  WaitForInUse(client(), "cpu", 4);
  std::vector<microseconds> latencies;
  for (int i = 0; i < 200; ++i) {
    const auto start = Clock::now();
    Response res = client().Get("/v1/jobs/" + (i % 3 == 2 ? queued : busy[i % 2]), milliseconds(5000));
    latencies.push_back(std::chrono::duration_cast<microseconds>(Clock::now() - start));
    ASSERT_EQ(res.status, 200) << Describe(res);
  }
  std::sort(latencies.begin(), latencies.end());
  EXPECT_LT(latencies[latencies.size() * 99 / 100], milliseconds(100));
  for (const auto& id : busy) EXPECT_EQ(client().Delete("/v1/jobs/" + id).status, 200);
  EXPECT_EQ(Field(WaitFinished(client(), queued), "status"), "succeeded");
}

TEST_F(WorkerTest, ManyJobsLeaveNoZombiesOrDescriptors) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config("workers = 1\nmax_jobs_per_worker = 5\n", R"(
[tasks.true]
command = ["/bin/true"]
)")));
  // Warm up, so that what lives as long as the server (its loop, a worker) exists.
  ASSERT_EQ(Field(RunJob("true", nullptr), "status"), "succeeded");
  ASSERT_EQ(Field(RunJob("tw", json::parse(R"({"op": "echo"})")), "status"), "succeeded");
  const int fds_before = CountOpenFds(server_.pid());
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(Field(SubmitJob(client(), "true", nullptr), "id"));
  for (int i = 0; i < 14; ++i) ids.push_back(Field(SubmitJob(client(), "tw", json::parse(R"({"op": "echo"})")), "id"));
  ids.push_back(Field(SubmitJob(client(), "tw", json::parse(R"({"op": "crash"})")), "id"));
  for (const auto& id : ids) WaitFinished(client(), id);
  // A replacement worker may be starting: wait for the count to settle.
  EXPECT_TRUE(WaitUntil([&] { return CountOpenFds(server_.pid()) == fds_before; }, milliseconds(5000)))
      << CountOpenFds(server_.pid()) << " open, " << fds_before << " before";
  EXPECT_EQ(CountZombieChildren(server_.pid()), 0);
}

}  // namespace
}  // namespace offload::testing
