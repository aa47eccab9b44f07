// Test helpers that look at processes through /proc: children and their states
// (zombies), open descriptors, whether a pid is gone. Header-only so that the
// integration tests can use them on the server's pid too.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace offload::testing {

struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = '?';  // R, S, D, Z, T...
};

// Reads /proc/PID/stat; false when the process is gone.
inline bool ReadProcInfo(pid_t pid, ProcInfo* out) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return false;
  // The command name is in parentheses and may hold spaces: parse after the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(text.substr(close + 1));
  out->pid = pid;
  rest >> out->state >> out->ppid;
  return true;
}

// The direct children of `parent`, with their states.
inline std::vector<ProcInfo> ChildrenOf(pid_t parent) {
  std::vector<ProcInfo> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    ProcInfo info;
    if (ReadProcInfo(static_cast<pid_t>(pid), &info) && info.ppid == parent) out.push_back(info);
  }
  ::closedir(d);
  return out;
}

inline int CountZombieChildren(pid_t parent) {
  int n = 0;
  for (const auto& c : ChildrenOf(parent)) n += c.state == 'Z';
  return n;
}

// Open descriptors of `pid` (-1 when /proc cannot tell).
inline int CountOpenFds(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - (pid == ::getpid());  // Our own count includes the DIR's descriptor.
}

// True when `pid` has exited: gone, or a zombie waiting for a parent that is not
// ours to reap it (an orphan adopted by init).
inline bool IsDead(pid_t pid) {
  ProcInfo info;
  if (!ReadProcInfo(pid, &info)) return true;
  return info.state == 'Z' || info.state == 'X';
}

// Polls `pred` every few milliseconds until it holds or `deadline` passes.
inline bool WaitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The whole content of `path`, or "" when it cannot be read.
inline std::string ReadFileForTest(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace offload::testing
