#include "exec/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace offload {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// After the group was killed, a pipe still open can only be held by a descendant
// that left the group (setsid): its output is not waited for longer than this.
constexpr std::chrono::milliseconds kDrainDeadline{2000};

// Owns the descriptors of a pipe until they are handed over.
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  int Release(int end) {
    int f = fd[end];
    fd[end] = -1;
    return f;
  }
};

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (signal != 0) {
    const char* name = ::sigabbrev_np(signal);
    return "was killed by signal " + std::to_string(signal) +
           (name ? " (SIG" + std::string(name) + ")" : std::string());
  }
  return "exited with status " + std::to_string(code);
}

std::vector<std::string> MergeEnvironment(const std::map<std::string, std::string>& added) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    if (added.count(std::string(name)) == 0) env.emplace_back(entry);
  }
  for (const auto& [name, value] : added) env.push_back(name + "=" + value);
  return env;
}

ErrorOr<std::string> FindExecutable(const std::string& program, const std::string& cwd) {
  if (program.empty()) return MakeError(ErrorCode::kInvalidArgument, "the program name is empty");
  if (program.find('/') != std::string::npos) {
    std::filesystem::path p(program);
    if (p.is_relative() && !cwd.empty()) p = std::filesystem::path(cwd) / p;
    if (IsExecutableFile(p.string())) return p.string();
    return MakeError(ErrorCode::kInvalidArgument,
                     "\"" + p.string() + "\" is not an executable file");
  }
  const char* path_env = ::getenv("PATH");
  std::string_view path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    std::string_view dir = path.substr(0, path.find(':'));
    std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + program;
    if (IsExecutableFile(candidate)) return candidate;
    if (dir.size() == path.size()) break;
    path.remove_prefix(dir.size() + 1);
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "no executable \"" + program + "\" in PATH (" + (path_env ? path_env : "") + ")");
}

void OutputTail::Append(std::string_view data) {
  if (data.size() >= capacity_) {
    buf_.assign(data.substr(data.size() - capacity_));
    return;
  }
  buf_.append(data);
  if (buf_.size() > 2 * capacity_) buf_.erase(0, buf_.size() - capacity_);
}

std::string OutputTail::str() const {
  return buf_.size() <= capacity_ ? buf_ : buf_.substr(buf_.size() - capacity_);
}

Process::SpawnedChild::~SpawnedChild() {
  if (pid > 0) {
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {in, out, err}) {
    if (fd >= 0) ::close(fd);
  }
}

ErrorOr<Process::SpawnedChild> Process::SpawnChild(const SpawnOptions& options) {
  if (options.argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty command");
  const std::string& program = options.argv[0];
  Pipe in, out, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(out.fd, O_CLOEXEC) != 0 ||
      ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot start \"" + program + "\": pipe: " + std::strerror(errno));
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  // dup2 clears close-on-exec on the copies; closefrom drops everything else the
  // server has open (Asio's sockets are not close-on-exec), so that a child cannot
  // keep a client connection or the listening socket alive.
  ::posix_spawn_file_actions_adddup2(&actions, in.fd[0], STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, err.fd[1], STDERR_FILENO);
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!options.cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  // The server ignores SIGPIPE; the child must not inherit that.
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : options.environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return MakeError(ErrorCode::kUnavailable, "cannot start \"" + program + "\"" +
                                                  (options.cwd.empty() ? "" : " in " + options.cwd) +
                                                  ": " + std::strerror(rc));
  }
  for (int fd : {in.fd[1], out.fd[0], err.fd[0]}) ::fcntl(fd, F_SETFL, O_NONBLOCK);
  SpawnedChild child;
  child.pid = pid;
  child.in = in.Release(1);
  child.out = out.Release(0);
  child.err = err.Release(0);
  return child;
}

std::shared_ptr<Process> Process::Adopt(ProcessSupervisor* supervisor, SpawnedChild child,
                                        Callbacks callbacks) {
  std::shared_ptr<Process> p(
      new Process(supervisor, child.pid, child.in, child.out, child.err, std::move(callbacks)));
  child.pid = -1;
  child.in = child.out = child.err = -1;
  p->Begin();
  return p;
}

ErrorOr<std::shared_ptr<Process>> Process::Spawn(ProcessSupervisor* supervisor,
                                                 const SpawnOptions& options, Callbacks callbacks) {
  auto child = SpawnChild(options);
  if (!child) return child.error();
  return Adopt(supervisor, std::move(*child), std::move(callbacks));
}

void Process::Start(ProcessSupervisor* supervisor, SpawnOptions options, Callbacks callbacks,
                    std::function<void(ErrorOr<std::shared_ptr<Process>>)> started) {
  supervisor->RunOnSpawner([supervisor, options = std::move(options), callbacks = std::move(callbacks),
                            started = std::move(started)]() mutable {
    auto child = std::make_shared<ErrorOr<SpawnedChild>>(SpawnChild(options));
    // If the loop is torn down before this runs, `child` dies with the handler and
    // takes the process with it.
    asio::post(supervisor->context(), [supervisor, child, callbacks = std::move(callbacks),
                                       started = std::move(started)]() mutable {
      if (!*child) return started(child->error());
      started(Adopt(supervisor, std::move(**child), std::move(callbacks)));
    });
  });
}

