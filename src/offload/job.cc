#include "offload/job.h"

namespace offload {

std::string_view JobStatusName(JobStatus status) {
  switch (status) {
    case JobStatus::kQueued:
      return "queued";
    case JobStatus::kRunning:
      return "running";
    case JobStatus::kSucceeded:
      return "succeeded";
    case JobStatus::kFailed:
      return "failed";
    case JobStatus::kCanceled:
      return "canceled";
  }
  return "queued";
}

bool ParseJobStatus(std::string_view name, JobStatus* out) {
  for (JobStatus s :
       {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed, JobStatus::kCanceled}) {
    if (JobStatusName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace offload
