// What a crashed server leaves running: nothing for long. After `kill -9` of the
// real `offload serve`, the process of a running `command` job and every `worker`
// process die within a second (each asked for SIGKILL at its parent's death before
// it exec'd), and a grandchild that escaped with setsid dies as soon as the next
// server starts (it kills what is left in the dead server's cgroups), where cgroup
// v2 is writable.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "exec/proc_util.h"
#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

const std::string kSource = OFFLOAD_SOURCE_DIR;

class OrphansTest : public ServerTest {
 protected:
  void SetUp() override { dir_ = MakeTestDir("offload-orphans-it-"); }
  void TearDown() override {
    // What this test started and did not see die (a dead one's pid may be reused).
    for (pid_t pid : strays_) ::kill(pid, SIGKILL);
    ServerTest::TearDown();
    std::filesystem::remove_all(dir_);
  }

  // Two workers of the test worker, and a command that starts a setsid grandchild,
  // writes both pids and then sleeps.
  std::string Config() const {
    const std::string pidfile = (dir_ / "job.pid").string();
    const std::string escapee = (dir_ / "escapee.pid").string();
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
workers = 2

[tasks.hold]
command = ["/bin/sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > )" +
           escapee + R"(; echo $$ > )" + pidfile + R"(; exec sleep 60"]
)";
  }

  // Whether `pid` is dead within `deadline`; forgets it as a stray if so.
  bool DiesWithin(pid_t pid, milliseconds deadline) {
    if (!WaitUntil([&] { return IsDead(pid); }, deadline)) return false;
    std::erase(strays_, pid);
    return true;
  }

  pid_t ReadPid(const std::string& name) {
    const std::string path = (dir_ / name).string();
    if (!WaitUntil([&] { return ReadFileForTest(path).find('\n') != std::string::npos; })) return -1;
    return std::atoi(ReadFileForTest(path).c_str());
  }

  std::filesystem::path dir_;
  std::vector<pid_t> strays_;
};

TEST_F(OrphansTest, JobAndWorkerProcessesDieWithAKilledServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Config()));
  // A job on a worker: the workers are up.
  const std::string tw = Field(SubmitJob(client(), "tw", json::parse(R"({"op": "noop"})")), "id");
  ASSERT_EQ(Field(WaitFinished(client(), tw), "status"), "succeeded");
  // One worker busy (an idle one exits by itself at the end of its stdin; a busy
  // one, like a GPU job, does not notice), one idle.
  const std::string busy = Field(SubmitJob(client(), "tw", json::parse(R"({"op": "sleep", "ms": 60000})")), "id");
  ASSERT_EQ(Field(WaitForStatus(client(), busy, "running"), "status"), "running");
  const std::string id = Field(SubmitJob(client(), "hold", nullptr), "id");
  const pid_t job = ReadPid("job.pid");
  const pid_t escapee = ReadPid("escapee.pid");
  ASSERT_GT(job, 0);
  ASSERT_GT(escapee, 0);
  strays_ = {job, escapee};
  ASSERT_EQ(Field(WaitForStatus(client(), id, "running"), "status"), "running");
  // The server's children: the two workers and the job.
  std::vector<pid_t> children;
  ASSERT_TRUE(WaitUntil([&] {
    children.clear();
    for (const auto& c : ChildrenOf(server_.pid())) {
      if (c.state != 'Z') children.push_back(c.pid);
    }
    return children.size() == 3;
  })) << children.size()
      << " children";
  strays_.insert(strays_.end(), children.begin(), children.end());
  // Whether this machine lets the server use cgroups: the job is in one of its own.
  const bool cgroups =
      ReadFileForTest("/proc/" + std::to_string(job) + "/cgroup").find("/offload-") != std::string::npos;

  server_.Signal(SIGKILL);
  ASSERT_TRUE(server_.WaitForExit(milliseconds(5000)));
  for (pid_t pid : children) {
    EXPECT_TRUE(DiesWithin(pid, milliseconds(1000)))
        << "pid " << pid << (pid == job ? " (the job)" : " (a worker)") << " outlived the server";
  }
  client_.reset();

  if (!cgroups) GTEST_SKIP() << "cgroup v2 is not writable here: setsid escapees of a crashed server live on";
  // The next server reaps the dead one's cgroups as it starts.
  TestServer next;
  std::string err = next.Start(Config());
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_TRUE(DiesWithin(escapee, milliseconds(1000)))
      << "the setsid grandchild " << escapee << " outlived the next start";
  const int status = next.Stop(std::chrono::seconds(20));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "server " << DescribeWaitStatus(status) << "; its stderr:\n"
      << next.log();
}

}  // namespace
}  // namespace offload::testing
