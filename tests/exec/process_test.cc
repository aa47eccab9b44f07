#include "exec/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>

#include "exec/exec_test_util.h"
#include "exec/proc_util.h"
#include "exec/process_supervisor.h"

namespace offload {
namespace {

using namespace std::chrono_literals;
using testing::ChildrenOf;
using testing::CountOpenFds;
using testing::CountZombieChildren;
using testing::IsDead;
using testing::WaitUntil;

// Runs `fn` on the supervisor's loop and waits for it.
template <typename Fn>
auto OnLoop(ProcessSupervisor& sup, Fn fn) {
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto result = task.get_future();
  boost::asio::post(sup.context(), [&task] { task(); });
  return result.get();
}

// A spawned child and what it wrote, collected from the loop thread.
struct Child {
  std::mutex mu;
  std::string out, err;
  std::promise<ExitStatus> exit;
  std::shared_ptr<Process> proc;

  std::string Out() {
    std::lock_guard lock(mu);
    return out;
  }
  std::optional<ExitStatus> Wait(std::chrono::milliseconds deadline = 10s) {
    auto f = exit.get_future();
    if (f.wait_for(deadline) != std::future_status::ready) return std::nullopt;
    return f.get();
  }
};

std::shared_ptr<Child> Spawn(ProcessSupervisor& sup, SpawnOptions opt, std::string* error = nullptr) {
  auto child = std::make_shared<Child>();
  if (opt.environment.empty()) opt.environment = MergeEnvironment({});
  Process::Callbacks cb;
  cb.on_stdout = [child](std::string_view d) {
    std::lock_guard lock(child->mu);
    child->out.append(d);
  };
  cb.on_stderr = [child](std::string_view d) {
    std::lock_guard lock(child->mu);
    child->err.append(d);
  };
  cb.on_exit = [c = child.get()](const ExitStatus& s) { c->exit.set_value(s); };
  auto spawned = OnLoop(sup, [&] { return Process::Spawn(&sup, opt, std::move(cb)); });
  if (!spawned) {
    if (error) *error = spawned.error().detail;
    return nullptr;
  }
  child->proc = *spawned;
  return child;
}

SpawnOptions Sh(const std::string& script) { return SpawnOptions{{"/bin/sh", "-c", script}, "", {}}; }

// Every test runs with pidfd exit notification and with the SIGCHLD fallback.
class ProcessTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    sup_ = ProcessSupervisor::Create({.use_pidfd = GetParam()});
    testing::WarmUp(*sup_);
  }
  void TearDown() override {
    EXPECT_EQ(OnLoop(*sup_, [&] { return sup_->watched_for_test(); }), 0u);
    EXPECT_EQ(CountZombieChildren(::getpid()), 0);
  }
  std::shared_ptr<ProcessSupervisor> sup_;
};

INSTANTIATE_TEST_SUITE_P(ExitNotification, ProcessTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "pidfd" : "sigchld"; });

TEST_P(ProcessTest, PipesStdinToStdoutAndReportsExit) {
  auto c = Spawn(*sup_, SpawnOptions{{"cat"}, "", {}});
  ASSERT_TRUE(c);
  OnLoop(*sup_, [&] {
    c->proc->Write("hello ");
    c->proc->Write("world");
    c->proc->CloseStdin();
    return 0;
  });
  auto status = c->Wait();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << status->Describe();
  EXPECT_EQ(c->Out(), "hello world");
}

TEST_P(ProcessTest, ReportsExitCodesAndSignals) {
  auto failed = Spawn(*sup_, Sh("echo oops >&2; exit 3"));
  auto killed = Spawn(*sup_, Sh("kill -9 $$"));
  ASSERT_TRUE(failed && killed);
  auto s1 = failed->Wait();
  auto s2 = killed->Wait();
  ASSERT_TRUE(s1 && s2);
  EXPECT_EQ(s1->code, 3);
  EXPECT_EQ(s1->Describe(), "exited with status 3");
  EXPECT_EQ(failed->err, "oops\n");
  EXPECT_EQ(s2->signal, SIGKILL);
  EXPECT_EQ(s2->Describe(), "was killed by signal 9 (SIGKILL)");
}

