#include "exec/command_executor.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "exec/exec_test_util.h"
#include "exec/proc_util.h"

namespace offload {
namespace {

using namespace std::chrono_literals;
using testing::CountOpenFds;
using testing::CountZombieChildren;
using testing::Describe;
using testing::IsDead;
using testing::Pending;
using testing::ReadFileForTest;
using testing::WaitUntil;
namespace json = boost::json;

class CommandExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sup_ = ProcessSupervisor::Create();
    dir_ = std::filesystem::temp_directory_path() / ("offload-cmd-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    executor_.reset();
    EXPECT_EQ(CountZombieChildren(::getpid()), 0);
    std::filesystem::remove_all(dir_);
  }

  CommandExecutor& Make(std::vector<std::string> argv, std::string content_type = "application/json",
                        std::int64_t max_result = 64 << 20, std::chrono::milliseconds grace = 5s) {
    CommandOptions o;
    o.task = "test";
    o.spawn.argv = std::move(argv);
    o.spawn.environment = MergeEnvironment({{"TEST_DIR", dir_.string()}});
    o.content_type = std::move(content_type);
    o.max_result = max_result;
    o.kill_grace = grace;
    executor_ = std::make_unique<CommandExecutor>(sup_, std::move(o));
    return *executor_;
  }
  CommandExecutor& MakeSh(const std::string& script, std::string content_type = "application/json",
                          std::int64_t max_result = 64 << 20, std::chrono::milliseconds grace = 5s) {
    return Make({"/bin/sh", "-c", script}, std::move(content_type), max_result, grace);
  }
  std::string PidFile() const { return (dir_ / "pid").string(); }

  std::shared_ptr<ProcessSupervisor> sup_;
  std::unique_ptr<CommandExecutor> executor_;
  std::filesystem::path dir_;
};

TEST_F(CommandExecutorTest, StdinIsTheInputAndStdoutTheJsonResult) {
  auto& ex = Make({"cat"});
  Pending p(ex, json::parse(R"({"a": [1, 2, "three"], "b": null})"));
  auto r = p.Wait();
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->ok()) << Describe(*r);
  EXPECT_EQ(r->output()->json, json::parse(R"({"a": [1, 2, "three"], "b": null})"));
}

TEST_F(CommandExecutorTest, StdinHasShortestDoublesThatKeepTheirKindAndValidUtf8) {
  auto& ex = Make({"cat"}, "text/plain");
  Pending p(ex, json::object{{"a", 0.1}, {"b", 2.5}, {"c", 1.0}, {"d", -0.0}, {"e", 1e300}, {"s", "\xFF"}});
  auto r = p.Wait();
  ASSERT_TRUE(r && r->ok()) << (r ? Describe(*r) : "no outcome");
  EXPECT_EQ(r->output()->bytes, "{\"a\":0.1,\"b\":2.5,\"c\":1.0,\"d\":-0.0,\"e\":1e+300,\"s\":\"\xEF\xBF\xBD\"}\n");
}

TEST_F(CommandExecutorTest, StdoutWithANumberOutOfRangeFailsNamingIt) {
  auto& ex = MakeSh("cat >/dev/null; echo '{\"x\": [1, 1e400]}'");
  Pending p(ex, nullptr);
  auto r = p.Wait();
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->ok()) << "1e400 became " << Describe(*r);
  EXPECT_EQ(r->error().type, "invalid_result");
  EXPECT_NE(r->error().message.find("result.x[1]: the number 1e400 is out of range"), std::string::npos)
      << r->error().message;
}

TEST_F(CommandExecutorTest, EmptyStdoutIsNull) {
  auto& ex = Make({"/bin/true"});
  Pending p(ex, json::value(1));
  auto r = p.Wait();
  ASSERT_TRUE(r && r->ok()) << (r ? Describe(*r) : "no outcome");
  EXPECT_TRUE(r->output()->json.is_null());
}

