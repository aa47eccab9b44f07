#include "exec/process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <new>
#include <utility>

extern char** environ;

namespace offload {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// After the group (and the cgroup) was killed, a pipe still open can only be held by
// a descendant that left the group (setsid) where there are no cgroups: its output
// is not waited for longer than this.
constexpr std::chrono::milliseconds kOutputReadDeadline{2000};

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
  // Moves both ends to descriptors >= 3, so that the child's dup2 onto 0, 1 and 2
  // cannot overwrite one end with another (a server started with stdin closed gets
  // pipes at 0..2). False with errno set on failure.
  bool LiftAboveStdio() {
    for (int& f : fd) {
      if (f < 0 || f > STDERR_FILENO) continue;
      const int moved = ::fcntl(f, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
      if (moved < 0) return false;
      ::close(f);
      f = moved;
    }
    return true;
  }
};

// What a child needs between clone and exec, all prepared by the parent (the child
// may not allocate: it shares the server's memory, and another thread may hold the
// allocator's lock), and what it reports back through that shared memory.
struct ChildArgs {
  const char* path = nullptr;  // Resolved: no PATH search in the child.
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // null: the server's.
  int stdio[3] = {-1, -1, -1};
  int cgroup_procs = -1;    // Its cgroup's cgroup.procs, or -1.
  pid_t parent = -1;        // The server's pid, to notice it died before PR_SET_PDEATHSIG.
  int max_fd = 0;           // For closing descriptors where close_range is missing.
  int keep_fd = -1;         // A close-on-exec descriptor the child leaves open (see ForkAndExec).
  bool set_nofile = false;  // Whether to set `nofile` (SetChildOpenFileLimit).
  struct rlimit nofile {};
  // Written by the child before it _exits: why it could not exec.
  int error = 0;
  // Written by the child when it could not join its cgroup (it runs anyway).
  int cgroup_error = 0;
};

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

constexpr int kLastSignal = 64;  // Linux numbers its signals 1..64.

std::atomic<std::uint64_t> g_child_nofile{0};  // See SetChildOpenFileLimit.

// The kernel's struct sigaction on x86-64 and arm64 (glibc's differs), for the raw
// rt_sigaction below.
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  std::uint64_t mask;
};

// Only raw system calls from here to exec: no glibc function that keeps state
// (sigaction and sigprocmask hide glibc's two internal signals), and none that a
// sanitizer intercepts (its bookkeeping is the parent's memory too). errno is the
// spawning thread's, which is suspended until the child execs or exits.
__attribute__((no_sanitize("address", "thread", "undefined"))) int ChildMain(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  long rc = ::syscall(SYS_setpgid, 0, 0);
  if (rc == 0) rc = ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (rc == 0 && ::syscall(SYS_getppid) != a->parent) {
    // The server died before the request above: nobody will send it.
    a->error = ESRCH;
    ::syscall(SYS_exit_group, 127);
  }
  if (rc == 0 && a->set_nofile) ::syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &a->nofile, nullptr);
  if (rc == 0 && a->cgroup_procs >= 0 && ::syscall(SYS_write, a->cgroup_procs, "0", 1) != 1) {
    a->cgroup_error = errno != 0 ? errno : EIO;
  }
  // Every handler the server set would run here, in its memory: back to defaults
  // (SIGPIPE, ignored by the server, too) before signals are unblocked.
  for (int sig = 1; rc == 0 && sig <= kLastSignal; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
#if defined(__x86_64__) || defined(__aarch64__)
    KernelSigaction dfl{};
    dfl.handler = SIG_DFL;
    ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(dfl.mask));
#else
    // Elsewhere the kernel's layout differs: glibc's call (which leaves its two
    // internal signals alone; exec resets their handlers).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
