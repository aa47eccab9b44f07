// Acting on jobs the server picks: POST /v1/jobs/{id}/retry (a new job from a failed
// or canceled one's input, linked to it) and POST /v1/jobs/cancel (every queued or
// running job that matches). Also the pages the binary serves as they are: /ui,
// /docs, /openapi.json, and / leading to the dashboard.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "support/server_fixture.h"
#include "support/temp_dirs.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using boost::beast::http::verb;

constexpr std::string_view kConfig = R"(
shutdown_grace = "200ms"

[resources]
cpu = 2

[tasks.slow]
run = "builtin:sleep"
uses = {cpu = 1}

[tasks.other]
run = "builtin:sleep"
uses = {cpu = 1}

[tasks.broken]
command = ["/bin/sh", "-c", "echo boom >&2; exit 3"]
uses = {cpu = 1}
)";

const Headers kJson = {{"Content-Type", "application/json"}};

class BulkTest : public ServerTest {};

TEST_F(BulkTest, RetryOfAFailedJobRunsItsInputAgainAsANewJobLinkedToIt) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  const std::string failed = Field(SubmitJob(client(), "broken", json::object{{"n", 7}}, /*priority=*/3), "id");
  ASSERT_EQ(Field(WaitFinished(client(), failed), "status"), "failed");

  Response res = client().Post("/v1/jobs/" + failed + "/retry", "");
  ASSERT_EQ(res.status, 202) << Describe(res);
  const json::object& again = res.json().as_object();
  const std::string id(again.at("id").as_string());
  EXPECT_NE(id, failed);
  EXPECT_EQ(res.header("location"), "/v1/jobs/" + id);
  EXPECT_EQ(again.at("retry_of").as_string(), failed);
  EXPECT_EQ(again.at("task"), "broken");
  EXPECT_EQ(again.at("priority"), 3);
  const json::object done = WaitFinished(client(), id);
  EXPECT_EQ(Field(done, "status"), "failed");
  EXPECT_EQ(done.at("retry_of").as_string(), failed);
  // The old job is as it was.
  const json::object old = GetJob(client(), failed);
  EXPECT_EQ(Field(old, "status"), "failed");
  EXPECT_FALSE(old.contains("retry_of"));
  EXPECT_FALSE(old.contains("input"));
  // The same input: the new job carries it, as GET ?include=input shows.
  Response with_input = client().Get("/v1/jobs/" + id + "?include=input");
  ASSERT_EQ(with_input.status, 200) << Describe(with_input);
  EXPECT_EQ(with_input.json().at("input"), (json::object{{"n", 7}}));
  EXPECT_EQ(client().Get("/v1/jobs/" + id + "?include=everything").status, 422);
}

TEST_F(BulkTest, ARetrySentTwiceRunsTheJobOnceUnlessTheKeysDiffer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  const std::string failed = Field(SubmitJob(client(), "broken", json::object{}), "id");
  ASSERT_EQ(Field(WaitFinished(client(), failed), "status"), "failed");
  Response first = client().Post("/v1/jobs/" + failed + "/retry", "");
  ASSERT_EQ(first.status, 202) << Describe(first);
  // A lost answer, or a button pressed twice: the same new job, 200.
  Response twice = client().Post("/v1/jobs/" + failed + "/retry", "");
  ASSERT_EQ(twice.status, 200) << Describe(twice);
  EXPECT_EQ(twice.json().at("id"), first.json().at("id"));
  // A key of the client's own says which retries are one.
  Response keyed = client().Post("/v1/jobs/" + failed + "/retry", "", {{"Idempotency-Key", "second-try"}});
  ASSERT_EQ(keyed.status, 202) << Describe(keyed);
  EXPECT_NE(keyed.json().at("id"), first.json().at("id"));
  EXPECT_EQ(client().Post("/v1/jobs/" + failed + "/retry", "", {{"Idempotency-Key", "second-try"}}).json().at("id"),
            keyed.json().at("id"));
  // Prefer: wait, as for any submit: the retry fails again within it.
  Response waited =
      client().Post("/v1/jobs/" + failed + "/retry", "", {{"Idempotency-Key", "third-try"}, {"Prefer", "wait=10"}});
  ASSERT_EQ(waited.status, 200) << Describe(waited);
  EXPECT_EQ(waited.json().at("status"), "failed");
}