TEST_F(CommandExecutorTest, StdoutThatIsNotJsonFails) {
  auto& ex = MakeSh("echo 'hello there'");
  Pending p(ex, nullptr);
  auto r = p.Wait();
  ASSERT_TRUE(r && !r->ok());
  EXPECT_EQ(r->error().type, "invalid_result");
  EXPECT_NE(r->error().message.find("hello there"), std::string::npos) << r->error().message;
}

TEST_F(CommandExecutorTest, FailureCarriesExitStatusAndTheLastStderr) {
  // 10 KB of stderr, then a last line: only the last 4 KiB are kept.
  auto& ex = MakeSh(
      "echo first-line >&2; head -c 10000 /dev/zero | tr '\\0' e >&2; "
      "echo; echo last-line >&2; exit 3");
  Pending p(ex, nullptr);
  auto r = p.Wait();
  ASSERT_TRUE(r && !r->ok());
  EXPECT_EQ(r->error().type, "command_failed");
  const std::string& m = r->error().message;
  EXPECT_NE(m.find("exited with status 3"), std::string::npos) << m;
  EXPECT_NE(m.find("last-line"), std::string::npos);
  EXPECT_EQ(m.find("first-line"), std::string::npos);
  EXPECT_LT(m.size(), 4096u + 200);
}

TEST_F(CommandExecutorTest, DeathBySignalIsReported) {
  auto& ex = MakeSh("kill -SEGV $$");
  Pending p(ex, nullptr);
  auto r = p.Wait();
  ASSERT_TRUE(r && !r->ok());
  EXPECT_EQ(r->error().type, "command_failed");
  EXPECT_NE(r->error().message.find("signal 11 (SIGSEGV)"), std::string::npos) << r->error().message;
}

TEST_F(CommandExecutorTest, BinaryResultKeepsItsBytes) {
  auto& ex = MakeSh("printf '\\211PNG\\r\\n\\032\\n\\000\\001'", "image/png");
  Pending p(ex, nullptr);
  auto r = p.Wait();
  ASSERT_TRUE(r && r->ok()) << (r ? Describe(*r) : "");
  EXPECT_EQ(r->output()->content_type, "image/png");
  EXPECT_EQ(r->output()->bytes, std::string("\x89PNG\r\n\x1a\n\0\x01", 10));
}

TEST_F(CommandExecutorTest, OutputOverMaxResultFailsTheJob) {
  auto& ex = MakeSh("head -c 50000000 /dev/zero; sleep 30", "application/octet-stream", 1 << 20);
  Pending p(ex, nullptr);
  auto r = p.Wait();
  ASSERT_TRUE(r && !r->ok());
  EXPECT_EQ(r->error().type, "result_too_large");
  EXPECT_NE(r->error().message.find("1048576"), std::string::npos) << r->error().message;
}

TEST_F(CommandExecutorTest, CancelKillsTheWholeProcessGroup) {
  auto& ex = MakeSh("sleep 1000 & echo $! > $TEST_DIR/pid; wait");
  Pending p(ex, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return !ReadFileForTest(PidFile()).empty(); }));
  const pid_t grandchild = std::atoi(ReadFileForTest(PidFile()).c_str());
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(p.done());
  p.context().RequestStop(StopReason::kCanceled);
  auto r = p.Wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error().type, "canceled");
  EXPECT_TRUE(WaitUntil([&] { return IsDead(grandchild); }, 5s));
}

