// The lifecycle of a job: which status may follow which, and what changes with each
// step. EnterStatus is the one place a job's status is assigned.
//
//   queued ──> running ──> succeeded | failed | canceled
//     │  ^        │
//     │  └────────┘  (an attempt failed and is retried, or was interrupted by a stop)
//     └──> failed | canceled | succeeded (an empty map)
//
// Pure functions of a JobRecord: no locks, no I/O. The service calls them under its
// mutex and queues the store write itself.
#pragma once

#include <optional>

#include "offload/job.h"
#include "offload/result.h"
#include "store/job_record.h"
#include "util/clock.h"

namespace offload {

// Errors of earlier attempts a record keeps, oldest dropped first.
inline constexpr std::size_t kErrorHistory = 5;

// Whether a job in status `from` may move to `to`.
bool IsAllowedTransition(JobStatus from, JobStatus to);

// Moves `rec` to `to` at time `now`, with what goes with it:
//  - running: started_at = now and one more attempt;
//  - queued (from running: a retry, or a run interrupted by a stop): `error` (why the
//    attempt ended; required) joins error_history, started_at and progress are reset;
//  - succeeded: progress 1, started_at if it never started (an empty map);
//  - failed: error = `error` (required);
//  - canceled: error = `error`, or "canceled" by a request when none is given;
//  - every final status: finished_at = now, unless already set.
// The caller sets rec.result before it moves a job to succeeded.
// REQUIRES: IsAllowedTransition(rec->status, to).
void EnterStatus(JobRecord* rec, JobStatus to, UnixMillis now, std::optional<JobError> error = std::nullopt);

}  // namespace offload