TEST_F(BulkTest, RetryTakesFailedOrCanceledJobsOnly) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  const std::string running = Field(SubmitJob(client(), "slow", json::object{{"ms", 60'000}}), "id");
  WaitForStatus(client(), running, "running");
  Response conflict = client().Post("/v1/jobs/" + running + "/retry", "");
  EXPECT_EQ(conflict.status, 409) << Describe(conflict);
  EXPECT_EQ(conflict.json().at("type"), "urn:offload:problem:not-retryable");
  EXPECT_EQ(client().Post("/v1/jobs/nosuchjob/retry", "").status, 404);
  EXPECT_EQ(client().Get("/v1/jobs/" + running + "/retry").status, 405);

  ASSERT_EQ(client().Delete("/v1/jobs/" + running).status, 200);
  WaitFinished(client(), running);
  Response again = client().Post("/v1/jobs/" + running + "/retry", "");
  ASSERT_EQ(again.status, 202) << Describe(again);
  // The same input: it sleeps a minute again.
  const std::string id(again.json().at("id").as_string());
  WaitForStatus(client(), id, "running");
  EXPECT_EQ(GetJob(client(), id).at("retry_of").as_string(), running);
}

TEST(BulkDurabilityTest, ARetrysLinkSurvivesARestart) {
  DataDir data;
  const std::string config = "store = \"sqlite:" + data.db() + "\"\n" + std::string(kConfig);
  std::string failed, id;
  {
    TestServer server;
    ASSERT_EQ(server.Start(config), "");
    HttpClient client(server.port());
    failed = Field(SubmitJob(client, "broken", json::object{}), "id");
    WaitFinished(client, failed);
    Response res = client.Post("/v1/jobs/" + failed + "/retry", "");
    ASSERT_EQ(res.status, 202) << Describe(res);
    id = std::string(res.json().at("id").as_string());
    WaitFinished(client, id);
    ASSERT_EQ(server.Stop(), 0);
  }
  TestServer server;
  ASSERT_EQ(server.Start(config), "");
  HttpClient client(server.port());
  EXPECT_EQ(GetJob(client, id).at("retry_of").as_string(), failed);
  EXPECT_EQ(server.Stop(), 0);
}

TEST_F(BulkTest, CancelByFilterCancelsWhatMatchesAndNothingElse) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  // Two cpus: two slow jobs run, the third and the other task's job wait.
  std::vector<std::string> slow;
  for (int i = 0; i < 3; ++i) slow.push_back(Field(SubmitJob(client(), "slow", json::object{{"ms", 60'000}}), "id"));
  WaitForStatus(client(), slow[0], "running");
  WaitForStatus(client(), slow[1], "running");
  const std::string other = Field(SubmitJob(client(), "other", json::object{{"ms", 60'000}}), "id");
  const std::string finished = Field(SubmitJob(client(), "broken", json::object{}), "id");

  Response queued = client().Post("/v1/jobs/cancel", R"({"task":"slow","status":"queued"})", kJson);
  ASSERT_EQ(queued.status, 200) << Describe(queued);
  EXPECT_EQ(queued.json().at("canceled"), 1);
  EXPECT_EQ(Field(GetJob(client(), slow[2]), "status"), "canceled");
  EXPECT_EQ(Field(GetJob(client(), slow[0]), "status"), "running");

  Response all = client().Post("/v1/jobs/cancel", R"({"task":"slow"})", kJson);
  ASSERT_EQ(all.status, 200) << Describe(all);
  EXPECT_EQ(all.json().at("canceled"), 2);
  EXPECT_EQ(Field(WaitFinished(client(), slow[0]), "status"), "canceled");
  EXPECT_EQ(Field(WaitFinished(client(), slow[1]), "status"), "canceled");
  EXPECT_NE(Field(GetJob(client(), other), "status"), "canceled");
  EXPECT_EQ(Field(WaitFinished(client(), finished), "status"), "failed");  // Finished jobs are left alone.

  // No filter is refused; everything queued or running takes {"all": true}.
  EXPECT_EQ(client().Post("/v1/jobs/cancel", "", kJson).status, 422);
  EXPECT_EQ(client().Post("/v1/jobs/cancel", "{}", kJson).status, 422);
  EXPECT_NE(Field(GetJob(client(), other), "status"), "canceled");
  Response rest = client().Post("/v1/jobs/cancel", R"({"all": true})", kJson);
  ASSERT_EQ(rest.status, 200) << Describe(rest);
  EXPECT_EQ(rest.json().at("canceled"), 1);
  EXPECT_EQ(Field(WaitFinished(client(), other), "status"), "canceled");
}

TEST_F(BulkTest, CancelByFilterRefusesWhatItCannotRead) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  EXPECT_EQ(client().Post("/v1/jobs/cancel", R"({"status":"succeeded"})", kJson).status, 422);
  EXPECT_EQ(client().Post("/v1/jobs/cancel", R"({"task":"nope"})", kJson).status, 422);
  EXPECT_EQ(client().Post("/v1/jobs/cancel", R"({"tsk":"slow"})", kJson).status, 422);
  EXPECT_EQ(client().Post("/v1/jobs/cancel", R"([1,2])", kJson).status, 400);
  EXPECT_EQ(client().Post("/v1/jobs/cancel", R"({"task":"slow"})", {{"Content-Type", "text/plain"}}).status, 415);
}

TEST_F(BulkTest, TheBinaryServesTheDashboardTheDocsAndTheOpenApiDocument) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  Response root = client().Get("/");
  EXPECT_EQ(root.status, 302);
  EXPECT_EQ(root.header("location"), "/ui");
  Response spec = client().Get("/openapi.json");
  ASSERT_EQ(spec.status, 200) << Describe(spec);
  EXPECT_EQ(spec.header("content-type"), "application/json");
  EXPECT_EQ(spec.json().at("openapi"), "3.1.0");
  Response ui = client().Get("/ui");
  ASSERT_EQ(ui.status, 200) << Describe(ui);
  EXPECT_EQ(ui.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(ui.header("content-security-policy").find("default-src 'self'"), std::string::npos);
  // A browser revalidates: the same file is a 304.
  Response again = client().Request(verb::get, "/ui", {}, {{"If-None-Match", ui.header("etag")}});
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(client().Get("/ui/app.js").header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(client().Get("/ui/nothing.js").status, 404);
  EXPECT_EQ(client().Get("/ui/../docs.html").status, 404);
  EXPECT_EQ(client().Post("/ui", "").status, 405);
  Response docs = client().Get("/docs");
  ASSERT_EQ(docs.status, 200) << Describe(docs);
  EXPECT_NE(docs.body.find("/openapi.json"), std::string::npos);
}

}  // namespace
}  // namespace offload::testing
