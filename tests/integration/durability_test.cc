// Durability (the SQLite store): a 202 is a promise. kill -9 under load, restart
// recovery, retries, idempotency, a full store, and retention keeping the file
// bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/job_helpers.h"
#include "support/temp_dirs.h"
#include "support/test_server.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string StoreLine(const DataDir& dir) { return "store = \"sqlite:" + dir.db() + "\"\n"; }

TEST(DurabilityTest, KillNineUnderSubmitLoadLosesNoAcceptedJob) {
  DataDir data;
  const std::string config = StoreLine(data) + "sqlite_synchronous = \"normal\"\n";
  std::set<std::string> accepted;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&] {
        HttpClient client(server.port());
        for (int i = 0; i < 2000 && !stop; ++i) {
          Response res = client.Post("/v1/jobs", R"({"task":"sleep","input":{"ms":2}})", {}, milliseconds(5000));
          if (res.status != 202) break;  // The server died under us.
          std::lock_guard lock(mu);
          accepted.insert(res.json().at("id").as_string().c_str());
        }
      });
    }
    // Kill once a fair number of jobs were accepted (or after 5 s at most).
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (accepted.size() >= 400) break;
      }
      if (Clock::now() > deadline) break;
      std::this_thread::yield();
    }
    server.Signal(SIGKILL);
    ASSERT_TRUE(server.WaitForExit(milliseconds(5000)).has_value());
    stop = true;
    for (auto& c : clients) c.join();
  }
  ASSERT_GE(accepted.size(), 50u) << "too few jobs were accepted before the kill to test anything";

  TestServer restarted;
  ASSERT_EQ(restarted.Start(config), "");
  HttpClient client(restarted.port());
  int interrupted = 0;
  for (const std::string& id : accepted) {
    json::object job = WaitFinished(client, id, std::chrono::seconds(60));
    ASSERT_FALSE(job.empty()) << "job " << id << " got a 202 and is gone after kill -9";
    const std::string status = Field(job, "status");
    if (status == "failed") {
      ASSERT_EQ(Field(job.at("error").as_object(), "type"), "interrupted") << json::serialize(job);
      ++interrupted;
    } else {
      ASSERT_EQ(status, "succeeded") << json::serialize(job);
    }
    // Retries are off: nothing ran twice.
    ASSERT_EQ(job.at("attempts"), 1) << json::serialize(job);
  }
  // At most one job per cpu slot was running at the kill.
  EXPECT_LE(interrupted, 2);
}

