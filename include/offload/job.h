// The job as a task handler sees it.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace offload {

enum class JobStatus { kQueued, kRunning, kSucceeded, kFailed, kCanceled };

std::string_view JobStatusName(JobStatus status);
// Returns false when `name` is not one of the five statuses.
bool ParseJobStatus(std::string_view name, JobStatus* out);
inline bool IsFinished(JobStatus s) {
  return s == JobStatus::kSucceeded || s == JobStatus::kFailed || s == JobStatus::kCanceled;
}

// What one execution of a task receives. Valid for the duration of the handler call.
struct Job {
  std::string_view id;
  std::string_view task;
  const boost::json::value& input;
  int priority = 0;
  int attempt = 1;  // 1 for the first run.
};

}  // namespace offload
