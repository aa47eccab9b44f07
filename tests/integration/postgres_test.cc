// The real binary on a PostgreSQL store: a 202 is a promise there too (kill -9 under
// load loses no accepted job), and PostgreSQL going away costs 503s and loses nothing.
// Several servers on one schema: cluster_test.cc.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/job_helpers.h"
#include "support/postgres_schema.h"
#include "support/test_server.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using PostgresServerTest = PostgresSchemaTest;

TEST_F(PostgresServerTest, KillNineUnderSubmitLoadLosesNoAcceptedJob) {
  const std::string config = PostgresConfig(conninfo_);
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
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (accepted.size() >= 300 || Clock::now() > deadline) break;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    server.Signal(SIGKILL);
    stop = true;
    for (auto& c : clients) c.join();
    ASSERT_TRUE(server.WaitForExit(std::chrono::seconds(10)).has_value());
  }
  ASSERT_GE(accepted.size(), 50u) << "too few jobs were accepted to test anything";

  TestServer again;
  ASSERT_EQ(again.Start(config), "");
  HttpClient client(again.port());
  for (const std::string& id : accepted) {
    json::object job = WaitFinished(client, id, std::chrono::seconds(60));
    // A job running at the kill is failed "interrupted" (sleep has no retries); the
    // rest run after the restart. None is lost.
    const std::string status = Field(job, "status");
    EXPECT_TRUE(status == "succeeded" || status == "failed") << id << ": " << json::serialize(job);
  }
}

TEST_F(PostgresServerTest, TheLogNeverShowsThePassword) {
  TestServer server;
  // trust authentication: the server ignores the password, offload must still hide it.
  ASSERT_EQ(server.Start(PostgresConfig(conninfo_ + " password=s3cret-pw")), "");
  HttpClient client(server.port());
  json::object job = SubmitJob(client, "noop", json::object{});
  EXPECT_EQ(Field(WaitFinished(client, Field(job, "id")), "status"), "succeeded");
  EXPECT_EQ(server.log().find("s3cret-pw"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find("password=***"), std::string::npos) << server.log();
}

TEST(PostgresOutageTest, WhilePostgresIsDownSubmitsGet503AndRunningJobsLoseNothing) {
  ASSERT_TRUE(TestPostgresConnInfo().has_value()) << "the test server's script is needed";
  PrivatePostgres pg;
  ASSERT_TRUE(pg.Run("start"));
  const std::string config = PostgresConfig(pg.conninfo());
  std::string running_id;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    running_id = Field(SubmitJob(client, "sleep", json::object{{"ms", 1500}}), "id");
    WaitForStatus(client, running_id, "running");

    ASSERT_TRUE(pg.Run("halt"));
    Response refused = client.Post("/v1/jobs", R"({"task":"noop","input":{}})");
    EXPECT_EQ(refused.status, 503) << Describe(refused);
    EXPECT_EQ(refused.headers["content-type"], "application/problem+json");
    EXPECT_FALSE(refused.headers["retry-after"].empty());
    // The running job finishes, and is read from memory while its final write is
    // refused (a long-poll would wait for the write: its answer is a durable state).
    json::object done = WaitForStatus(client, running_id, "succeeded", std::chrono::seconds(10));
    EXPECT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);

    ASSERT_TRUE(pg.Run("resume"));

    // Once PostgreSQL is back, submits work again, from the first: a connection its
    // stop cut is replaced, not failed.
    Response accepted = client.Post("/v1/jobs", R"({"task":"noop","input":{}})");
    EXPECT_EQ(accepted.status, 202) << Describe(accepted);
    // The drain waits for the refused final write to be taken.
    ASSERT_EQ(server.Stop(), 0) << server.log();
  }
  // What was acknowledged is in PostgreSQL: a new server reads it.
  TestServer again;
  ASSERT_EQ(again.Start(config), "");
  HttpClient client(again.port());
  EXPECT_EQ(Field(GetJob(client, running_id), "status"), "succeeded");
}

}  // namespace
}  // namespace offload::testing
