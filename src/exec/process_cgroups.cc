#include "exec/process_cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

namespace offload {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "offload-";
// Leaves whose removal is retried later; beyond this they wait for the release of
// the server's directory, which removes whatever is left under it.
constexpr std::size_t kMaxPending = 4096;
// How long a release waits for killed processes to leave a directory.
constexpr std::chrono::milliseconds kEmptyDeadline{1000};
// Depth of the cgroups a job may have made under its leaf that removal descends.
constexpr int kMaxDepth = 8;

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Mount points in mountinfo escape space, tab, newline and backslash as \ooo.
std::string UnescapeMountPath(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 4, v, 8);
      if (ec == std::errc() && p == s.data() + i + 4) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The directory of this process's cgroup v2, or "" when there is none to be seen:
// the cgroup2 mount from mountinfo joined with the "0::" line of /proc/self/cgroup.
std::string OwnCgroupDir() {
  std::istringstream mounts(ReadSmallFile("/proc/self/mountinfo"));
  std::string line, mount_root, mount_point;
  while (std::getline(mounts, line)) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string id, parent, devno;
    fields >> id >> parent >> devno >> mount_root >> mount_point;
    mount_root = UnescapeMountPath(mount_root);
    mount_point = UnescapeMountPath(mount_point);
    break;
  }
  if (mount_point.empty()) return "";
  std::istringstream groups(ReadSmallFile("/proc/self/cgroup"));
  std::string own;
  while (std::getline(groups, line)) {
    if (line.rfind("0::", 0) == 0) own = line.substr(3);
  }
  if (own.empty() || own.find(" (deleted)") != std::string::npos) return "";
  // A mount of a subtree (a container's bind mount) shows paths below its root.
  if (mount_root != "/") {
    if (own.rfind(mount_root, 0) != 0) return "";
    own = own.substr(mount_root.size());
  }
  while (!own.empty() && own.back() == '/') own.pop_back();
  return mount_point + own;
}

// Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
// 0 when it is gone.
unsigned long long StartTimeOf(pid_t pid) {
  const std::string stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i < 22 && rest >> field; ++i) {
  }
  unsigned long long start = 0;
  rest >> start;
  return start;
}

bool Populated(const std::string& dir) {
  const std::string events = ReadSmallFile(dir + "/cgroup.events");
  return events.find("populated 1") != std::string::npos;
}

bool WaitEmpty(const std::string& dir, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (Populated(dir)) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

bool WriteFile(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

// Before Linux 5.14 there is no cgroup.kill: kill what each directory lists, a few
// rounds to catch what forked meanwhile (a fork bomb may win; cgroup.kill exists
// for that).
void KillListed(const std::string& dir, int depth) {
  for (int round = 0; round < 5; ++round) {
    std::istringstream procs(ReadSmallFile(dir + "/cgroup.procs"));
    bool any = false;
    for (pid_t pid; procs >> pid;) {
      if (pid > 0) any = ::kill(pid, SIGKILL) == 0 || any;
    }
    if (!any) break;
  }
  if (depth >= kMaxDepth) return;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec)) KillListed(e.path().string(), depth + 1);
  }
}

// rmdir of `dir` and of the cgroups below it; false when one is still busy. The
// common case, an empty leaf, costs one rmdir and opens no descriptor (tests count
// the server's descriptors while a finished Process is being released).
bool RemoveTree(const std::string& dir, int depth = 0) {
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
  std::error_code ec;
  if (depth < kMaxDepth) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.is_directory(ec)) RemoveTree(e.path().string(), depth + 1);
    }
  }
  return ::rmdir(dir.c_str()) == 0 || errno == ENOENT;
}

// Makes the one instance of the process (ForThisProcess).
Mutex instance_mu;
std::weak_ptr<ProcessCgroups> instance GUARDED_BY(instance_mu);
bool logged_unusable GUARDED_BY(instance_mu) = false;
bool logged_used GUARDED_BY(instance_mu) = false;

// ForThisProcess's answer where cgroups cannot be used; logged the first time.
std::shared_ptr<ProcessCgroups> Unusable(const std::string& why) EXCLUSIVE_LOCKS_REQUIRED(instance_mu) {
  if (!logged_unusable) {
    spdlog::info("cgroups not used ({}): a job's process that calls setsid escapes its kill", why);
    logged_unusable = true;
  }
  return nullptr;
}

}  // namespace

ProcessCgroup::ProcessCgroup(ProcessCgroup&& o) noexcept
    : tree_(std::move(o.tree_)), path_(std::move(o.path_)), procs_fd_(o.procs_fd_) {
  o.tree_.reset();
  o.procs_fd_ = -1;
}

ProcessCgroup& ProcessCgroup::operator=(ProcessCgroup&& o) noexcept {
  if (this != &o) {
    Release();
    tree_ = std::move(o.tree_);
    path_ = std::move(o.path_);
    procs_fd_ = o.procs_fd_;
    o.tree_.reset();
    o.procs_fd_ = -1;
  }
  return *this;
}

ProcessCgroup::~ProcessCgroup() { Release(); }

void ProcessCgroup::CloseProcsFd() {
  if (procs_fd_ >= 0) ::close(procs_fd_);
  procs_fd_ = -1;
}

void ProcessCgroup::KillAll() const {
  if (tree_) ProcessCgroups::KillAllIn(path_);
}

