// The error types a job can fail (or be canceled) with: the "type" of its
// "error" object over HTTP, and the first argument of Result::Fail. Clients branch
// on them, so they are named once, here; docs/api.md lists what each means.
// A handler may return a type of its own; these are the ones offload itself sets.
#pragma once

namespace offload::error_type {

// The input was refused by the handler (or its validator); never retried.
inline constexpr char kInvalidInput[] = "invalid_input";
// An in-process handler threw.
inline constexpr char kHandlerError[] = "handler_error";
// The job (or one map element) ran longer than its timeout.
inline constexpr char kTimeout[] = "timeout";
// Stopped by DELETE /v1/jobs/{id}.
inline constexpr char kCanceled[] = "canceled";
// The server shut down before the job finished.
inline constexpr char kShutdown[] = "shutdown";
// The client of POST /v1/tasks/NAME/run closed its connection first.
inline constexpr char kClientDisconnected[] = "client_disconnected";
// POST /v1/tasks/NAME/run waited its run_timeout.
inline constexpr char kRunTimeout[] = "run_timeout";
// The server stopped while the job ran, and it has no retries left.
inline constexpr char kInterrupted[] = "interrupted";
// A job recovered at start names a task that is no longer configured.
inline constexpr char kUnknownTask[] = "unknown_task";
// A result over the task's max_result.
inline constexpr char kResultTooLarge[] = "result_too_large";
// A process task's output is not what its content type says.
inline constexpr char kInvalidResult[] = "invalid_result";
// A built-in handler could not encode its result.
inline constexpr char kEncodeError[] = "encode_error";
// A command could not be started.
inline constexpr char kSpawnFailed[] = "spawn_failed";
// A command exited non-zero or was killed.
inline constexpr char kCommandFailed[] = "command_failed";
// A worker reported an error without a type of its own.
inline constexpr char kWorkerError[] = "worker_error";
// A worker process died while it ran the job.
inline constexpr char kWorkerDied[] = "worker_died";
// No worker process could be started for the job.
inline constexpr char kWorkerUnavailable[] = "worker_unavailable";
// The result file could not be kept (a full disk): retried like a crash.
inline constexpr char kResultNotStored[] = "result_not_stored";
// A job failed or canceled without an error of its own: not expected, the fallback of
// GET /v1/jobs/{id}/result.
inline constexpr char kUnknown[] = "unknown";

}  // namespace offload::error_type