TEST(DurabilityTest, RestartResumesQueuedJobsInOrderAndRetriesTheInterruptedOne) {
  DataDir data;
  const std::string config = StoreLine(data) +
                             "[resources]\ngpu = 1\n"
                             "[tasks.render]\nrun = \"builtin:sleep\"\nuses = {gpu = 1}\nretries = 1\n"
                             "retry_backoff = \"10ms\"\n";
  std::vector<std::string> ids;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    ids.push_back(Field(SubmitJob(client, "render", json::object{{"ms", 60'000}}), "id"));
    for (int i = 0; i < 5; ++i) ids.push_back(Field(SubmitJob(client, "render", json::object{{"ms", 20}}), "id"));
    WaitForStatus(client, ids[0], "running");
    server.Signal(SIGKILL);
    ASSERT_TRUE(server.WaitForExit(milliseconds(5000)).has_value());
  }
  TestServer restarted;
  ASSERT_EQ(restarted.Start(config), "");
  HttpClient client(restarted.port());
  // The interrupted job had a retry left: it runs again, first (it was submitted first).
  ASSERT_EQ(client.Delete("/v1/jobs/" + ids[0]).status, 200);
  json::object first = GetJob(client, ids[0]);
  EXPECT_EQ(first.at("attempts"), 2) << json::serialize(first);
  ASSERT_TRUE(first.contains("error_history")) << json::serialize(first);
  EXPECT_EQ(Field(first.at("error_history").as_array().at(0).as_object(), "type"), "interrupted");

  std::int64_t previous_start = 0;
  for (std::size_t i = 1; i < ids.size(); ++i) {
    json::object job = WaitFinished(client, ids[i]);
    ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
    EXPECT_EQ(job.at("attempts"), 1);
    EXPECT_GT(TimeOf(job, "started_at"), previous_start - 1) << "job " << i << " started out of order";
    previous_start = TimeOf(job, "started_at");
  }
}

TEST(DurabilityTest, AMapRunningAtAKillRunsAgainIfItsTaskRetriesElseFailsAsInterrupted) {
  DataDir data;
  const std::string config = StoreLine(data) +
                             "[resources]\ncpu = 8\n"  // Room for both maps at once.
                             "[tasks.again]\nrun = \"builtin:sleep\"\nretries = 1\nretry_backoff = \"10ms\"\n"
                             "[tasks.once]\nrun = \"builtin:sleep\"\n";
  json::array elements;
  for (int i = 0; i < 4; ++i) elements.push_back(json::object{{"ms", 1000}});
  std::string again, once;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    for (auto [task, id] : {std::pair{"again", &again}, std::pair{"once", &once}}) {
      Response res =
          client.Post("/v1/jobs", json::serialize(json::object{{"task", task}, {"map", elements}, {"chunk", 1}}));
      ASSERT_EQ(res.status, 202) << res.body;
      *id = Field(res.json().as_object(), "id");
    }
    // Until the store has them as running: GET /v1/jobs filters on the stored state.
    for (const std::string* id : {&again, &once}) {
      const auto deadline = Clock::now() + milliseconds(5000);
      for (;;) {
        Response list = client.Get("/v1/jobs?status=running&limit=10");
        ASSERT_EQ(list.status, 200);
        if (list.body.find(*id) != std::string::npos) break;
        ASSERT_LT(Clock::now(), deadline) << "map " << *id << " never stored as running";
        std::this_thread::sleep_for(milliseconds(2));
      }
    }
    server.Signal(SIGKILL);
    ASSERT_TRUE(server.WaitForExit(milliseconds(5000)).has_value());
  }
  TestServer restarted;
  ASSERT_EQ(restarted.Start(config), "");
  HttpClient client(restarted.port());
  // The whole map runs again: its elements' outcomes were in the killed process.
  json::object rerun = WaitFinished(client, again);
  ASSERT_EQ(Field(rerun, "status"), "succeeded") << json::serialize(rerun);
  EXPECT_EQ(rerun.at("attempts"), 2);
  EXPECT_EQ(rerun.at("result").as_array().size(), 4u);
  ASSERT_TRUE(rerun.contains("error_history")) << json::serialize(rerun);
  EXPECT_EQ(Field(rerun.at("error_history").as_array().at(0).as_object(), "type"), "interrupted");

  json::object failed = WaitFinished(client, once);
  EXPECT_EQ(Field(failed, "status"), "failed") << json::serialize(failed);
  EXPECT_EQ(Field(failed.at("error").as_object(), "type"), "interrupted");
  EXPECT_EQ(failed.at("map").at("total"), 4);
}

TEST(DurabilityTest, FailedAttemptsAreRetriedWithTheirErrorsKept) {
  TestServer server;
  ASSERT_EQ(server.Start("[tasks.flaky]\nrun = \"builtin:sleep\"\ntimeout = \"30ms\"\nretries = 2\n"
                         "retry_backoff = \"10ms\"\n"),
            "");
  HttpClient client(server.port());
  const std::string id = Field(SubmitJob(client, "flaky", json::object{{"ms", 5000}}), "id");
  json::object job = WaitFinished(client, id);
  EXPECT_EQ(Field(job, "status"), "failed");
  EXPECT_EQ(job.at("attempts"), 3) << json::serialize(job);
  EXPECT_EQ(Field(job.at("error").as_object(), "type"), "timeout");
  ASSERT_TRUE(job.contains("error_history")) << json::serialize(job);
  EXPECT_EQ(job.at("error_history").as_array().size(), 2u);
}

TEST(DurabilityTest, IdempotencyKeyReturnsTheFirstJobAcrossARestart) {
  DataDir data;
  const std::string config = StoreLine(data);
  const std::string body = R"({"task":"noop","input":{"n":1}})";
  const Headers key = {{"Idempotency-Key", "order-42"}};
  std::string id;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    Response first = client.Post("/v1/jobs", body, key);
    ASSERT_EQ(first.status, 202) << Describe(first);
    id = first.json().at("id").as_string().c_str();
    Response again = client.Post("/v1/jobs", body, key);
    ASSERT_EQ(again.status, 200) << Describe(again);
    EXPECT_EQ(again.json().at("id").as_string(), id);
    Response other = client.Post("/v1/jobs", R"({"task":"noop","input":{"n":2}})", key);
    EXPECT_TRUE(IsProblem(other, 422)) << Describe(other);
    // Another task may use the same key for its own job.
    Response elsewhere = client.Post("/v1/jobs", R"({"task":"sleep","input":{"ms":1}})", key);
    EXPECT_EQ(elsewhere.status, 202) << Describe(elsewhere);
    WaitFinished(client, id);
    ASSERT_EQ(server.Stop(), 0);
  }
  TestServer restarted;
  ASSERT_EQ(restarted.Start(config), "");
  HttpClient client(restarted.port());
  Response after = client.Post("/v1/jobs", body, key);
  ASSERT_EQ(after.status, 200) << Describe(after);
  EXPECT_EQ(after.json().at("id").as_string(), id);
  EXPECT_EQ(Field(after.json().as_object(), "status"), "succeeded");
}

// A queued job's input comes back from the store exactly: the command (`cat`, its
// stdin as a text result) sees after the restart the numbers its client sent, 1.0
// still a double and -0.0 with its sign, in shortest form.
TEST(DurabilityTest, AQueuedInputKeepsItsNumbersExactlyAcrossARestart) {
  DataDir data;
  const std::string config = StoreLine(data) + R"(
shutdown_grace = "200ms"
[resources]
gpu = 1
[tasks.block]
run = "builtin:sleep"
uses = {gpu = 1}
[tasks.stdin]
command = ["cat"]
content_type = "text/plain"
uses = {gpu = 1}
)";
  const std::string input =
      R"({"a":0.1,"b":2.5,"c":1.0,"d":-0.0,"e":1E300,"u":18446744073709551615,"i":-9223372036854775808,"x":5e-324})";
  std::string id;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    Response blocker = client.Post("/v1/jobs", R"({"task":"block","input":{"ms":60000}})");
    ASSERT_EQ(blocker.status, 202) << Describe(blocker);
    Response queued = client.Post("/v1/jobs", R"({"task":"stdin","input":)" + input + "}");
    ASSERT_EQ(queued.status, 202) << Describe(queued);
    id = queued.json().at("id").as_string().c_str();
    ASSERT_EQ(Field(queued.json().as_object(), "status"), "queued");
    server.Signal(SIGKILL);
    ASSERT_TRUE(server.WaitForExit(milliseconds(5000)).has_value());
  }
  TestServer restarted;
  ASSERT_EQ(restarted.Start(config), "");
  HttpClient client(restarted.port());
  json::object job = WaitFinished(client, id, std::chrono::seconds(30));
  ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  Response stdin_text = client.Get("/v1/jobs/" + id + "/result");
  ASSERT_EQ(stdin_text.status, 200) << Describe(stdin_text);
  EXPECT_EQ(
      stdin_text.body,
      R"({"a":0.1,"b":2.5,"c":1.0,"d":-0.0,"e":1e+300,"u":18446744073709551615,"i":-9223372036854775808,"x":5e-324})"
      "\n");
}

