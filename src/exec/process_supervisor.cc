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

std::shared_ptr<ProcessSupervisor> ProcessSupervisor::Create(Options options) {
  std::signal(SIGPIPE, SIG_IGN);
  return std::shared_ptr<ProcessSupervisor>(new ProcessSupervisor(options));
}

ProcessSupervisor::ProcessSupervisor(Options options)
    : use_pidfd_(options.use_pidfd && PidfdsWork()), work_(asio::make_work_guard(io_)) {
  if (!use_pidfd_) {
    if (options.use_pidfd) spdlog::warn("pidfd_open is not available: watching children with SIGCHLD");
    sigchld_.emplace(io_, SIGCHLD);
    WaitSigchld();
  }
  thread_ = std::thread([this] { io_.run(); });
}

ProcessSupervisor::~ProcessSupervisor() {
  if (OnSupervisorThread()) {
    // Only a bug gets here (the last owner let go inside a completion): joining
    // would deadlock and going on would free what the loop still uses.
    spdlog::error("ProcessSupervisor destroyed on its own thread");
    std::abort();
  }
  // Kill stragglers on the loop's thread, where watches_ lives.
  std::promise<void> cleaned;
  asio::post(io_, [this, &cleaned] {
    for (auto& [pid, watch] : watches_) {
      spdlog::warn("child {} still running at shutdown: killing its process group", pid);
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
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
  w.pidfd->async_wait(asio::posix::descriptor_base::wait_read,
                      [this, pid](const boost::system::error_code& ec) {
                        if (ec) return;  // Forgotten: the descriptor was closed.
                        auto it = watches_.find(pid);
                        if (it == watches_.end()) return;
                        auto fn = std::move(it->second.on_exit);
                        watches_.erase(it);
                        fn();
                      });
}

bool ProcessSupervisor::ForgetChild(pid_t pid) { return watches_.erase(pid) > 0; }

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
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      exited.push_back(pid);
    }
  }
  for (pid_t pid : exited) {
    auto it = watches_.find(pid);
    if (it == watches_.end()) continue;
    auto fn = std::move(it->second.on_exit);
    watches_.erase(it);
    asio::post(io_, std::move(fn));
  }
}

}  // namespace offload