Process::Process(ProcessSupervisor* supervisor, pid_t pid, int in_fd, int out_fd, int err_fd,
                 Callbacks callbacks)
    : supervisor_(supervisor),
      pid_(pid),
      callbacks_(std::move(callbacks)),
      in_(supervisor->context(), in_fd),
      out_(supervisor->context(), out_fd),
      err_(supervisor->context(), err_fd),
      kill_timer_(supervisor->context()),
      drain_timer_(supervisor->context()),
      out_buf_(new char[kReadChunk]),
      err_buf_(new char[kReadChunk]) {}

Process::~Process() {
  CloseDescriptor(in_);
  CloseDescriptor(out_);
  CloseDescriptor(err_);
  if (!reaped_ && supervisor_->ForgetChild(pid_)) {
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void Process::Begin() {
  supervisor_->WatchExit(pid_, [self = shared_from_this()] { self->OnLeaderExited(); });
  ReadLoop(true);
  ReadLoop(false);
}

void Process::ReadLoop(bool is_stdout) {
  auto& pipe = is_stdout ? out_ : err_;
  char* buf = is_stdout ? out_buf_.get() : err_buf_.get();
  pipe.async_read_some(
      asio::buffer(buf, kReadChunk),
      [self = shared_from_this(), is_stdout, buf](const boost::system::error_code& ec, std::size_t n) {
        if (n > 0 && !self->finished_) {
          auto& cb = is_stdout ? self->callbacks_.on_stdout : self->callbacks_.on_stderr;
          if (cb) cb(std::string_view(buf, n));
        }
        if (ec) {  // End of file, or closed by the drain deadline.
          CloseDescriptor(is_stdout ? self->out_ : self->err_);
          (is_stdout ? self->out_open_ : self->err_open_) = false;
          self->MaybeFinish();
          return;
        }
        self->ReadLoop(is_stdout);
      });
}

void Process::Write(std::string data) {
  if (!in_.is_open() || close_stdin_after_writes_) return;
  write_queue_.push_back(std::move(data));
  if (!writing_) WriteNext();
}

void Process::WriteNext() {
  if (write_queue_.empty()) {
    writing_ = false;
    if (close_stdin_after_writes_) CloseDescriptor(in_);
    return;
  }
  writing_ = true;
  asio::async_write(in_, asio::buffer(write_queue_.front()),
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      // EPIPE: the child closed its stdin; or it exited, and stdin
                      // was closed while this completion was already queued.
                      if (ec || !self->in_.is_open()) {
                        self->write_queue_.clear();
                        self->writing_ = false;
                        CloseDescriptor(self->in_);
                        return;
                      }
                      self->write_queue_.pop_front();
                      self->WriteNext();
                    });
}

void Process::CloseStdin() {
  close_stdin_after_writes_ = true;
  if (!writing_) CloseDescriptor(in_);
}

void Process::Terminate(std::chrono::milliseconds grace) {
  if (reaped_ || term_sent_) return;
  term_sent_ = true;
  ::kill(-pid_, SIGTERM);
  kill_timer_.expires_after(grace);
  kill_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->reaped_) ::kill(-self->pid_, SIGKILL);
  });
}

void Process::Kill() {
  if (!reaped_) ::kill(-pid_, SIGKILL);
}

// The leader is a zombie now, so its pid (the group's id) cannot have been reused:
// killing the group here reaches only its own descendants.
void Process::OnLeaderExited() {
  ::kill(-pid_, SIGKILL);
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (r == pid_ && WIFSIGNALED(status)) {
    status_.signal = WTERMSIG(status);
    status_.code = -1;
  } else if (r == pid_) {
    status_.code = WEXITSTATUS(status);
  }
  kill_timer_.cancel();
  // A write under way still points into the queue: its completion clears it.
  if (!writing_) write_queue_.clear();
  CloseDescriptor(in_);  // Cancels a pending write.
  if (out_open_ || err_open_) {
    drain_timer_.expires_after(kDrainDeadline);
    drain_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      CloseDescriptor(self->out_);
      CloseDescriptor(self->err_);
    });
  }
  MaybeFinish();
}

void Process::MaybeFinish() {
  if (finished_ || !reaped_ || out_open_ || err_open_) return;
  finished_ = true;
  drain_timer_.cancel();
  // Moved out first: the callback may drop the last reference its owner holds,
  // and the callbacks may hold the owner (a cycle this breaks).
  auto on_exit = std::move(callbacks_.on_exit);
  callbacks_ = Callbacks{};
  if (on_exit) on_exit(status_);
}

}  // namespace offload
