// JobRecord: everything offload keeps about one job, as the store holds it.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offload/job.h"
#include "offload/result.h"
#include "util/clock.h"

namespace offload {

// What makes a job the parent of a parallel map: its input is the array of
// elements, each run as its own execution of the task.
struct MapSpec {
  std::int64_t chunk = 0;          // Elements per dispatch; 0: adaptive.
  bool collect = false;            // on_error = "collect"; else the map fails fast.
  std::int64_t failed_index = -1;  // The element that failed a fail-fast map; -1: none.
  bool operator==(const MapSpec&) const = default;
};

struct JobRecord {
  std::string id;
  std::string task;
  JobStatus status = JobStatus::kQueued;
  int priority = 0;
  std::uint64_t seq = 0;                            // Submission order; unique, increasing. Listing and FIFO use it.
  int attempts = 0;                                 // Executions started so far.
  std::shared_ptr<const boost::json::value> input;  // Shared: never copied per read.
  UnixMillis created_at = 0;
  UnixMillis started_at = 0;             // 0: not started.
  UnixMillis finished_at = 0;            // 0: not finished.
  std::shared_ptr<const Output> result;  // Set when succeeded.
  std::optional<JobError> error;         // Set when failed or canceled.
  std::optional<double> progress;        // Last progress the handler reported.
  // Errors of earlier failed attempts that were retried, oldest first (at most 5).
  std::vector<JobError> error_history;
  // Set when the client sent an Idempotency-Key: the key and a hash of the request.
  std::string idempotency_key;
  std::uint64_t request_hash = 0;
  // The job's own timeout in ms, asked for at submit; 0: the task's. The task's
  // timeout, when set, caps it.
  std::int64_t timeout_ms = 0;
  // Set for the parent job of a parallel map.
  std::optional<MapSpec> map;
  // The files that came with the job, in order; each lives at FileStore::InputPath.
  std::vector<JobFile> files;
  // A queued job is not started before this (a retry's back-off on a shared store,
  // where another node may take it up); 0: at once. Kept by PostgreSQL only: a
  // server with its own store keeps its back-off in memory.
  UnixMillis run_after = 0;
  // On a shared store, for a job with files: the node whose disk holds them, the only
  // one that may run it. Empty: any node.
  std::string files_node;
  // The job this one retries (POST /v1/jobs/{id}/retry); empty: none.
  std::string retry_of;
  // Who submitted it: the name of the token ([auth], docs/security.md). Only that
  // tenant (and an admin) sees the job, and its Idempotency-Key is that tenant's.
  // Empty: submitted without auth, the one tenant of a server without [auth].
  std::string tenant;
};

}  // namespace offload
