// The client commands of the offload binary (submit, status, wait, result, cancel, ls,
// tasks, top, retry) end to end against a real server: what they print, where, and
// the exit status each outcome documents (docs/operations.md#cli). A terminal is
// given by util-linux's `script`, so that `wait` draws its progress bar.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/server_fixture.h"

extern char** environ;

namespace offload::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

struct Ran {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

constexpr std::string_view kConfig = R"(
shutdown_grace = "200ms"

[resources]
cpu = 2

[tasks.broken]
command = ["/bin/sh", "-c", "echo boom >&2; exit 3"]
uses = {cpu = 1}
)";

class CliTest : public ServerTest {
 protected:
  void SetUp() override { dir_ = MakeTestDir("offload-cli-"); }
  void TearDown() override {
    ServerTest::TearDown();
    fs::remove_all(dir_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }

  // Runs `argv` (argv[0] "offload" is this build's binary) with stdin from `stdin_text`,
  // its output in files; bounded by `timeout` (then killed: code -1).
  Ran Exec(std::vector<std::string> argv, const std::string& stdin_text = "",
           std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (argv[0] == "offload") argv[0] = OffloadBinary();
    const fs::path in = dir_ / "stdin", out = dir_ / "stdout", err = dir_ / "stderr";
    { std::ofstream(in) << stdin_text; }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    Ran r;
    if (posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) return r;
    posix_spawn_file_actions_destroy(&actions);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        r.out = Slurp(out);
        r.err = Slurp(err) + "\n(killed after the timeout)";
        return r;
      }
      usleep(10'000);
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }

  fs::path dir_;
};

std::string Describe(const Ran& r) {
  return "exit " + std::to_string(r.code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

TEST_F(CliTest, SubmitWaitPrintsTheResultAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  Ran r = Exec({"offload", "submit", "cpu", R"({"ms": 30})", "--wait", "--url", url()});
  ASSERT_EQ(r.code, 0) << Describe(r);
  auto result = ParseJson(r.out);
  ASSERT_TRUE(result && result->is_object()) << Describe(r);
  EXPECT_TRUE(result->as_object().contains("checksum")) << r.out;
  // Without a terminal, the wait reports plain lines: no carriage returns.
  EXPECT_NE(r.err.find(" succeeded"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
}

TEST_F(CliTest, InputComesFromTextAFileOrStdinAndAMapFromAnArray) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  { std::ofstream(dir_ / "in.json") << R"({"ms": 1})"; }
  { std::ofstream(dir_ / "map.json") << R"([{"ms": 1}, {"ms": 2}, {"ms": 3}])"; }
  Ran file = Exec({"offload", "submit", "sleep", "@" + (dir_ / "in.json").string(), "--wait", "--url", url()});
  EXPECT_EQ(file.code, 0) << Describe(file);
  Ran piped = Exec({"offload", "submit", "sleep", "-", "--json", "--url", url()}, R"({"ms": 1})");
  ASSERT_EQ(piped.code, 0) << Describe(piped);
  EXPECT_EQ(ParseJson(piped.out)->at("task"), "sleep");
  Ran map = Exec({"offload", "submit", "sleep", "--map", "@" + (dir_ / "map.json").string(), "--wait", "--url", url()});
  ASSERT_EQ(map.code, 0) << Describe(map);
  EXPECT_EQ(ParseJson(map.out)->as_array().size(), 3u) << map.out;
  Ran bad = Exec({"offload", "submit", "sleep", "{not json", "--url", url()});
  EXPECT_EQ(bad.code, 2) << Describe(bad);
}

TEST_F(CliTest, AFailedJobExitsOneAndItsErrorIsNeverWrittenIntoTheOutputFile) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  Ran r = Exec({"offload", "submit", "broken", "--wait", "--url", url()});
  EXPECT_EQ(r.code, 1) << Describe(r);
  EXPECT_NE(r.err.find("command_failed"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  const std::string id = Field(client().Get("/v1/jobs?status=failed").json().at("jobs").at(0).as_object(), "id");
  const fs::path out = dir_ / "result.bin";
  Ran result = Exec({"offload", "result", id, "-o", out.string(), "--url", url()});
  EXPECT_EQ(result.code, 1) << Describe(result);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(result.err.find("boom"), std::string::npos) << result.err;
  Ran wait = Exec({"offload", "wait", id, "--url", url()});
  EXPECT_EQ(wait.code, 1) << Describe(wait);
}

TEST_F(CliTest, ExitCodesSayWhatWentWrong) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  // 2: usage.
  EXPECT_EQ(Exec({"offload", "submit"}).code, 2);
  EXPECT_EQ(Exec({"offload", "frobnicate"}).code, 2);
  EXPECT_EQ(Exec({"offload", "ls", "--url", "ftp://example"}).code, 2);
  EXPECT_EQ(Exec({"offload", "--help"}).code, 0);
  // 3: nobody listens there (the test server's port, once it is stopped, is free).
  // 4: the server refused: an unknown id, an unknown task.
  EXPECT_EQ(Exec({"offload", "status", "nosuchjob", "--url", url()}).code, 4);
  EXPECT_EQ(Exec({"offload", "submit", "nosuchtask", "--url", url()}).code, 4);
  EXPECT_EQ(Exec({"offload", "result", "nosuchjob", "--url", url()}).code, 4);
  // 6: the wait gave up.
  const std::string id = Field(SubmitJob(client(), "sleep", json::object{{"ms", 60'000}}), "id");
  Ran wait = Exec({"offload", "wait", id, "--timeout", "0.5", "--url", url()});
  EXPECT_EQ(wait.code, 6) << Describe(wait);
  // A result not ready yet: refused (4), with the command that waits for it.
  Ran early = Exec({"offload", "result", id, "--url", url()});
  EXPECT_EQ(early.code, 4) << Describe(early);
  EXPECT_NE(early.err.find("offload wait " + id), std::string::npos) << early.err;
  const std::string port_url = url();
  server_.Stop();
  Ran gone = Exec({"offload", "ls", "--url", port_url});
  EXPECT_EQ(gone.code, 3) << Describe(gone);
  EXPECT_NE(gone.err.find("cannot reach"), std::string::npos) << gone.err;
}

TEST_F(CliTest, StatusLsTasksCancelAndRetry) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  Ran submit = Exec({"offload", "submit", "sleep", R"({"ms": 60000})", "--priority", "2", "--url", url()});
  ASSERT_EQ(submit.code, 0) << Describe(submit);
  const std::string id = submit.out.substr(0, submit.out.find('\n'));
  WaitForStatus(client(), id, "running");

  Ran status = Exec({"offload", "status", id, "--url", url()});
  EXPECT_EQ(status.code, 0) << Describe(status);
  EXPECT_NE(status.out.find("running"), std::string::npos) << status.out;
  Ran status_json = Exec({"offload", "status", id, "--json", "--url", url()});
  EXPECT_EQ(ParseJson(status_json.out)->at("priority"), 2) << status_json.out;

  Ran ls = Exec({"offload", "ls", "--task", "sleep", "--url", url()});
  EXPECT_EQ(ls.code, 0) << Describe(ls);
  EXPECT_NE(ls.out.find(id), std::string::npos) << ls.out;
  Ran ls_json = Exec({"offload", "ls", "--status", "succeeded", "--json", "--url", url()});
  EXPECT_EQ(ParseJson(ls_json.out)->at("jobs").as_array().size(), 0u) << ls_json.out;

  Ran tasks = Exec({"offload", "tasks", "--url", url()});
  EXPECT_EQ(tasks.code, 0) << Describe(tasks);
  EXPECT_NE(tasks.out.find("broken"), std::string::npos) << tasks.out;

  Ran top = Exec({"offload", "top", "--count", "2", "--interval", "0.1", "--url", url()});
  EXPECT_EQ(top.code, 0) << Describe(top);
  EXPECT_NE(top.out.find(id), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("RESOURCE"), std::string::npos) << top.out;

  Ran cancel = Exec({"offload", "cancel", id, "nosuchjob", "--url", url()});
  EXPECT_EQ(cancel.code, 4) << Describe(cancel);  // One of the two was refused.
  EXPECT_NE(cancel.out.find(id + " canceled"), std::string::npos) << cancel.out;
  WaitFinished(client(), id);

  Ran retry = Exec({"offload", "retry", id, "--url", url()});
  ASSERT_EQ(retry.code, 0) << Describe(retry);
  const std::string again = retry.out.substr(0, retry.out.find('\n'));
  EXPECT_EQ(GetJob(client(), again).at("retry_of").as_string(), id);
  // Retried already: that retry is the answer (the server answers 200).
  Ran twice = Exec({"offload", "retry", id, "--url", url()});
  ASSERT_EQ(twice.code, 0) << Describe(twice);
  EXPECT_EQ(twice.out.substr(0, twice.out.find('\n')), again);
}

TEST_F(CliTest, TheUrlComesFromOffloadUrlToo) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  Ran r = Exec({"/usr/bin/env", "OFFLOAD_URL=" + url(), OffloadBinary(), "tasks", "--json"});
  ASSERT_EQ(r.code, 0) << Describe(r);
  EXPECT_TRUE(ParseJson(r.out)->as_object().contains("tasks")) << r.out;
}

// On a terminal, `offload wait` redraws one line: a bar, the percentage, the status.
TEST_F(CliTest, WaitOnATerminalDrawsAProgressBar) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  const std::string id = Field(SubmitJob(client(), "cpu", json::object{{"ms", 1500}}), "id");
  const std::string command = std::string(OffloadBinary()) + " wait " + id + " --url " + url();
  // script gives the command a pseudo-terminal and copies what it draws to stdout.
  Ran r = Exec({"script", "-qfec", command, "/dev/null"});
  ASSERT_EQ(r.code, 0) << Describe(r);
  EXPECT_NE(r.out.find('\r'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[##############################] 100% succeeded"), std::string::npos) << r.out;
  // At least one frame before the end: the bar moved while the job ran.
  EXPECT_NE(r.out.find("running"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace offload::testing
