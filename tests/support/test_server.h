// TestServer: the real `offload serve` binary as a child process, for black-box
// integration tests.
//
// It listens on 127.0.0.1 port 0 and runs in a private temporary directory (its
// working directory, holding the config file and whatever relative paths such as
// the default store create), so tests may run in parallel. The bound port is read
// from the server's "offload listening on http://HOST:PORT" log line. A reader thread
// drains the child's stderr for its whole life (a full pipe would block the server's
// logging) and keeps the text for failure messages.
//
// Threads: one test thread calls the methods; only the reader thread is internal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace offload::testing {

// Path of the offload binary under test (set by CMake).
const char* OffloadBinary();

struct TestServerOptions {
  // TOML text of the config file; empty: no --config.
  std::string config_toml;
  unsigned threads = 2;
  std::vector<std::string> extra_args;
  // When set, the child runs with RLIMIT_NOFILE (soft and hard) at this many fds,
  // through util-linux's prlimit (posix_spawn cannot set limits).
  std::optional<unsigned> open_file_limit;
  // With open_file_limit: a lower soft limit (the hard one is open_file_limit).
  std::optional<unsigned> open_file_soft_limit;
  // How long Start waits for the "listening" line.
  std::chrono::milliseconds start_deadline{15'000};
};

class TestServer {
 public:
  TestServer() = default;
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  // Stops the child if it still runs and removes its directory.
  ~TestServer();

  // Starts the child and waits until it listens. Returns an empty string on
  // success, else what went wrong (with the child's stderr).
  [[nodiscard]] std::string Start(TestServerOptions options);
  [[nodiscard]] std::string Start(std::string_view config_toml = {});

  unsigned short port() const { return port_; }
  // The child's working directory.
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exit_status_; }

  // Sends `sig` to the child (e.g. SIGTERM to start a drain). No-op once it exited.
  void Signal(int sig);
  // Waits up to `deadline` for the child to exit; returns its wait status
  // (waitpid's), or nullopt if it still runs.
  std::optional<int> WaitForExit(std::chrono::milliseconds deadline);
  // SIGTERM, waits up to `grace`, then SIGKILL. Returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  // Everything the child wrote to stderr so far.
  std::string log() const;

 private:
  void ReadStderr(int fd);

  pid_t pid_ = -1;
  unsigned short port_ = 0;
  std::optional<int> exit_status_;
  std::string dir_;  // The child's working directory.
  std::thread reader_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;          // guarded by mu_
  bool stderr_eof_ = false;  // guarded by mu_
};

// A WEXITSTATUS/WTERMSIG description of a wait status, for assertion messages.
std::string DescribeWaitStatus(int status);

}  // namespace offload::testing
