#include "exec/process_supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <future>
#include <vector>

#include "exec/process_cgroups.h"

namespace offload {

namespace asio = boost::asio;

namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

bool PidfdsWork() {
  int fd = PidfdOpen(::getpid());
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

}  // namespace

void CloseDescriptor(asio::posix::stream_descriptor& d) {
  if (d.is_open()) ::close(d.release());
}

std::shared_ptr<ProcessSupervisor> ProcessSupervisor::Create(Options options) {
  std::signal(SIGPIPE, SIG_IGN);
  return std::shared_ptr<ProcessSupervisor>(new ProcessSupervisor(options));
}

ProcessSupervisor::ProcessSupervisor(Options options)
    : use_pidfd_(options.use_pidfd && PidfdsWork()),
      cgroups_(options.use_cgroups ? ProcessCgroups::ForThisProcess() : nullptr),
      work_(asio::make_work_guard(io_)),
      spawn_work_(asio::make_work_guard(spawn_io_)) {
  if (!use_pidfd_) {
    if (options.use_pidfd) spdlog::warn("pidfd_open is not available: watching children with SIGCHLD");
    sigchld_.emplace(io_, SIGCHLD);
    WaitSigchld();
  }
  thread_ = std::thread([this] { io_.run(); });
  spawn_thread_ = std::thread([this] { spawn_io_.run(); });
}

void ProcessSupervisor::RunOnSpawner(std::function<void()> fn) { asio::post(spawn_io_, std::move(fn)); }

ProcessSupervisor::~ProcessSupervisor() {
  if (OnSupervisorThread() || std::this_thread::get_id() == spawn_thread_.get_id()) {
    // Only a bug gets here (the last owner let go inside a completion): joining
    // would deadlock and going on would free what the loop still uses.
    spdlog::error("ProcessSupervisor destroyed on its own thread");
    std::abort();
  }
  // The spawner first: a spawn under way still hands its child to the loop, and
  // spawns not begun are dropped.
  spawn_work_.reset();
  spawn_io_.stop();
  spawn_thread_.join();
  // Kill stragglers on the loop's thread, where watches_ lives.
  std::promise<void> cleaned;
  asio::post(io_, [this, &cleaned] {
    for (auto& [pid, watch] : watches_) {
      spdlog::warn("child {} still running at shutdown: killing its process group", pid);
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      if (watch.pidfd) CloseDescriptor(*watch.pidfd);
    }
    watches_.clear();
    if (sigchld_) sigchld_->cancel();
    cleaned.set_value();
  });
  cleaned.get_future().wait();
  work_.reset();
  io_.stop();
  thread_.join();
}

void ProcessSupervisor::WatchExit(pid_t pid, std::function<void()> on_exit) {
  Watch& w = watches_[pid];
  w.on_exit = std::move(on_exit);
  if (!use_pidfd_) {
    // The SIGCHLD may have come and gone before the watch existed.
    OnSigchld();
    return;
  }
  int fd = PidfdOpen(pid);
  if (fd < 0) {
    // The child is ours and unreaped, so its pid is valid: only fd exhaustion
    // gets here. Report the exit at once; the caller kills and reaps.
    spdlog::error("pidfd_open({}) failed: {}", pid, std::strerror(errno));
    auto fn = std::move(w.on_exit);
    watches_.erase(pid);
    ::kill(-pid, SIGKILL);
    asio::post(io_, std::move(fn));
    return;
  }
  w.pidfd.emplace(io_, fd);
  WaitPidfd(pid);
}

void ProcessSupervisor::WaitPidfd(pid_t pid) {
  watches_.at(pid).pidfd->async_wait(
      asio::posix::descriptor_base::wait_read, [this, pid](const boost::system::error_code& ec) {
        if (ec) return;  // Forgotten: the descriptor was closed.
        auto it = watches_.find(pid);
        if (it == watches_.end()) return;
        // Trust the kernel, not the wake-up: only an exited child is reported.
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0) {
          return WaitPidfd(pid);
        }
        auto fn = std::move(it->second.on_exit);
        EraseWatch(it);
        fn();
      });
}

void ProcessSupervisor::EraseWatch(std::unordered_map<pid_t, Watch>::iterator it) {
  if (it->second.pidfd) CloseDescriptor(*it->second.pidfd);
  watches_.erase(it);
}

bool ProcessSupervisor::ForgetChild(pid_t pid) {
  auto it = watches_.find(pid);
  if (it == watches_.end()) return false;
  EraseWatch(it);
  return true;
}

void ProcessSupervisor::WaitSigchld() {
  sigchld_->async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    OnSigchld();
    WaitSigchld();
  });
}

// One SIGCHLD may stand for several exits: every watched child is checked, without
// reaping (WNOWAIT), so that the owner can kill the group first.
void ProcessSupervisor::OnSigchld() {
  std::vector<pid_t> exited;
  for (const auto& [pid, watch] : watches_) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
      exited.push_back(pid);
    }
  }
  for (pid_t pid : exited) {
    auto it = watches_.find(pid);
    if (it == watches_.end()) continue;
    auto fn = std::move(it->second.on_exit);
    EraseWatch(it);
    asio::post(io_, std::move(fn));
  }
}

}  // namespace offload
