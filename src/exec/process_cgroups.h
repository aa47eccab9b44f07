// ProcessCgroups: one cgroup v2 directory per server process, and one leaf cgroup
// in it per child process, so that a kill reaches everything a child started, even
// a descendant that left the child's process group with setsid.
//
// Why: a process group kill misses a grandchild that called setsid (a daemonizing
// tool, a launcher), and after a `kill -9` of the server nothing kills anything.
// Membership of a cgroup is inherited and cannot be left without write access to
// cgroupfs, so the leaf holds the child's whole tree; writing "1" to its cgroup.kill
// (Linux >= 5.14) SIGKILLs all of it at once, with no pid to reuse.
//
// Layout: <the server's own cgroup>/offload-<pid>-<start time>/c<n>. The start time
// (clock ticks after boot, /proc/PID/stat field 22) tells a live server from a dead
// one whose pid has been reused. When the first instance of a process is made, every
// offload-<pid>-<start> directory beside it whose process is gone is a crashed
// server's: what is left in it (escapees: the direct children die by their
// parent-death signal, see process.h) is killed and the directories are removed.
// Directories of another PID namespace's servers look dead from here: one cgroup
// parent must not be shared by servers in different PID namespaces.
//
// Where it cannot work (no cgroup2 mount, cgroupfs read-only, no permission to
// create a directory in our own cgroup, the child cannot be moved), ForThisProcess
// returns null, once logged at info level, and everything else works without it:
// only setsid escapees are then out of reach.
//
// Threads: thread-safe. ForThisProcess returns one instance per process, shared by
// every ProcessSupervisor alive in it (tests make many); the last owner's release
// kills what is left and removes the directories. An instance's lock guards its
// leaf counter and retry list and is held for no system call; ForThisProcess makes
// the instance under a lock of its own.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "util/error.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

class ProcessCgroups;

// One leaf cgroup, for one child and its descendants. Move-only. Dropping it kills
// whatever is still in it and removes the directory (now, or once it is empty).
class ProcessCgroup {
 public:
  ProcessCgroup() = default;
  ProcessCgroup(ProcessCgroup&& o) noexcept;
  ProcessCgroup& operator=(ProcessCgroup&& o) noexcept;
  ~ProcessCgroup();

  explicit operator bool() const { return tree_ != nullptr; }
  const std::string& path() const { return path_; }
  // Its cgroup.procs, open for writing (close-on-exec): a child writes "0" to it
  // between fork and exec to move itself in. -1 once closed.
  int procs_fd() const { return procs_fd_; }
  void CloseProcsFd();
  // SIGKILL to every process in it, setsid escapees included.
  void KillAll() const;

 private:
  friend class ProcessCgroups;
  void Release();

  std::shared_ptr<ProcessCgroups> tree_;
  std::string path_;
  int procs_fd_ = -1;
};

class ProcessCgroups : public std::enable_shared_from_this<ProcessCgroups> {
 public:
  // The instance of this process, made (and stale directories reaped) on first use;
  // null where cgroups cannot be used here.
  static std::shared_ptr<ProcessCgroups> ForThisProcess();
  // Kills what is left in the server's directory and removes it with its leaves
  // (waiting at most a second for dying processes to leave them).
  ~ProcessCgroups();
  ProcessCgroups(const ProcessCgroups&) = delete;
  ProcessCgroups& operator=(const ProcessCgroups&) = delete;

  // A new, empty leaf. Also retries the removal of leaves that were still busy.
  ErrorOr<ProcessCgroup> CreateLeaf() LOCKS_EXCLUDED(mu_);
  // After a child could not move itself into its leaf: no more leaves are made (a
  // leaf nobody can join is useless); logged once.
  void Disable(int error) LOCKS_EXCLUDED(mu_);
  bool disabled() const LOCKS_EXCLUDED(mu_);
  // The server's directory (offload-<pid>-<start>).
  const std::string& path() const { return path_; }

  // SIGKILL to every process in the cgroup at `dir` (cgroup.kill, or, before Linux
  // 5.14, kill() of each pid it lists, a few rounds). Any thread.
  static void KillAllIn(const std::string& dir);
  // Kills and removes the directories of dead servers beside ours. Returns how many
  // it removed. Done by ForThisProcess; public for tests.
  int ReapStale();

 private:
  friend class ProcessCgroup;
  ProcessCgroups(std::string parent, std::string path);
  // rmdir, or queue it for later while processes are still leaving it.
  void RemoveLeaf(const std::string& path) LOCKS_EXCLUDED(mu_);
  void RetryPendingRemovals() LOCKS_EXCLUDED(mu_);

  const std::string parent_;  // The server's own cgroup directory.
  const std::string path_;    // parent_/offload-<pid>-<start>
  const pid_t pid_;           // The process it was made in (a forked child makes its own).

  mutable Mutex mu_;
  unsigned next_leaf_ GUARDED_BY(mu_) = 0;
  bool disabled_ GUARDED_BY(mu_) = false;
  std::vector<std::string> pending_ GUARDED_BY(mu_);  // Leaves still populated at release.
};

}  // namespace offload