#endif
  }
  // Sources are >= 3 (LiftAboveStdio) and targets 0..2: dup3 (dup2 is missing on
  // arm64) never sees equal numbers, and clears close-on-exec on the copy.
  for (int i = 0; rc == 0 && i < 3; ++i) {
    if (::syscall(SYS_dup3, a->stdio[i], i, 0) < 0) rc = -1;
  }
  // Asio's sockets are not close-on-exec: a child must not keep a client connection
  // or the listening socket alive.
  if (rc == 0) {
    bool closed;
    if (a->keep_fd >= 3) {
      const unsigned keep = static_cast<unsigned>(a->keep_fd);
      closed = (keep == 3 || ::syscall(SYS_close_range, 3U, keep - 1, 0U) == 0) &&
               ::syscall(SYS_close_range, keep + 1, ~0U, 0U) == 0;
    } else {
      closed = ::syscall(SYS_close_range, 3U, ~0U, 0U) == 0;
    }
    for (int fd = 3; !closed && fd < a->max_fd; ++fd) {  // Before Linux 5.9.
      if (fd != a->keep_fd) ::syscall(SYS_close, fd);
    }
  }
  if (rc == 0 && a->cwd != nullptr) rc = ::syscall(SYS_chdir, a->cwd);
  if (rc == 0) {
    std::uint64_t none = 0;
    rc = ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof(none));
  }
  if (rc == 0) ::syscall(SYS_execve, a->path, a->argv, a->envp);
  a->error = errno != 0 ? errno : EIO;
  ::syscall(SYS_exit_group, 127);
  return 127;
}

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer intercepts clone() as a fork and re-initialises its own state in
// the child, which with CLONE_VM is the parent's: under TSan the child is forked
// instead (slower, the same steps). ChildArgs then lives in a shared mapping so that
// the child's report reaches the parent, and the parent waits for exec (or exit) as
// CLONE_VFORK would: on a close-on-exec pipe the child keeps open until then.
pid_t CloneAndExec(ChildArgs& args) {
  void* mem = ::mmap(nullptr, sizeof(ChildArgs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  auto* shared = new (mem) ChildArgs(args);
  int done[2];
  if (::pipe2(done, O_CLOEXEC) != 0) {
    const int e = errno;
    ::munmap(mem, sizeof(ChildArgs));
    return -e;
  }
  shared->keep_fd = done[1];
  const pid_t pid = ::fork();
  if (pid == 0) ChildMain(shared);
  const int fork_error = errno;
  ::close(done[1]);
  char c;
  while (pid > 0 && ::read(done[0], &c, 1) < 0 && errno == EINTR) {
  }
  ::close(done[0]);
  const int error = shared->error;
  args.cgroup_error = shared->cgroup_error;
  ::munmap(mem, sizeof(ChildArgs));
  if (pid < 0) return -fork_error;
  if (error != 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return -error;
  }
  return pid;
}
#else
// Starts the child and returns once it has exec'd (CLONE_VFORK): its pid, or
// -errno when it could not be started (and then it has been reaped).
pid_t CloneAndExec(ChildArgs& args) {
  constexpr std::size_t kStackSize = 256 * 1024;  // Untouched pages cost nothing.
  void* stack = ::mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED) return -errno;
  // No signal handler may run in the child, in the server's memory: every signal is
  // blocked (glibc's internal ones too, hence the raw call) until the child has
  // reset their dispositions. The child starts with this mask and clears it itself.
  // (This call and errno's also bind the PLT slots of syscall() and
  // __errno_location(), so the child, which calls nothing else, never enters the
  // dynamic linker's lazy binding.)
  errno = 0;
  std::uint64_t all = ~std::uint64_t{0}, old = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof(all));
  const pid_t pid = ::clone(ChildMain, static_cast<char*>(stack) + kStackSize, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  const int clone_error = errno;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof(old));
  ::munmap(stack, kStackSize);
  if (pid < 0) return -clone_error;
  if (args.error != 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return -args.error;
  }
  return pid;
}
#endif

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

void SetChildOpenFileLimit(std::uint64_t soft) { g_child_nofile.store(soft, std::memory_order_relaxed); }

void SetEnvironment(std::vector<std::string>* environment, std::string_view name, std::string_view value) {
  std::string entry;
  entry.reserve(name.size() + 1 + value.size());
  entry.append(name).append("=").append(value);
  for (std::string& e : *environment) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      e = std::move(entry);
      return;
    }
  }
  environment->push_back(std::move(entry));
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
    return MakeError(ErrorCode::kInvalidArgument, "\"" + p.string() + "\" is not an executable file");
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

