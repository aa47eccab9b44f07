#include "exec/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

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
  SpawnOptions opt =
      Sh("pwd; echo $OFFLOAD_TEST_VAR; ls /proc/$$/fd | tr '\\n' ' '; echo; "
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

TEST_P(ProcessTest, ASetsidGrandchildDiesWithTheChildWhereCgroupsWork) {
  if (!sup_->cgroups()) GTEST_SKIP() << "cgroup v2 is not writable here";
  // setsid takes the grandchild out of the process group: only the cgroup reaches
  // it. One child exits by itself, one is terminated, one killed.
  const std::string escape = "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; ";
  auto exits = Spawn(*sup_, Sh(escape + "exit 0"));
  auto terminated = Spawn(*sup_, Sh(escape + "wait"));
  auto killed = Spawn(*sup_, Sh(escape + "wait"));
  ASSERT_TRUE(exits && terminated && killed);
  std::vector<std::string> cgroups;
  for (auto* c : {exits.get(), terminated.get(), killed.get()}) {
    ASSERT_TRUE(WaitUntil([&] { return !c->Out().empty(); }));
    cgroups.push_back(OnLoop(*sup_, [&] { return c->proc->cgroup_path(); }));
    EXPECT_FALSE(cgroups.back().empty());
  }
  OnLoop(*sup_, [&] {
    terminated->proc->Terminate(5s);
    killed->proc->Kill();
    return 0;
  });
  for (auto* c : {exits.get(), terminated.get(), killed.get()}) {
    ASSERT_TRUE(c->Wait());
    const pid_t grandchild = std::atoi(c->Out().c_str());
    ASSERT_GT(grandchild, 0);
    const bool died = WaitUntil([&] { return IsDead(grandchild); }, 1s);
    EXPECT_TRUE(died) << "grandchild " << grandchild;
    if (!died) ::kill(grandchild, SIGKILL);  // Ours, and alive.
  }
  exits.reset();
  terminated.reset();
  killed.reset();
  // The leaves go with their Process.
  for (const auto& dir : cgroups) {
    EXPECT_TRUE(WaitUntil([&] { return !std::filesystem::exists(dir); }, 5s)) << dir;
  }
}

TEST(ProcessWithoutCgroupsTest, EverythingButTheReachOfAKillWorks) {
  auto sup = ProcessSupervisor::Create({.use_cgroups = false});
  EXPECT_EQ(sup->cgroups(), nullptr);
  auto c = Spawn(*sup, Sh("echo fine"));
  ASSERT_TRUE(c);
  EXPECT_TRUE(OnLoop(*sup, [&] { return c->proc->cgroup_path(); }).empty());
  auto s = c->Wait();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->success());
  EXPECT_EQ(c->Out(), "fine\n");
}

// Runs in a forked copy of the test process: a "server" that starts children
// through a supervisor (on the spawner thread and on the loop thread), writes their
// pids to `report` and waits to be killed. Plain code only: no gtest here.
[[noreturn]] void RunDoomedServer(int report) {
  auto sup = ProcessSupervisor::Create();
  std::promise<pid_t> from_spawner;
  std::shared_ptr<Process> started;  // Written on the loop, before the promise is set.
  Process::Start(sup.get(), SpawnOptions{{"/bin/sleep", "60"}, "", MergeEnvironment({})}, {},
                 [&](ErrorOr<std::shared_ptr<Process>> p) {
                   if (p) started = *p;
                   from_spawner.set_value(p ? (*p)->pid() : -1);
                 });
  auto from_loop = Spawn(*sup, SpawnOptions{{"/bin/sleep", "60"}, "", {}});
  auto escaper = Spawn(*sup, Sh("setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; exec sleep 60"));
  const pid_t a = from_spawner.get_future().get();
  if (a <= 0 || !from_loop || !escaper) ::_exit(2);
  if (!WaitUntil([&] { return !escaper->Out().empty(); })) ::_exit(3);
  const std::string line = std::to_string(a) + " " + std::to_string(from_loop->proc->pid()) + " " +
                           std::to_string(escaper->proc->pid()) + " " + escaper->Out();
  if (::write(report, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(4);
  ::close(report);
  for (int i = 0; i < 600; ++i) std::this_thread::sleep_for(100ms);  // Killed long before.
  ::_exit(5);
}

TEST(ProcessParentDeathTest, ChildrenDieWithAKilledServerAndEscapeesAtTheNextStart) {
  // Forked while this process has one thread (no supervisor alive), so the copy
  // may start threads of its own.
  int report[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  const pid_t server = ::fork();
  ASSERT_GE(server, 0);
  if (server == 0) {
    ::close(report[0]);
    RunDoomedServer(report[1]);
  }
  ::close(report[1]);
  std::string text;
  char buf[256];
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (text.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd pfd{report[0], POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = ::read(report[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(report[0]);
  ::kill(server, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(server, &status, 0), server);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the doomed server exited with " << WEXITSTATUS(status);
  std::istringstream pids(text);
  pid_t from_spawner = 0, from_loop = 0, escaper = 0, escapee = 0;
  pids >> from_spawner >> from_loop >> escaper >> escapee;
  ASSERT_GT(escapee, 0) << text;
  // PR_SET_PDEATHSIG: the children die with the server's threads.
  for (pid_t child : {from_spawner, from_loop, escaper}) {
    const bool died = WaitUntil([&] { return IsDead(child); }, 1s);
    EXPECT_TRUE(died) << "child " << child;
    if (!died) ::kill(child, SIGKILL);  // Ours, and alive.
  }
  // The escapee left the group and is nobody's child: only a cgroup holds it, and
  // the next server to start reaps the dead one's.
  auto next = ProcessSupervisor::Create();
  const bool reaped = next->cgroups() && WaitUntil([&] { return IsDead(escapee); }, 1s);
  if (!reaped) ::kill(escapee, SIGKILL);  // Ours, and alive: leave nothing behind.
  if (!next->cgroups()) {
    GTEST_SKIP() << "cgroup v2 is not writable here: setsid escapees of a crashed server live on";
  }
  EXPECT_TRUE(reaped) << "escapee " << escapee;
}

// Not a test: what a spawn costs, for the report in docs/design.md ("Processes").
// Run with --gtest_also_run_disabled_tests --gtest_filter='*SpawnCost*'.
TEST(ProcessSpawnCost, DISABLED_TwoHundredTrueSpawns) {
  for (bool cgroups : {true, false}) {
    auto sup = ProcessSupervisor::Create({.use_cgroups = cgroups});
    testing::WarmUp(*sup);
    constexpr int kSpawns = 200;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kSpawns; ++i) {
      auto c = Spawn(*sup, SpawnOptions{{"/bin/true"}, "", {}});
      ASSERT_TRUE(c);
      ASSERT_TRUE(c->Wait());
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("%d spawn+exit+reap of /bin/true, %s: %.1f us each\n", kSpawns,
                sup->cgroups() ? "one cgroup each" : "no cgroups", static_cast<double>(us.count()) / kSpawns);
  }
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