TEST(DurabilityTest, AFullStoreAnswers503AndKeepsEveryAcceptedJob) {
  TestServer server;
  // A cap of 256 KiB stands in for a full disk: SQLite fails the write the same way.
  ASSERT_EQ(server.Start("sqlite_max_bytes = 262144\nshutdown_grace = \"100ms\"\n"
                         "[resources]\ngpu = 1\n[tasks.held]\nrun = \"builtin:sleep\"\nuses = {gpu = 1}\n"),
            "");
  HttpClient client(server.port());
  const std::string padding(16 * 1024, 'x');
  std::vector<std::string> accepted;
  Response refused;
  for (int i = 0; i < 200; ++i) {
    Response res = client.Post("/v1/jobs", R"({"task":"held","input":{"ms":60000,"pad":")" + padding + "\"}}");
    if (res.status == 202) {
      accepted.push_back(res.json().at("id").as_string().c_str());
      continue;
    }
    refused = res;
    break;
  }
  ASSERT_FALSE(accepted.empty());
  ASSERT_TRUE(IsProblem(refused, 503)) << Describe(refused);
  EXPECT_EQ(refused.json().at("type"), "urn:offload:problem:unavailable");
  EXPECT_FALSE(refused.header("retry-after").empty());
  // The server is alive, and everything it accepted is there.
  EXPECT_EQ(client.Get("/healthz").status, 200);
  for (const std::string& id : accepted) {
    Response res = client.Get("/v1/jobs/" + id);
    EXPECT_EQ(res.status, 200) << id << ": " << Describe(res);
  }
  EXPECT_NE(server.log().find("store"), std::string::npos) << "the failure was not logged";
}