std::string OutputTail::str() const { return buf_.size() <= capacity_ ? buf_ : buf_.substr(buf_.size() - capacity_); }

Process::SpawnedChild::~SpawnedChild() {
  if (pid > 0) {
    ::kill(-pid, SIGKILL);
    cgroup.KillAll();
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {in, out, err}) {
    if (fd >= 0) ::close(fd);
  }
}

ErrorOr<Process::SpawnedChild> Process::SpawnChild(ProcessCgroups* cgroups, const SpawnOptions& options) {
  if (options.argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty command");
  const std::string& program = options.argv[0];
  const std::string where = "cannot start \"" + program + "\"" + (options.cwd.empty() ? "" : " in " + options.cwd);
  // The child must not search PATH (that allocates); a name without '/' is resolved
  // here, a path is left to the kernel (relative to the child's cwd, as before).
  std::string path = program;
  if (program.find('/') == std::string::npos) {
    auto found = FindExecutable(program, options.cwd);
    if (!found) return MakeError(ErrorCode::kUnavailable, where + ": " + std::strerror(ENOENT));
    std::error_code ec;
    path = std::filesystem::absolute(*found, ec).string();
    if (ec) path = *found;
  }
  Pipe in, out, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(out.fd, O_CLOEXEC) != 0 || ::pipe2(err.fd, O_CLOEXEC) != 0 ||
      !in.LiftAboveStdio() || !out.LiftAboveStdio() || !err.LiftAboveStdio()) {
    return MakeError(ErrorCode::kUnavailable, where + ": pipe: " + std::strerror(errno));
  }
  // A file for stdin stands in for the pipe's read end, which closes with `in`: the
  // child reads the file itself, at disk speed, and the pipe's write end is left to
  // the Process, which writes nothing to it.
  Pipe stdin_file;
  if (!options.stdin_path.empty()) {
    stdin_file.fd[0] = ::open(options.stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (stdin_file.fd[0] < 0 || !stdin_file.LiftAboveStdio()) {
      return MakeError(ErrorCode::kUnavailable,
                       where + ": cannot open " + options.stdin_path + ": " + std::strerror(errno));
    }
  }
  ProcessCgroup cgroup;
  if (cgroups && !cgroups->disabled()) {
    auto leaf = cgroups->CreateLeaf();
    if (leaf) {
      cgroup = std::move(*leaf);
    } else {
      spdlog::warn("{}: starting \"{}\" outside a cgroup", leaf.error().detail, program);
    }
  }

  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : options.environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  ChildArgs args;
  args.path = path.c_str();
  args.argv = argv.data();
  args.envp = envp.data();
  args.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  args.stdio[0] = stdin_file.fd[0] >= 0 ? stdin_file.fd[0] : in.fd[0];
  args.stdio[1] = out.fd[1];
  args.stdio[2] = err.fd[1];
  args.cgroup_procs = cgroup.procs_fd();
  args.parent = ::getpid();
  struct rlimit nofile {};
  const bool known = ::getrlimit(RLIMIT_NOFILE, &nofile) == 0;
  args.max_fd = known && nofile.rlim_cur != RLIM_INFINITY ? static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20))
                                                          : 1 << 16;
  const std::uint64_t child_soft = g_child_nofile.load(std::memory_order_relaxed);
  if (known && child_soft > 0 && child_soft < nofile.rlim_cur) {
    args.set_nofile = true;
    args.nofile.rlim_cur = static_cast<rlim_t>(child_soft);
    args.nofile.rlim_max = nofile.rlim_max;
  }

  const pid_t pid = CloneAndExec(args);
  cgroup.CloseProcsFd();
  if (pid < 0) return MakeError(ErrorCode::kUnavailable, where + ": " + std::strerror(-pid));
  if (args.cgroup_error != 0 && cgroups) {
    // The child runs, outside its cgroup: every later one would too.
    cgroups->Disable(args.cgroup_error);
    cgroup = ProcessCgroup();
  }
  for (int fd : {in.fd[1], out.fd[0], err.fd[0]}) ::fcntl(fd, F_SETFL, O_NONBLOCK);
  SpawnedChild child;
  child.pid = pid;
  child.in = in.Release(1);
  child.out = out.Release(0);
  child.err = err.Release(0);
  child.cgroup = std::move(cgroup);
  return child;
}

