// Cross-site requests against the real binary: what a web page in the user's browser
// could send to a server on 127.0.0.1 (a text/plain or form POST, any Origin, a
// rebound Host name) is refused before it changes anything, while the API's own
// clients and the pages of allowed_origins keep working (CORS).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "support/raw_exchange.h"
#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
namespace http = boost::beast::http;

using CrossSiteTest = ServerTest;

constexpr std::string_view kNoopJob = R"({"task": "noop"})";

// How many jobs the server holds (GET /v1/jobs from the test client, which is same-host
// and sends no Origin).
std::size_t JobCount(HttpClient& client) {
  Response res = client.Get("/v1/jobs?limit=1000");
  EXPECT_EQ(res.status, 200) << Describe(res);
  if (res.status != 200) return 0;
  return res.json().at("jobs").as_array().size();
}

TEST_F(CrossSiteTest, TextPlainPostIs415AndCreatesNoJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // What <form enctype="text/plain"> or fetch(url, {method: "POST", body, mode: "no-cors"})
  // sends: no preflight, so only the server can stop it.
  Response res = client().Post("/v1/jobs", std::string(kNoopJob), {{"Content-Type", "text/plain"}});
  EXPECT_TRUE(IsProblem(res, 415)) << Describe(res);
  EXPECT_NE(res.body.find("text/plain"), std::string::npos) << "the detail names what was sent: " << res.body;
  EXPECT_NE(res.body.find("application/json"), std::string::npos) << "and what is expected: " << res.body;
  EXPECT_EQ(res.header("accept"), "application/json");
  Response run = client().Post("/v1/tasks/noop/run", "{}", {{"Content-Type", "text/plain;charset=UTF-8"}});
  EXPECT_TRUE(IsProblem(run, 415)) << Describe(run);
  EXPECT_EQ(JobCount(client()), 0u);
}

TEST_F(CrossSiteTest, FormAndMultipartPostsAre415) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const char* type : {"application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                           "application/problem+json", "application/jsonx"}) {
    SCOPED_TRACE(type);
    EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", std::string(kNoopJob), {{"Content-Type", type}}), 415));
    EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/noop/run", "{}", {{"Content-Type", type}}), 415));
  }
  EXPECT_EQ(JobCount(client()), 0u);
}

TEST_F(CrossSiteTest, JsonWithParametersOrAnyCaseIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const char* type : {"application/json; charset=utf-8", "Application/JSON", "application/json ;charset=UTF-8"}) {
    SCOPED_TRACE(type);
    Response res = client().Post("/v1/jobs", std::string(kNoopJob), {{"Content-Type", type}});
    EXPECT_EQ(res.status, 202) << Describe(res);
    Response run = client().Post("/v1/tasks/noop/run", "{}", {{"Content-Type", type}});
    EXPECT_EQ(run.status, 200) << Describe(run);
  }
  // No body (no input) needs no content type.
  Response empty = client().Post("/v1/tasks/noop/run", "");
  EXPECT_EQ(empty.status, 200) << Describe(empty);
}