std::size_t LinesIn(const std::string& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Before the fix, a final state the full disk refused was dropped from memory: GET
// served the stored row (queued or running) and the next start ran the job again.
TEST(DurabilityTest, AFullDiskLosesNoFinalStateAndNothingRunsTwice) {
  SmallDisk disk("8m");
  if (!disk.ok()) GTEST_SKIP() << "mounting a tmpfs needs root (or CAP_SYS_ADMIN)";
  DataDir work;
  const std::string go = work.db() + ".go", count = work.db() + ".count";
  // Each execution appends a line to `count` once `go` exists, then answers a
  // 300 KB JSON string: its final write needs room the full disk does not have.
  const std::string config = "store = \"sqlite:" + disk.path() +
                             "/offload.db\"\n"
                             "[resources]\nslot = 1\n"
                             "[tasks.step]\nuses = {slot = 1}\ncommand = [\"sh\", \"-c\", "
                             "\"while [ ! -e " +
                             go + " ]; do sleep 0.01; done; echo run >> " + count +
                             "; printf '\\\"'; head -c 300000 /dev/zero | tr '\\\\0' a; printf '\\\"'\"]\n";
  constexpr int kJobs = 6;
  std::vector<std::string> ids;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    for (int i = 0; i < kJobs; ++i) ids.push_back(Field(SubmitJob(client, "step", json::object{{"i", i}}), "id"));
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(kJobs));
    disk.Fill();
    std::ofstream(go).put('\n');

    // The first job has run and its end cannot be recorded: the server says so and
    // serves the job's real state from memory.
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    Response health;
    do {
      std::this_thread::sleep_for(milliseconds(20));
      health = client.Get("/healthz");
    } while (health.json().at("status") != "degraded" && Clock::now() < deadline);
    ASSERT_EQ(health.json().at("status"), "degraded") << Describe(health) << server.log();
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(Field(GetJob(client, ids[0]), "status"), "succeeded");
    // Nothing new starts meanwhile. Jobs may have started before the first refusal came
    // back from the disk (on a slow machine, several: each one that finished first
    // started the next); once the one running has ended, the count must stay put.
    WaitForInUse(client, "slot", 0);
    const std::size_t ran = LinesIn(count);
    EXPECT_LT(ran, static_cast<std::size_t>(kJobs));
    for (int i = 0; i < 25; ++i) {
      std::this_thread::sleep_for(milliseconds(20));
      ASSERT_EQ(client.Get("/healthz").json().at("status"), "degraded");
    }
    EXPECT_EQ(LinesIn(count), ran) << "a job started while the store refused final states";

    disk.Free();
    for (const std::string& id : ids) {
      json::object job = WaitFinished(client, id, std::chrono::seconds(60));
      ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job) << server.log();
    }
    EXPECT_EQ(client.Get("/healthz").json().at("status"), "ok");
    EXPECT_EQ(LinesIn(count), static_cast<std::size_t>(kJobs));
    server.Signal(SIGKILL);
    ASSERT_TRUE(server.WaitForExit(milliseconds(5000)).has_value());
  }
  // After a crash, the next start finds every job finished: none is recovered, none
  // runs again.
  TestServer restarted;
  ASSERT_EQ(restarted.Start(config), "");
  EXPECT_EQ(restarted.log().find("unfinished jobs found"), std::string::npos) << restarted.log();
  HttpClient client(restarted.port());
  for (const std::string& id : ids) {
    json::object job = GetJob(client, id);
    EXPECT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
    EXPECT_EQ(job.at("attempts"), 1) << json::serialize(job);
  }
  EXPECT_EQ(LinesIn(count), static_cast<std::size_t>(kJobs));
}

