// ProcessSupervisor: the one thread that watches every child process offload runs.
//
// Why one thread: command and worker tasks may have many children at once, each with
// three pipes, an exit to notice and a kill timer. All of that is asynchronous
// operations on one io_context, run by one thread owned here, so that a child never
// costs a thread and the HTTP I/O threads never touch a child. Nothing on this loop
// blocks for long: a spawn (vfork semantics, well under a millisecond; process.h) is
// the slowest step, and it runs on a second thread, the spawner, so that a slow exec
// delays no pipe.
//
// The spawner thread is also the parent of every child started through it, and
// each child asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG, see process.h).
// Linux sends that when the parent *thread* exits, not the process: the spawner lives
// as long as the supervisor, whose destructor kills every child anyway, so a child
// dies with the supervisor or with the server, whichever goes first, even by kill -9.
//
// Exits are noticed through a pidfd per child (Linux >= 5.3), or, where pidfd_open is
// refused (old kernels, some seccomp profiles), through SIGCHLD. Either way a child is
// reported while it is still a zombie, so that its process group can be killed before
// its pid is released (no race with pid reuse), and only then reaped.
//
// Threads: Create and the destructor may run on any thread but the supervisor's own;
// context(), cgroups() and RunOnSpawner are thread-safe. WatchExit/ForgetChild: supervisor
// thread only.
#pragma once

#include <sys/types.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

namespace offload {

class ProcessCgroups;

// Closes `d`, first taking it out of the loop's epoll set and failing its pending
// operations with operation_aborted. Why not plain close(): a child being spawned on
// another thread holds copies of every descriptor until it execs, and epoll keeps
// watching a closed descriptor while a copy of it is open, delivering its events to
// whatever registration reuses the number (a dead child's pidfd waking a live one's
// watch). Every descriptor on the supervisor's loop is closed this way.
void CloseDescriptor(boost::asio::posix::stream_descriptor& d);

class ProcessSupervisor {
 public:
  struct Options {
    // false: notice exits through SIGCHLD even where pidfds work (to test the
    // fallback).
    bool use_pidfd = true;
    // false: no cgroup per child even where cgroup v2 is writable (to test that
    // everything but the reach of a kill works without).
    bool use_cgroups = true;
  };

  // Starts the thread. Also makes SIGPIPE ignored process-wide: a child that closes
  // its stdin early must fail a write, not kill the server.
  static std::shared_ptr<ProcessSupervisor> Create(Options options);
  static std::shared_ptr<ProcessSupervisor> Create() { return Create(Options{}); }
  // Stops the loop and joins the thread. Children still alive then (a bug in an
  // owner) are killed with their process groups and reaped, so none outlives it.
  ~ProcessSupervisor();
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  boost::asio::io_context& context() { return io_; }
  bool OnSupervisorThread() const { return std::this_thread::get_id() == thread_.get_id(); }
  // The cgroups children are put in; null where they cannot be used
  // (process_cgroups.h).
  ProcessCgroups* cgroups() const { return cgroups_.get(); }

  // Runs `fn` on the spawner thread, in order. Thread-safe.
  void RunOnSpawner(std::function<void()> fn);

  // Calls `on_exit` once the child `pid` (a process group leader) has exited; it is
  // then a zombie: the caller kills what is left of its group and reaps it.
  void WatchExit(pid_t pid, std::function<void()> on_exit);
  // Stops watching `pid`. Returns true when it was still watched, i.e. it has not
  // been reported as exited: the caller must then kill and reap it itself.
  bool ForgetChild(pid_t pid);
  // Children watched now (for tests).
  std::size_t watched_for_test() const { return watches_.size(); }

 private:
  explicit ProcessSupervisor(Options options);
  void WaitSigchld();
  void OnSigchld();
  void WaitPidfd(pid_t pid);

  struct Watch;
  void EraseWatch(std::unordered_map<pid_t, Watch>::iterator it);

  struct Watch {
    std::optional<boost::asio::posix::stream_descriptor> pidfd;  // Unset with SIGCHLD.
    std::function<void()> on_exit;
  };

  bool use_pidfd_;
  const std::shared_ptr<ProcessCgroups> cgroups_;  // Constant after construction.
  // Declared before io_ so that it outlives the handlers io_ destroys.
  std::unordered_map<pid_t, Watch> watches_;  // supervisor thread only
  boost::asio::io_context io_{1};
  std::optional<boost::asio::signal_set> sigchld_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
  // The spawns' own thread (see Process::Start); every child started through it
  // has it as its parent thread (see the top).
  boost::asio::io_context spawn_io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> spawn_work_;
  std::thread spawn_thread_;
};

}  // namespace offload
