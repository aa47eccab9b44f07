// The logs people read: the access log (JSON lines or the common format, with a
// request id that the response echoes), the info line of each finished job, and
// --log-format json.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The lines of `path`. The server writes a request's line before it sends the
// response, so a test that has its answers finds their lines there.
std::vector<std::string> ReadLines(const fs::path& path) {
  std::ifstream in(path);
  return Lines(std::string(std::istreambuf_iterator<char>(in), {}));
}

class LogsTest : public ServerTest {};

TEST_F(LogsTest, AccessLogInJsonHasOneLinePerRequestWithTheRequestIdTheResponseEchoes) {
  const fs::path dir = MakeTestDir("offload-access-");
  const fs::path log = dir / "access.log";
  ASSERT_NO_FATAL_FAILURE(StartServer("access_log = \"" + log.string() + "\"\n"));
  Response sent =
      client().Request(boost::beast::http::verb::get, "/v1/jobs?limit=1", {}, {{"X-Request-Id", "trace-42"}});
  EXPECT_EQ(sent.header("x-request-id"), "trace-42");
  Response made =
      client().Post("/v1/jobs", R"({"task":"sleep","input":{"ms":1}})", {{"Content-Type", "application/json"}});
  ASSERT_EQ(made.status, 202) << Describe(made);
  const std::string generated = made.header("x-request-id");
  EXPECT_FALSE(generated.empty());
  // An id with a space or a quote is not taken: the server makes its own.
  Response refused = client().Request(boost::beast::http::verb::get, "/v1/nothing", {}, {{"X-Request-Id", "a \"b"}});
  EXPECT_EQ(refused.status, 404);
  EXPECT_NE(refused.header("x-request-id"), "a \"b");
  EXPECT_FALSE(refused.header("x-request-id").empty());

  const std::vector<std::string> lines = ReadLines(log);
  ASSERT_EQ(lines.size(), 3u) << ReadLines(log).size();
  json::object first = json::parse(lines[0]).as_object();
  EXPECT_EQ(first.at("method"), "GET");
  EXPECT_EQ(first.at("target"), "/v1/jobs?limit=1");
  EXPECT_EQ(first.at("status"), 200);
  EXPECT_EQ(first.at("request_id"), "trace-42");
  EXPECT_EQ(first.at("remote"), "127.0.0.1");
  EXPECT_GT(first.at("bytes").as_int64(), 0);
  EXPECT_GE(first.at("duration_ms").as_double(), 0);
  ASSERT_NE(ParseRfc3339Millis(std::string(first.at("time").as_string())), std::nullopt);
  json::object second = json::parse(lines[1]).as_object();
  EXPECT_EQ(second.at("status"), 202);
  EXPECT_EQ(second.at("request_id").as_string(), generated);
  EXPECT_EQ(json::parse(lines[2]).at("status"), 404);
  fs::remove_all(dir);
}

TEST_F(LogsTest, AccessLogInCommonFormatGoesToStderr) {
  ASSERT_NO_FATAL_FAILURE(StartServer("access_log = \"stderr\"\naccess_log_format = \"common\"\n"));
  ASSERT_EQ(client().Request(boost::beast::http::verb::get, "/v1/tasks", {}, {{"X-Request-Id", "abc"}}).status, 200);
  ASSERT_EQ(client().Get("/v1/jobs/missing").status, 404);
  const std::regex ok(
      R"re(127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /v1/tasks HTTP/1\.1" 200 \d+ abc \d+\.\d{3})re");
  const std::regex missing(R"re("GET /v1/jobs/missing HTTP/1\.1" 404 \d+ [0-9a-f]{8}-\d+ )re");
  // The server wrote both lines before it answered; the test's reader of its stderr
  // may take a moment to have them.
  bool saw_ok = false, saw_missing = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(saw_ok && saw_missing) && std::chrono::steady_clock::now() < deadline) {
    for (const std::string& line : Lines(server_.log())) {
      saw_ok = saw_ok || std::regex_search(line, ok);
      saw_missing = saw_missing || std::regex_search(line, missing);
    }
    if (!(saw_ok && saw_missing)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(saw_ok && saw_missing) << server_.log();
}

TEST_F(LogsTest, WithoutAnAccessLogTheClientsIdIsEchoedAndNoneIsMade) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(
      client().Request(boost::beast::http::verb::get, "/healthz", {}, {{"X-Request-Id", "r1"}}).header("x-request-id"),
      "r1");
  EXPECT_EQ(client().Get("/healthz").header("x-request-id"), "");
}

// Every line of the server's log is a JSON object, and each finished job leaves one
// at info with its id, task, status, wait and run time.
TEST_F(LogsTest, JsonLogFormatAndAnInfoLinePerFinishedJob) {
  TestServerOptions options;
  options.config_toml = std::string(kGpuConfig);
  options.extra_args = {"--log-format", "json"};
  std::string err = server_.Start(options);
  ASSERT_TRUE(err.empty()) << err;
  client_.emplace(server_.port());
  const std::string ok = Field(SubmitJob(client(), "sleep", json::object{{"ms", 20}}), "id");
  const std::string gone = Field(SubmitJob(client(), "sleep", json::object{{"ms", 60'000}}), "id");
  WaitFinished(client(), ok);
  WaitForStatus(client(), gone, "running");
  ASSERT_EQ(client().Delete("/v1/jobs/" + gone).status, 200);
  WaitFinished(client(), gone);
  server_.Stop();

  bool saw_ok = false, saw_gone = false;
  for (const std::string& line : Lines(server_.log())) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    ASSERT_TRUE(v.is_object()) << line;
    EXPECT_TRUE(v.as_object().contains("time") && v.as_object().contains("level")) << line;
    const std::string msg(v.at("msg").as_string());
    if (msg.find("job " + ok + " (sleep) succeeded: waited ") == 0) {
      saw_ok = true;
      EXPECT_EQ(v.at("level"), "info");
      std::smatch m;
      ASSERT_TRUE(std::regex_search(msg, m, std::regex(R"(ran (\d+) ms, attempt 1$)"))) << msg;
      EXPECT_GE(std::stoi(m[1]), 20);
    }
    if (msg.find("job " + gone + " (sleep) canceled: ") == 0) {
      saw_gone = true;
      EXPECT_NE(msg.find("canceled by a DELETE request"), std::string::npos) << msg;
    }
  }
  EXPECT_TRUE(saw_ok && saw_gone) << server_.log();
}

}  // namespace
}  // namespace offload::testing