std::uintmax_t StoreBytes(const std::string& db) {
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    auto n = std::filesystem::file_size(db + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

TEST(DurabilityTest, RetentionKeepsTheDatabaseFromGrowingUnderSteadyLoad) {
  DataDir data;
  TestServer server;
  ASSERT_EQ(server.Start(StoreLine(data) + "retention = \"200ms\"\nsqlite_synchronous = \"normal\"\n"), "");
  HttpClient client(server.port());
  const std::string input = R"({"task":"noop","input":")" + std::string(512, 'y') + "\"}";
  auto wave = [&] {
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(client.Post("/v1/jobs", input).status, 202);
    // Retention sweeps every 100 ms here: wait until every job of the wave is gone.
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      Response res = client.Get("/v1/jobs?limit=1");
      ASSERT_EQ(res.status, 200);
      if (res.json().at("jobs").as_array().empty()) return;
      std::this_thread::sleep_for(milliseconds(50));
    }
    FAIL() << "retention did not remove the finished jobs";
  };
  wave();
  const std::uintmax_t after_one = StoreBytes(data.db());
  for (int i = 0; i < 3; ++i) wave();
  const std::uintmax_t after_four = StoreBytes(data.db());
  EXPECT_LT(after_four, after_one * 2 + 512 * 1024)
      << "the store grew from " << after_one << " to " << after_four << " bytes over three more waves";
}

}  // namespace
}  // namespace offload::testing

namespace offload::testing {
namespace {

TEST(TimeoutTest, AJobsOwnTimeoutIsCappedByItsTasks) {
  TestServer server;
  ASSERT_EQ(server.Start("[tasks.capped]\nrun = \"builtin:sleep\"\ntimeout = \"200ms\"\n"), "");
  HttpClient client(server.port());
  // Its own timeout, shorter than the task's: it wins.
  Response own = client.Post("/v1/jobs", R"({"task":"sleep","input":{"ms":60000},"timeout":0.05})");
  ASSERT_EQ(own.status, 202) << Describe(own);
  json::object a = WaitFinished(client, own.json().at("id").as_string().c_str());
  EXPECT_EQ(Field(a, "status"), "failed");
  EXPECT_EQ(Field(a.at("error").as_object(), "type"), "timeout");
  EXPECT_LT(TimeOf(a, "finished_at") - TimeOf(a, "started_at"), 5000);
  // A longer one than the task allows: the task's cap wins.
  Response capped = client.Post("/v1/jobs", R"({"task":"capped","input":{"ms":60000},"timeout":3600})");
  ASSERT_EQ(capped.status, 202) << Describe(capped);
  json::object b = WaitFinished(client, capped.json().at("id").as_string().c_str());
  EXPECT_EQ(Field(b, "status"), "failed");
  EXPECT_NE(Field(b.at("error").as_object(), "message").find("200 ms"), std::string::npos) << json::serialize(b);
  // Not a number of seconds: refused before anything is stored.
  EXPECT_TRUE(IsProblem(client.Post("/v1/jobs", R"({"task":"sleep","input":{"ms":1},"timeout":-1})"), 422));
}

}  // namespace
}  // namespace offload::testing
