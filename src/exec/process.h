// Process: one child process in its own process group, with stdin, stdout and stderr
// piped to the ProcessSupervisor's loop.
//
// What it guarantees, whatever the child does:
// - It is started by our own vfork-style spawn (clone with CLONE_VM|CLONE_VFORK on a
//   stack of its own: no copy of the server's page tables), in a new process group,
//   with every signal at its default disposition, an empty signal mask, and no
//   descriptor of the server's but its three pipes. No shell is involved; the
//   program is looked up in PATH by the parent.
// - It dies with the server: it asks for SIGKILL when its parent dies
//   (PR_SET_PDEATHSIG) before it execs, and exits at once if the server died
//   before it asked. So a `kill -9` of the server leaves no direct child running
//   longer than the kernel takes to deliver a signal. (The kernel drops that request
//   when the child execs a set-user-ID or file-capability program.)
// - Where cgroup v2 is writable (process_cgroups.h), it also joins a cgroup of its
//   own before it execs, and every kill of its process group below is followed by a
//   kill of that cgroup: descendants that left the group with setsid die too. Those
//   of a crashed server die when the next server starts (it reaps the dead one's
//   cgroups). Without cgroups they are out of reach.
// - Its pipes are read and written asynchronously: a child that floods stdout or
//   never reads stdin stalls nothing but itself.
// - When it exits, or is killed, what is left of its process group (and of its
//   cgroup) is killed too (no orphaned grandchildren), it is reaped (no zombie), and
//   all pipes are closed (no leaked descriptor) before on_exit runs.
//
// Threads: supervisor thread only, for every method and every callback. Owners hold
// a shared_ptr; pending operations hold one too, so a Process lives until it has
// been reaped and its pipes have been read to their end, even if its owner lets go first.
#pragma once

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "exec/process_cgroups.h"
#include "exec/process_supervisor.h"
#include "util/error.h"

namespace offload {

struct SpawnOptions {
  // argv[0] is looked up in the server's PATH unless it contains a '/'.
  std::vector<std::string> argv;
  // Working directory; empty: the server's.
  std::string cwd;
  // "NAME=value" entries: the child's whole environment (see MergeEnvironment).
  std::vector<std::string> environment;
  // Set: the child's stdin is this file, read-only (a job's upload), and what is
  // written to the Process's stdin goes nowhere.
  std::string stdin_path = {};
};

// Sets NAME=value in `environment`, replacing an entry of the same name.
void SetEnvironment(std::vector<std::string>* environment, std::string_view name, std::string_view value);

// How a child ended.
struct ExitStatus {
  int code = -1;   // Its exit status when it exited; -1 when a signal killed it.
  int signal = 0;  // The signal that killed it; 0 when it exited.
  bool success() const { return signal == 0 && code == 0; }
  // "exited with status 3", "was killed by signal 9 (SIGKILL)".
  std::string Describe() const;
};

// The server's environment with `added` set on top (replacing same-named entries).
std::vector<std::string> MergeEnvironment(const std::map<std::string, std::string>& added);

// The open-file soft limit every child starts with; 0 (the default): the server's own.
// The server raises its own limit to hold many connections, and hands its children
// the one it was started with (as Go does): programs that loop up to the limit, or
// use select(), expect the usual 1024. Thread-safe.
void SetChildOpenFileLimit(std::uint64_t soft);

// Finds `program` the way Spawn will (PATH lookup unless it contains a '/'; a
// relative path is taken from `cwd`), so that a typo in a config file is reported at
// start-up rather than at the first job. Returns the path found.
ErrorOr<std::string> FindExecutable(const std::string& program, const std::string& cwd);

// The last `capacity` bytes written to it: what is kept of a child's stderr.
class OutputTail {
 public:
  explicit OutputTail(std::size_t capacity) : capacity_(capacity) {}
  void Append(std::string_view data);
  std::string str() const;
  bool empty() const { return buf_.empty(); }

 private:
  std::size_t capacity_;
  std::string buf_;  // Holds up to 2 * capacity_, trimmed in Append.
};

class Process : public std::enable_shared_from_this<Process> {
 public:
  struct Callbacks {
    // Output as it arrives, in order. Never called after on_exit.
    std::function<void(std::string_view)> on_stdout;
    std::function<void(std::string_view)> on_stderr;
    // Once: the child has been reaped, its group killed, its pipes closed.
    std::function<void(const ExitStatus&)> on_exit;
  };