TEST_F(CrossSiteTest, ForeignOriginIs403AndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = Field(SubmitJob(client(), "sleep", json::object{{"ms", 60'000}}), "id");
  const Headers evil{{"Origin", "http://evil.example"}};
  // Even with the right content type (a page cannot send that without a preflight,
  // but a refused preflight is not the only line of defence).
  Response post = client().Post("/v1/jobs", std::string(kNoopJob), evil);
  EXPECT_TRUE(IsProblem(post, 403)) << Describe(post);
  EXPECT_NE(post.body.find("http://evil.example"), std::string::npos) << post.body;
  EXPECT_TRUE(post.header("access-control-allow-origin").empty());
  EXPECT_TRUE(IsProblem(client().Post("/v1/tasks/noop/run", "{}", evil), 403));
  EXPECT_TRUE(IsProblem(client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, evil), 403));
  EXPECT_TRUE(IsProblem(client().Request(http::verb::get, "/v1/jobs", {}, evil), 403));
  Response preflight = client().Request(http::verb::options, "/v1/jobs", {},
                                        {{"Origin", "http://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_TRUE(IsProblem(preflight, 403)) << Describe(preflight);
  EXPECT_TRUE(preflight.header("access-control-allow-origin").empty());
  // "null" (sandboxed frames, file:// pages) is foreign too.
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", std::string(kNoopJob), {{"Origin", "null"}}), 403));

  EXPECT_EQ(JobCount(client()), 1u);
  EXPECT_EQ(Field(GetJob(client(), id), "status"), "running");
  EXPECT_EQ(client().Delete("/v1/jobs/" + id).status, 200);
}

TEST_F(CrossSiteTest, TheServersOwnOriginIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string own = "http://127.0.0.1:" + std::to_string(server_.port());
  Response res = client().Post("/v1/jobs", std::string(kNoopJob), {{"Origin", own}});
  EXPECT_EQ(res.status, 202) << Describe(res);
}

TEST_F(CrossSiteTest, AllowedOriginGetsCorsHeadersAndPreflight) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
allowed_origins = ["http://app.example", "https://ui.example:8443"]
)"));
  const Headers app{{"Origin", "http://app.example"}};
  Response post = client().Post("/v1/jobs", std::string(kNoopJob), app);
  ASSERT_EQ(post.status, 202) << Describe(post);
  EXPECT_EQ(post.header("access-control-allow-origin"), "http://app.example");
  EXPECT_EQ(post.header("vary"), "Origin");
  // A browser script needs Location to find its job.
  EXPECT_NE(post.header("access-control-expose-headers").find("Location"), std::string::npos);
  const std::string id = Field(post.json().as_object(), "id");
  Response get = client().Request(http::verb::get, "/v1/jobs/" + id, {}, app);
  EXPECT_EQ(get.status, 200) << Describe(get);
  EXPECT_EQ(get.header("access-control-allow-origin"), "http://app.example");
  // Errors carry the headers too, so the page can read the problem.
  Response bad = client().Post("/v1/jobs", R"({"task": "nosuchtask"})", app);
  EXPECT_TRUE(IsProblem(bad, 422)) << Describe(bad);
  EXPECT_EQ(bad.header("access-control-allow-origin"), "http://app.example");

  Response preflight = client().Request(http::verb::options, "/v1/jobs", {},
                                        {{"Origin", "https://ui.example:8443"},
                                         {"Access-Control-Request-Method", "POST"},
                                         {"Access-Control-Request-Headers", "content-type, idempotency-key"}});
  EXPECT_EQ(preflight.status, 204) << Describe(preflight);
  EXPECT_EQ(preflight.header("access-control-allow-origin"), "https://ui.example:8443");
  EXPECT_NE(preflight.header("access-control-allow-methods").find("POST"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-methods").find("DELETE"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-headers").find("Content-Type"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-headers").find("Idempotency-Key"), std::string::npos);
  EXPECT_FALSE(preflight.header("access-control-max-age").empty());

  // Only those: another origin, or the same host on another scheme or port, is foreign.
  for (const char* other : {"http://evil.example", "https://app.example", "http://app.example:8080"}) {
    SCOPED_TRACE(other);
    EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", std::string(kNoopJob), {{"Origin", other}}), 403));
  }
  // An allowed page still has to send JSON as JSON.
  EXPECT_TRUE(IsProblem(client().Post("/v1/jobs", std::string(kNoopJob),
                                      {{"Origin", "http://app.example"}, {"Content-Type", "text/plain"}}),
                        415));
  EXPECT_EQ(JobCount(client()), 1u);
}

TEST_F(CrossSiteTest, ForeignHostIs421OnLoopback) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string port = std::to_string(server_.port());
  // DNS rebinding: evil.example now resolves to 127.0.0.1, and the page's requests are
  // same-origin as far as the browser knows.
  for (const std::string& host :
       std::vector<std::string>{"evil.example", "evil.example:" + port, "127.0.0.1.evil.example",
                                "localhost.evil.example", "10.0.0.1:" + port, "[::2]:" + port}) {
    SCOPED_TRACE(host);
    Response post = client().Post("/v1/jobs", std::string(kNoopJob), {{"Host", host}, {"Origin", "http://" + host}});
    EXPECT_TRUE(IsProblem(post, 421)) << Describe(post);
    EXPECT_TRUE(IsProblem(client().Request(http::verb::get, "/v1/jobs", {}, {{"Host", host}}), 421));
  }
  EXPECT_EQ(JobCount(client()), 0u);
  for (const std::string& host :
       std::vector<std::string>{"localhost:" + port, "LocalHost:" + port, "localhost", "127.0.0.1:" + port,
                                "127.0.0.2:" + port, "app.localhost:" + port, "[::1]:" + port}) {
    SCOPED_TRACE(host);
    Response res = client().Request(http::verb::get, "/healthz", {}, {{"Host", host}});
    EXPECT_EQ(res.status, 200) << Describe(res);
    Response post = client().Post("/v1/jobs", std::string(kNoopJob), {{"Host", host}});
    EXPECT_EQ(post.status, 202) << Describe(post);
  }
  // HTTP/1.0 may leave Host out.
  const std::string old = RawExchange(server_.port(), "GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(old.rfind("HTTP/1.0 200", 0) == 0 || old.rfind("HTTP/1.1 200", 0) == 0) << old;
}

}  // namespace
}  // namespace offload::testing
