#include "metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace offload {

namespace {

// The fields of /proc/self/stat after the command name (which may hold spaces and
// parentheses, so it is skipped up to its last ')'): field 3 (state) is [0].
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// Seconds since the epoch at boot, from /proc/stat's btime.
double BootTime() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

void WriteProcessMetrics(MetricsText* out) {
  const std::vector<std::string> f = StatFields();
  // utime 14, stime 15, starttime 22, vsize 23, rss 24 (proc(5), 1-based): [11], [12], [19], [20], [21].
  if (f.size() < 22) return;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  out->Family("process_cpu_seconds_total", MetricType::kCounter, "User and system CPU time spent, in seconds.");
  out->Sample("process_cpu_seconds_total", {}, (std::stod(f[11]) + std::stod(f[12])) / ticks);
  out->Family("process_resident_memory_bytes", MetricType::kGauge, "Resident memory size in bytes.");
  out->Sample("process_resident_memory_bytes", {}, std::stod(f[21]) * page);
  out->Family("process_virtual_memory_bytes", MetricType::kGauge, "Virtual memory size in bytes.");
  out->Sample("process_virtual_memory_bytes", {}, std::stod(f[20]));
  out->Family("process_start_time_seconds", MetricType::kGauge,
              "Start time of the process since the epoch, in seconds.");
  out->Sample("process_start_time_seconds", {}, BootTime() + std::stod(f[19]) / ticks);
  std::error_code ec;
  std::int64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  out->Family("process_open_fds", MetricType::kGauge, "Open file descriptors.");
  out->Sample("process_open_fds", {}, fds);
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    out->Family("process_max_fds", MetricType::kGauge, "The limit of open file descriptors.");
    out->Sample("process_max_fds", {}, static_cast<std::int64_t>(nofile.rlim_cur));
  }
}

}  // namespace offload
