#include "service/job_lifecycle.h"

#include <cassert>
#include <utility>

#include "offload/error_types.h"

namespace offload {

bool IsAllowedTransition(JobStatus from, JobStatus to) {
  switch (from) {
    case JobStatus::kQueued:
      return to != JobStatus::kQueued;
    case JobStatus::kRunning:
      return to != JobStatus::kRunning;
    case JobStatus::kSucceeded:
    case JobStatus::kFailed:
    case JobStatus::kCanceled:
      return false;
  }
  return false;
}

void EnterStatus(JobRecord* rec, JobStatus to, UnixMillis now, std::optional<JobError> error) {
  assert(IsAllowedTransition(rec->status, to));
  rec->status = to;
  switch (to) {
    case JobStatus::kRunning:
      rec->started_at = now;
      rec->attempts += 1;
      return;
    case JobStatus::kQueued:
      assert(error);
      rec->error_history.push_back(std::move(*error));
      if (rec->error_history.size() > kErrorHistory) rec->error_history.erase(rec->error_history.begin());
      rec->started_at = 0;
      rec->progress.reset();
      return;
    case JobStatus::kSucceeded:
      if (rec->started_at == 0) rec->started_at = now;
      rec->progress = 1.0;
      break;
    case JobStatus::kFailed:
      assert(error);
      rec->error = std::move(error);
      break;
    case JobStatus::kCanceled:
      rec->error = error ? std::move(*error) : JobError{error_type::kCanceled, "canceled by a DELETE request"};
      break;
  }
  if (rec->finished_at == 0) rec->finished_at = now;
}

}  // namespace offload