std::shared_ptr<Process> Process::Adopt(ProcessSupervisor* supervisor, SpawnedChild child, Callbacks callbacks) {
  std::shared_ptr<Process> p(new Process(supervisor, child, std::move(callbacks)));
  p->Begin();
  return p;
}

ErrorOr<std::shared_ptr<Process>> Process::Spawn(ProcessSupervisor* supervisor, const SpawnOptions& options,
                                                 Callbacks callbacks) {
  auto child = SpawnChild(supervisor->cgroups(), options);
  if (!child) return child.error();
  return Adopt(supervisor, std::move(*child), std::move(callbacks));
}

void Process::Start(ProcessSupervisor* supervisor, SpawnOptions options, Callbacks callbacks,
                    std::function<void(ErrorOr<std::shared_ptr<Process>>)> started) {
  supervisor->RunOnSpawner([supervisor, options = std::move(options), callbacks = std::move(callbacks),
                            started = std::move(started)]() mutable {
    auto child = std::make_shared<ErrorOr<SpawnedChild>>(SpawnChild(supervisor->cgroups(), options));
    // If the loop is torn down before this runs, `child` dies with the handler and
    // takes the process with it.
    asio::post(supervisor->context(),
               [supervisor, child, callbacks = std::move(callbacks), started = std::move(started)]() mutable {
                 if (!*child) return started(child->error());
                 started(Adopt(supervisor, std::move(**child), std::move(callbacks)));
               });
  });
}

// Takes over the child's pid, pipes and cgroup (`child` is left empty).
Process::Process(ProcessSupervisor* supervisor, SpawnedChild& child, Callbacks callbacks)
    : supervisor_(supervisor),
      pid_(std::exchange(child.pid, -1)),
      callbacks_(std::move(callbacks)),
      in_(supervisor->context(), std::exchange(child.in, -1)),
      out_(supervisor->context(), std::exchange(child.out, -1)),
      err_(supervisor->context(), std::exchange(child.err, -1)),
      kill_timer_(supervisor->context()),
      output_timer_(supervisor->context()),
      out_buf_(new char[kReadChunk]),
      err_buf_(new char[kReadChunk]),
      cgroup_(std::move(child.cgroup)) {}

Process::~Process() {
  CloseDescriptor(in_);
  CloseDescriptor(out_);
  CloseDescriptor(err_);
  if (!reaped_ && supervisor_->ForgetChild(pid_)) {
    KillAll();
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
  pipe.async_read_some(asio::buffer(buf, kReadChunk),
                       [self = shared_from_this(), is_stdout, buf](const boost::system::error_code& ec, std::size_t n) {
                         if (n > 0 && !self->finished_) {
                           auto& cb = is_stdout ? self->callbacks_.on_stdout : self->callbacks_.on_stderr;
                           if (cb) cb(std::string_view(buf, n));
                         }
                         if (ec) {  // End of file, or closed by the output-read deadline.
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
    if (!ec && !self->reaped_) self->KillAll();
  });
}

void Process::Kill() {
  if (!reaped_) KillAll();
}

// The group first: it is most of what there is, and its pid is known. REQUIRES: the
// leader not reaped (else the group id may belong to a stranger by now).
void Process::KillAll() {
  ::kill(-pid_, SIGKILL);
  cgroup_.KillAll();
}

// The leader is a zombie now, so its pid (the group's id) cannot have been reused:
// killing the group here reaches only its own descendants. The cgroup too: a job
// that is over leaves nothing running, not even what it daemonized.
void Process::OnLeaderExited() {
  KillAll();
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
    output_timer_.expires_after(kOutputReadDeadline);
    output_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
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
  output_timer_.cancel();
  // Moved out first: the callback may drop the last reference its owner holds,
  // and the callbacks may hold the owner (a cycle this breaks).
  auto on_exit = std::move(callbacks_.on_exit);
  callbacks_ = Callbacks{};
  if (on_exit) on_exit(status_);
}

}  // namespace offload