TEST_P(ProcessTest, SpawnFailureIsAnErrorAndLeaksNothing) {
  const int fds = CountOpenFds(::getpid());
  std::string error;
  auto c = Spawn(*sup_, SpawnOptions{{"/nonexistent/program"}, "", {}}, &error);
  EXPECT_FALSE(c);
  EXPECT_NE(error.find("/nonexistent/program"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  EXPECT_EQ(CountOpenFds(::getpid()), fds);
}

TEST_P(ProcessTest, TerminateEscalatesToSigkillAfterGrace) {
  auto c = Spawn(*sup_, Sh("trap '' TERM; echo armed; sleep 30"));
  ASSERT_TRUE(c);
  ASSERT_TRUE(WaitUntil([&] { return c->Out() == "armed\n"; }));
  const auto t0 = std::chrono::steady_clock::now();
  OnLoop(*sup_, [&] {
    c->proc->Terminate(200ms);
    return 0;
  });
  auto status = c->Wait();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGKILL);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 190ms);
}

TEST_P(ProcessTest, TerminateEndsAPoliteChildAtOnce) {
  auto c = Spawn(*sup_, Sh("echo started; sleep 30"));
  ASSERT_TRUE(c);
  ASSERT_TRUE(WaitUntil([&] { return c->Out() == "started\n"; }));
  const auto t0 = std::chrono::steady_clock::now();
  OnLoop(*sup_, [&] {
    c->proc->Terminate(10s);
    return 0;
  });
  auto status = c->Wait();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_P(ProcessTest, GrandchildrenDieWithTheChild) {
  // One child exits on its own leaving a background grandchild; the other is
  // terminated while its grandchild runs.
  auto exits = Spawn(*sup_, Sh("sleep 1000 & echo $!; exit 0"));
  auto stopped = Spawn(*sup_, Sh("sleep 1000 & echo $!; wait"));
  ASSERT_TRUE(exits && stopped);
  ASSERT_TRUE(WaitUntil([&] { return !stopped->Out().empty(); }));
  OnLoop(*sup_, [&] {
    stopped->proc->Terminate(5s);
    return 0;
  });
  ASSERT_TRUE(exits->Wait());
  ASSERT_TRUE(stopped->Wait());
  for (auto* c : {exits.get(), stopped.get()}) {
    const pid_t grandchild = std::atoi(c->Out().c_str());
    ASSERT_GT(grandchild, 0);
    EXPECT_TRUE(WaitUntil([&] { return IsDead(grandchild); }, 5s)) << "grandchild " << grandchild;
  }
}

TEST_P(ProcessTest, ChildGetsCwdEnvAndNoServerDescriptorsOrIgnoredSignals) {
  // A descriptor without close-on-exec, like the ones Asio opens for sockets.
  const int leaky = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 3);
  SpawnOptions opt = Sh("pwd; echo $OFFLOAD_TEST_VAR; ls /proc/$$/fd | tr '\\n' ' '; echo; "
                        "grep SigIgn /proc/$$/status");
  opt.cwd = "/tmp";
  opt.environment = MergeEnvironment({{"OFFLOAD_TEST_VAR", "hello"}});
  auto c = Spawn(*sup_, opt);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Wait());
  ::close(leaky);
  std::istringstream lines(c->Out());
  std::string pwd, var, fds, sigign;
  std::getline(lines, pwd);
  std::getline(lines, var);
  std::getline(lines, fds);
  std::getline(lines, sigign);
  EXPECT_EQ(pwd, "/tmp");
  EXPECT_EQ(var, "hello");
  // 0, 1, 2, and whatever ls opened to list the folder (3).
  EXPECT_EQ(fds.find(" " + std::to_string(leaky) + " "), std::string::npos) << fds;
  EXPECT_EQ(fds.rfind("0 1 2 ", 0), 0u) << fds;
  // The server ignores SIGPIPE (the supervisor sets that); the child must not, nor
  // any other standard signal. (glibc's posix_spawn leaves its two internal
  // real-time signals, 32 and 33, ignored: above the mask.)
  ASSERT_EQ(sigign.rfind("SigIgn:\t", 0), 0u) << sigign;
  const unsigned long long ignored = std::stoull(sigign.substr(8), nullptr, 16);
  EXPECT_EQ(ignored & 0x7fffffffULL, 0u) << sigign;
}

TEST_P(ProcessTest, ReadsALargeOutputCompletely) {
  auto c = Spawn(*sup_, Sh("head -c 20000000 /dev/zero"));
  ASSERT_TRUE(c);
  auto status = c->Wait(30s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success());
  EXPECT_EQ(c->Out().size(), 20000000u);
}

TEST_P(ProcessTest, AChildThatNeverReadsStdinStallsNothing) {
  // 1 MiB queued for a child that never reads: the write stays pending (a pipe
  // holds 64 KiB) while the loop goes on serving other children; the exit cancels it.
  auto deaf = Spawn(*sup_, Sh("echo up; sleep 30"));
  ASSERT_TRUE(deaf);
  ASSERT_TRUE(WaitUntil([&] { return deaf->Out() == "up\n"; }));
  OnLoop(*sup_, [&] {
    deaf->proc->Write(std::string(1 << 20, 'x'));
    return 0;
  });
  auto other = Spawn(*sup_, Sh("echo fine"));
  ASSERT_TRUE(other);
  auto s = other->Wait();
  ASSERT_TRUE(s);
  EXPECT_EQ(other->Out(), "fine\n");
  OnLoop(*sup_, [&] {
    deaf->proc->Kill();
    return 0;
  });
  ASSERT_TRUE(deaf->Wait());
}