TEST_F(CommandExecutorTest, TimeoutOfACommandIgnoringSigtermEndsWithSigkill) {
  // It reads its input first: the executor writes it once the spawn has completed, so
  // the stop below reaches a started process (one stopped while being spawned is
  // killed at once, without the grace this test is about).
  auto& ex =
      MakeSh("trap '' TERM; read input; echo $$ > $TEST_DIR/pid; sleep 1000", "application/json", 64 << 20, 300ms);
  Pending p(ex, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return !ReadFileForTest(PidFile()).empty(); }));
  const pid_t pid = std::atoi(ReadFileForTest(PidFile()).c_str());
  const auto t0 = std::chrono::steady_clock::now();
  p.context().RequestStop(StopReason::kTimeout);
  auto r = p.Wait(5s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 290ms);
  EXPECT_NE(r->error().message.find("SIGKILL"), std::string::npos) << r->error().message;
  // Reaped before done: no trace of it left.
  EXPECT_TRUE(IsDead(pid));
}

TEST_F(CommandExecutorTest, StopBeforeStartNeverSpawns) {
  auto& ex = MakeSh("touch $TEST_DIR/ran");
  auto ctx = std::make_shared<RunContext>();
  ctx->RequestStop(StopReason::kCanceled);
  Pending p(ex, nullptr, "job-1", ctx);
  auto r = p.Wait();
  ASSERT_TRUE(r && !r->ok());
  EXPECT_EQ(r->error().type, "canceled");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "ran"));
}

TEST_F(CommandExecutorTest, ACommandThatDoesNotReadItsInputStillSucceeds) {
  auto& ex = MakeSh("echo 42");
  json::array big;
  for (int i = 0; i < 100000; ++i) big.push_back(json::value("0123456789"));
  Pending p(ex, big);
  auto r = p.Wait();
  ASSERT_TRUE(r && r->ok()) << (r ? Describe(*r) : "");
  EXPECT_EQ(r->output()->json, json::value(42));
}

TEST_F(CommandExecutorTest, ManyCommandsLeaveNoZombiesOrDescriptors) {
  auto& ex = Make({"/bin/true"});
  // Warm up: the first run creates what lives as long as the supervisor.
  ASSERT_TRUE(Pending(ex, nullptr).Wait());
  const int fds = CountOpenFds(::getpid());
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kJobs = 200;
  std::vector<std::unique_ptr<Pending>> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back(std::make_unique<Pending>(ex, nullptr, "job-" + std::to_string(i)));
  for (auto& j : jobs) {
    auto r = j->Wait();
    ASSERT_TRUE(r && r->ok()) << (r ? Describe(*r) : "no outcome");
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ info ] %d runs of /bin/true in %.3f s: %.0f jobs/s\n", kJobs, secs, kJobs / secs);
  jobs.clear();
  EXPECT_EQ(CountZombieChildren(::getpid()), 0);
  EXPECT_TRUE(WaitUntil([&] { return CountOpenFds(::getpid()) == fds; }, 5s))
      << CountOpenFds(::getpid()) << " open, " << fds << " before";
}

TEST_F(CommandExecutorTest, DestroyingTheExecutorKillsWhatRuns) {
  auto& ex = MakeSh("echo $$ > $TEST_DIR/pid; exec sleep 1000");
  Pending p(ex, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return !ReadFileForTest(PidFile()).empty(); }));
  const pid_t pid = std::atoi(ReadFileForTest(PidFile()).c_str());
  executor_.reset();
  auto r = p.Wait(1s);
  ASSERT_TRUE(r && !r->ok());
  EXPECT_TRUE(IsDead(pid));
}

// As in the server, where executors hold the only references to the supervisor: the
// last one must be dropped off the supervisor's thread, whatever order things end in.
TEST(CommandExecutorLifetimeTest, TheExecutorMayHoldTheOnlyReferenceToTheSupervisor) {
  for (int i = 0; i < 20; ++i) {
    CommandOptions o;
    o.task = "test";
    o.spawn.argv = {"/bin/true"};
    o.spawn.environment = MergeEnvironment({});
    auto ex = std::make_unique<CommandExecutor>(ProcessSupervisor::Create(), std::move(o));
    Pending p(*ex, nullptr);
    ASSERT_TRUE(p.Wait());
    ex.reset();
  }
}

}  // namespace
}  // namespace offload
