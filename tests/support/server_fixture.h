// ServerTest: a GoogleTest fixture that owns one TestServer and a client for it, and
// checks at the end of each test that the server shut down cleanly (exit code 0:
// no crash, no sanitizer report at exit).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "support/http_client.h"
#include "support/job_helpers.h"
#include "support/test_server.h"

namespace offload::testing {

// A config most tests share: two cpu slots, one exclusive gpu with a task on it,
// and a short shutdown_grace so that a test which leaves a long job running still
// ends quickly.
inline constexpr std::string_view kGpuConfig = R"(
shutdown_grace = "200ms"

[resources]
cpu = 2
gpu = 1

[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
)";

// The system's Python when there is one: a version manager's `python3` on PATH may
// be a shell script that costs a second per worker start on a loaded machine.
inline std::string Python() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

class ServerTest : public ::testing::Test {
 protected:
  // Starts the server with `config_toml` and connects client(). Call it wrapped in
  // ASSERT_NO_FATAL_FAILURE.
  void StartServer(std::string_view config_toml = kGpuConfig) {
    std::string err = server_.Start(config_toml);
    ASSERT_TRUE(err.empty()) << err;
    client_.emplace(server_.port());
  }

  HttpClient& client() { return *client_; }
  std::unique_ptr<HttpClient> NewClient() { return std::make_unique<HttpClient>(server_.port()); }

  void TearDown() override {
    client_.reset();
    if (!server_.running()) return;
    const int status = server_.Stop(std::chrono::seconds(20));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "server " << DescribeWaitStatus(status) << "; its stderr:\n"
        << server_.log();
  }

  // A fresh folder for this test's files, named after the test (so parallel runs
  // of different tests never share one); the caller removes it.
  static std::filesystem::path MakeTestDir(std::string_view prefix) {
    auto dir =
        std::filesystem::temp_directory_path() / (std::string(prefix) + std::to_string(::getpid()) + "-" +
                                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
    return dir;
  }

  TestServer server_;
  std::optional<HttpClient> client_;
};

}  // namespace offload::testing
