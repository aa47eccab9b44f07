// The job as a task handler sees it.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace offload {

// The numbers are on disk: the SQLite store keeps a job's status as this integer
// (jobs.status, and "status IN (0, 1)" finds the unfinished jobs). Never renumber or
// reuse one; a new status takes a new number. tests/store/sqlite_migration_test.cc
// pins them.
enum class JobStatus { kQueued = 0, kRunning = 1, kSucceeded = 2, kFailed = 3, kCanceled = 4 };

std::string_view JobStatusName(JobStatus status);
// Returns false when `name` is not one of the five statuses.
bool ParseJobStatus(std::string_view name, JobStatus* out);
inline bool IsFinished(JobStatus s) {
  return s == JobStatus::kSucceeded || s == JobStatus::kFailed || s == JobStatus::kCanceled;
}

// A file that came with the job: a request's binary body, or a file part of a
// multipart/form-data request. Kept read-only in the job's folder until the job is
// removed at retention.
struct JobFile {
  std::string field;         // The multipart field's name; "body" for a binary body.
  std::string filename;      // As the client named it (may be empty); never used as a path.
  std::string content_type;  // As the client sent it.
  std::uint64_t size = 0;
  std::string sha256;  // Of the bytes received, 64 hex digits.
  // Where the bytes are on this machine: absolute (offload/file_view.h maps them).
  // Empty in a record read from the store until the service resolves it.
  std::string path;
  bool operator==(const JobFile&) const = default;
};

// What one execution of a task receives. Valid for the duration of the handler call.
struct Job {
  std::string_view id;
  std::string_view task;
  const boost::json::value& input;
  int priority = 0;
  int attempt = 1;  // 1 for the first run.
  // The files that came with the job, in the order the client sent them.
  std::span<const JobFile> files = {};
};

}  // namespace offload
