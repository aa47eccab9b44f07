#include "support/test_server.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

extern char** environ;

namespace offload::testing {
namespace {

constexpr std::string_view kListening = "offload listening on http";

// Makes a new private directory under $TMPDIR (or /tmp); returns its path or "".
std::string MakeTempDir() {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/offload-test-XXXXXX";
  if (::mkdtemp(path.data()) == nullptr) return "";
  return path;
}

bool WriteFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out.flush());
}

// The port of "offload listening on http://HOST:PORT ..." (or https://) in `log`, or 0.
unsigned short FindListeningPort(std::string_view log) {
  auto at = log.find(kListening);
  if (at == std::string_view::npos) return 0;
  std::string_view rest = log.substr(at + kListening.size());
  if (!rest.empty() && rest.front() == 's') rest.remove_prefix(1);
  if (rest.substr(0, 3) != "://") return 0;
  rest.remove_prefix(3);
  rest = rest.substr(0, rest.find_first_of(" \r\n"));
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return 0;
  unsigned port = 0;
  auto digits = rest.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || port == 0 || port > 65535) return 0;
  return static_cast<unsigned short>(port);
}

}  // namespace

const char* OffloadBinary() { return OFFLOAD_BINARY; }

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

TestServer::~TestServer() {
  if (running()) Stop(std::chrono::seconds(10));
  if (reader_.joinable()) reader_.join();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string TestServer::Start(std::string_view config_toml) {
  TestServerOptions options;
  options.config_toml = std::string(config_toml);
  return Start(std::move(options));
}

std::string TestServer::Start(TestServerOptions options) {
  if (pid_ > 0) return "TestServer::Start called twice";
  std::vector<std::string> args;
  // setpriv (util-linux) execs the server with a parent-death signal: a test program
  // that crashes takes its servers with it instead of leaving them running.
  if (::access("/usr/bin/setpriv", X_OK) == 0) args = {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"};
  if (options.open_file_limit) {
    const std::string n = std::to_string(*options.open_file_limit);
    const std::string soft = options.open_file_soft_limit ? std::to_string(*options.open_file_soft_limit) : n;
    for (std::string a : {std::string("/usr/bin/prlimit"), "--nofile=" + soft + ":" + n, std::string("--")}) {
      args.push_back(std::move(a));
    }
  }
  for (std::string a : {std::string(OffloadBinary()), std::string("serve"), std::string("--listen"),
                        std::string("127.0.0.1:0"), std::string("--threads"), std::to_string(options.threads)}) {
    args.push_back(std::move(a));
  }
  dir_ = MakeTempDir();
  if (dir_.empty()) return std::string("mkdtemp: ") + std::strerror(errno);
  if (!options.config_toml.empty()) {
    const std::string config_path = dir_ + "/offload.toml";
    if (!WriteFile(config_path, options.config_toml)) return "cannot write " + config_path;
    args.push_back("--config");
    args.push_back(config_path);
  }
  for (auto& a : options.extra_args) args.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe2: ") + std::strerror(errno);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);  // dup2 clears O_CLOEXEC on fd 2.
  posix_spawn_file_actions_addchdir_np(&actions, dir_.c_str());
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc);
  }
  pid_ = pid;
  reader_ = std::thread([this, fd = fds[0]] { ReadStderr(fd); });

  std::unique_lock lock(mu_);
  const bool ready =
      cv_.wait_for(lock, options.start_deadline, [this] { return stderr_eof_ || FindListeningPort(log_) != 0; });
  port_ = FindListeningPort(log_);
  if (port_ != 0) return "";
  std::string why = ready ? "the server exited before it listened" : "the server did not listen in time";
  std::string log = log_;
  lock.unlock();
  Stop(std::chrono::seconds(2));
  return why + " (" + DescribeWaitStatus(exit_status_.value_or(-1)) + "); its stderr:\n" + log;
}

void TestServer::ReadStderr(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mu_);
    if (n <= 0) {
      stderr_eof_ = true;
      cv_.notify_all();
      break;
    }
    log_.append(buf, static_cast<std::size_t>(n));
    cv_.notify_all();
  }
  ::close(fd);
}

void TestServer::Signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> TestServer::WaitForExit(std::chrono::milliseconds deadline) {
  if (exit_status_) return exit_status_;
  if (pid_ <= 0) return std::nullopt;
  // waitpid has no timeout: poll WNOHANG with a short back-off until the deadline.
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = status;
      return status;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int TestServer::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!exit_status_) {
    ::kill(pid_, SIGTERM);
    if (!WaitForExit(grace)) {
      ::kill(pid_, SIGKILL);
      WaitForExit(std::chrono::seconds(10));
    }
  }
  if (reader_.joinable()) reader_.join();
  return exit_status_.value_or(-1);
}

std::string TestServer::log() const {
  std::lock_guard lock(mu_);
  return log_;
}

}  // namespace offload::testing