TEST_P(ProcessTest, ManyChildrenLeaveNoZombiesAndNoDescriptors) {
  const int fds = CountOpenFds(::getpid());
  std::vector<std::shared_ptr<Child>> children;
  for (int i = 0; i < 50; ++i) {
    children.push_back(Spawn(*sup_, SpawnOptions{{"/bin/true"}, "", {}}));
    ASSERT_TRUE(children.back());
  }
  for (auto& c : children) ASSERT_TRUE(c->Wait());
  children.clear();
  EXPECT_EQ(CountZombieChildren(::getpid()), 0);
  EXPECT_TRUE(ChildrenOf(::getpid()).empty());
  // The loop drops its last references to a finished Process just after on_exit.
  EXPECT_TRUE(WaitUntil([&] { return CountOpenFds(::getpid()) == fds; }, 5s))
      << CountOpenFds(::getpid()) << " open, " << fds << " before";
}

TEST_P(ProcessTest, StartSpawnsOffTheLoopAndHandsTheProcessBack) {
  std::promise<std::string> out;
  std::promise<ErrorOr<std::shared_ptr<Process>>> started, failed;
  auto buf = std::make_shared<std::string>();
  Process::Callbacks cb;
  cb.on_stdout = [buf](std::string_view d) { buf->append(d); };
  cb.on_exit = [buf, &out](const ExitStatus&) { out.set_value(*buf); };
  Process::Start(sup_.get(), SpawnOptions{{"echo", "hi"}, "", MergeEnvironment({})}, cb,
                 [&](ErrorOr<std::shared_ptr<Process>> p) {
                   EXPECT_TRUE(sup_->OnSupervisorThread());
                   started.set_value(std::move(p));
                 });
  Process::Start(sup_.get(), SpawnOptions{{"/nonexistent/x"}, "", {}}, {},
                 [&](ErrorOr<std::shared_ptr<Process>> p) { failed.set_value(std::move(p)); });
  auto s = started.get_future().get();
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ(out.get_future().get(), "hi\n");
  auto f = failed.get_future().get();
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().detail.find("/nonexistent/x"), std::string::npos);
}

// Not a test: what a spawn costs, for the report in docs/design.md ("Processes").
// Run with --gtest_also_run_disabled_tests --gtest_filter='*SpawnCost*'.
TEST(ProcessSpawnCost, DISABLED_TwoHundredTrueSpawns) {
  auto sup = ProcessSupervisor::Create();
  testing::WarmUp(*sup);
  constexpr int kSpawns = 200;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kSpawns; ++i) {
    auto c = Spawn(*sup, SpawnOptions{{"/bin/true"}, "", {}});
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->Wait());
  }
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - t0);
  std::printf("%d spawn+exit+reap of /bin/true: %.1f us each\n", kSpawns,
              static_cast<double>(us.count()) / kSpawns);
}

TEST(OutputTailTest, KeepsTheLastBytes) {
  OutputTail tail(4);
  EXPECT_TRUE(tail.empty());
  tail.Append("ab");
  EXPECT_EQ(tail.str(), "ab");
  tail.Append("cdef");
  EXPECT_EQ(tail.str(), "cdef");
  for (char c : std::string("ghijklmnop")) tail.Append(std::string(1, c));
  EXPECT_EQ(tail.str(), "mnop");
  tail.Append("0123456789");
  EXPECT_EQ(tail.str(), "6789");
}

TEST(FindExecutableTest, SearchesPathAndCwd) {
  auto sh = FindExecutable("sh", "");
  ASSERT_TRUE(sh) << sh.error().detail;
  EXPECT_EQ(sh->back(), 'h');
  EXPECT_TRUE(FindExecutable("/bin/sh", ""));
  EXPECT_TRUE(FindExecutable("./sh", "/bin"));
  auto missing = FindExecutable("no-such-program-xyz", "");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().detail.find("no-such-program-xyz"), std::string::npos);
  const std::string plain = ::testing::TempDir() + "offload-not-executable";
  { std::ofstream(plain) << "data"; }
  std::filesystem::permissions(plain, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_FALSE(FindExecutable(plain, ""));
  std::filesystem::remove(plain);
}

}  // namespace
}  // namespace offload