  // Spawns on the supervisor's spawner thread (a vfork-style spawn holds its caller
  // until the child has exec'd: milliseconds on a loaded machine, which the loop
  // must not spend), then calls `started` on the supervisor thread with the running Process,
  // or with an error naming the program when the pipes cannot be made or the program
  // cannot be executed. May be called from any thread.
  static void Start(ProcessSupervisor* supervisor, SpawnOptions options, Callbacks callbacks,
                    std::function<void(ErrorOr<std::shared_ptr<Process>>)> started);
  // The same, synchronously. REQUIRES: on the supervisor thread.
  static ErrorOr<std::shared_ptr<Process>> Spawn(ProcessSupervisor* supervisor, const SpawnOptions& options,
                                                 Callbacks callbacks);
  // Kills and reaps a child still running (only when the supervisor itself is being
  // torn down with children left).
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  // Queues `data` for the child's stdin; written as the child reads. Dropped when
  // the child has closed its stdin or exited.
  void Write(std::string data);
  // Closes stdin once the queued data is written: the child sees end of file.
  void CloseStdin();
  // SIGTERM to the process group now, SIGKILL to the group and its cgroup after
  // `grace` if the child has not exited by then. Idempotent: a second call changes
  // nothing.
  void Terminate(std::chrono::milliseconds grace);
  // SIGKILL to the process group and its cgroup now.
  void Kill();
  // Its cgroup's directory; empty without one (for tests and logs).
  const std::string& cgroup_path() const { return cgroup_.path(); }

 private:
  // A child spawned but not yet watched; killed and reaped if dropped so.
  struct SpawnedChild {
    pid_t pid = -1;
    int in = -1, out = -1, err = -1;
    ProcessCgroup cgroup;  // Killed with the group by the destructor, then removed.
    SpawnedChild() = default;
    SpawnedChild(SpawnedChild&& o) noexcept
        : pid(o.pid), in(o.in), out(o.out), err(o.err), cgroup(std::move(o.cgroup)) {
      o.pid = -1;
      o.in = o.out = o.err = -1;
    }
    SpawnedChild& operator=(SpawnedChild&&) = delete;
    ~SpawnedChild();
  };
  // Any thread; the child's parent-death signal is tied to the calling thread,
  // which must live as long as the child (the spawner or the supervisor thread).
  // `cgroups` may be null.
  static ErrorOr<SpawnedChild> SpawnChild(ProcessCgroups* cgroups, const SpawnOptions& options);
  // REQUIRES: on the supervisor thread.
  static std::shared_ptr<Process> Adopt(ProcessSupervisor* supervisor, SpawnedChild child, Callbacks callbacks);
  Process(ProcessSupervisor* supervisor, SpawnedChild& child, Callbacks callbacks);
  // SIGKILL to the group, then to the cgroup.
  void KillAll();
  void Begin();
  void ReadLoop(bool is_stdout);
  void WriteNext();
  void OnLeaderExited();
  void MaybeFinish();

  ProcessSupervisor* supervisor_;  // Outlives every Process.
  const pid_t pid_;                // Also its process group id.
  Callbacks callbacks_;
  boost::asio::posix::stream_descriptor in_;
  boost::asio::posix::stream_descriptor out_;
  boost::asio::posix::stream_descriptor err_;
  boost::asio::steady_timer kill_timer_;
  boost::asio::steady_timer output_timer_;
  std::unique_ptr<char[]> out_buf_;
  std::unique_ptr<char[]> err_buf_;
  std::deque<std::string> write_queue_;
  bool writing_ = false;
  bool close_stdin_after_writes_ = false;
  bool out_open_ = true;
  bool err_open_ = true;
  bool term_sent_ = false;
  bool reaped_ = false;
  bool finished_ = false;
  ExitStatus status_;
  // Killed and removed when the Process goes, after its destructor has reaped the
  // leader (empty without cgroups).
  ProcessCgroup cgroup_;
};

}  // namespace offload