// Every owner has killed the leaf already when its child was reaped or killed, so
// it is mostly empty here: a kill only when the removal finds it still in use.
void ProcessCgroup::Release() {
  if (!tree_) return;
  CloseProcsFd();
  if (::rmdir(path_.c_str()) != 0 && errno != ENOENT) {
    KillAll();
    tree_->RemoveLeaf(path_);
  }
  tree_.reset();
}

std::shared_ptr<ProcessCgroups> ProcessCgroups::ForThisProcess() {
  // Held throughout, file system work and logs included, on purpose: a second caller
  // waits for the instance the first one is making rather than making (and reaping
  // for) its own. That costs nothing that matters: it is taken once per supervisor
  // made, and no lock is taken under it but the logger's own.
  MutexLock lock(&instance_mu);
  if (auto p = instance.lock(); p && p->pid_ == ::getpid()) return p;
  const std::string parent = OwnCgroupDir();
  if (parent.empty()) return Unusable("no cgroup v2 hierarchy is mounted for this process");
  const pid_t pid = ::getpid();
  const std::string path =
      parent + "/" + std::string(kPrefix) + std::to_string(pid) + "-" + std::to_string(StartTimeOf(pid));
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Unusable("cannot create " + path + ": " + std::strerror(errno));
  }
  std::shared_ptr<ProcessCgroups> p(new ProcessCgroups(parent, path));
  if (const int reaped = p->ReapStale(); reaped > 0) {
    spdlog::warn("killed what was left of {} crashed server(s) in {}", reaped, parent);
  }
  if (!logged_used) {
    spdlog::info("child processes go in a cgroup each, under {}", path);
    logged_used = true;
  }
  instance = p;
  return p;
}

ProcessCgroups::ProcessCgroups(std::string parent, std::string path)
    : parent_(std::move(parent)), path_(std::move(path)), pid_(::getpid()) {}

ProcessCgroups::~ProcessCgroups() {
  if (pid_ != ::getpid()) return;  // A forked child's copy: not its directory.
  KillAllIn(path_);
  if (!WaitEmpty(path_, kEmptyDeadline)) spdlog::warn("{} still holds processes", path_);
  if (!RemoveTree(path_)) spdlog::warn("cannot remove {}: {}", path_, std::strerror(errno));
}

ErrorOr<ProcessCgroup> ProcessCgroups::CreateLeaf() {
  std::string leaf;
  {
    MutexLock lock(&mu_);
    if (disabled_) return MakeError(ErrorCode::kUnavailable, "cgroups are disabled");
    leaf = path_ + "/c" + std::to_string(next_leaf_++);
  }
  RetryPendingRemovals();
  if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
    return MakeError(ErrorCode::kUnavailable, "cannot create " + leaf + ": " + std::strerror(errno));
  }
  const int fd = ::open((leaf + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    ::rmdir(leaf.c_str());
    return MakeError(ErrorCode::kUnavailable, "cannot open " + leaf + "/cgroup.procs: " + std::strerror(e));
  }
  ProcessCgroup c;
  c.tree_ = shared_from_this();
  c.path_ = std::move(leaf);
  c.procs_fd_ = fd;
  return c;
}

void ProcessCgroups::Disable(int error) {
  {
    MutexLock lock(&mu_);
    if (disabled_) return;
    disabled_ = true;
  }
  spdlog::info(
      "cgroups not used (a child cannot join its cgroup under {}: {}): a job's process "
      "that calls setsid escapes its kill",
      path_, std::strerror(error));
}

bool ProcessCgroups::disabled() const {
  MutexLock lock(&mu_);
  return disabled_;
}

void ProcessCgroups::KillAllIn(const std::string& dir) {
  if (WriteFile(dir + "/cgroup.kill", "1")) return;
  if (errno == ENOENT) KillListed(dir, 0);  // Only "no such file" means an old kernel.
}

void ProcessCgroups::RemoveLeaf(const std::string& path) {
  if (RemoveTree(path)) return;
  MutexLock lock(&mu_);
  if (pending_.size() < kMaxPending) pending_.push_back(path);
}

void ProcessCgroups::RetryPendingRemovals() {
  std::vector<std::string> busy;
  {
    MutexLock lock(&mu_);
    busy.swap(pending_);
  }
  std::erase_if(busy, [](const std::string& p) { return RemoveTree(p); });
  if (busy.empty()) return;
  MutexLock lock(&mu_);
  pending_.insert(pending_.end(), busy.begin(), busy.end());
}

int ProcessCgroups::ReapStale() {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kPrefix, 0) != 0 || e.path().string() == path_ || !e.is_directory(ec)) continue;
    // offload-<pid>-<start>
    const std::string_view rest = std::string_view(name).substr(kPrefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string_view::npos) continue;
    pid_t pid = 0;
    unsigned long long start = 0;
    if (std::from_chars(rest.data(), rest.data() + dash, pid).ec != std::errc() ||
        std::from_chars(rest.data() + dash + 1, rest.data() + rest.size(), start).ec != std::errc()) {
      continue;
    }
    if (pid > 0 && StartTimeOf(pid) == start) continue;  // Its server is alive.
    const std::string dir = e.path().string();
    KillAllIn(dir);
    WaitEmpty(dir, kEmptyDeadline);
    if (RemoveTree(dir)) {
      ++removed;
    } else {
      spdlog::warn("cannot remove {}, left by a dead server: {}", dir, std::strerror(errno));
    }
  }
  return removed;
}

}  // namespace offload
