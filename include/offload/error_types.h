// The error types a job can fail (or be canceled) with: the "type" of its
// "error" object over HTTP, and the first argument of Result::Fail. Clients branch
// on them, so they are named once, here; docs/api.md lists what each means.
// A handler may return a type of its own; these are the ones offload itself sets.
#pragma once

#include <string_view>

namespace offload::error_type {

// The input was refused by the handler (or its validator); never retried.
inline constexpr std::string_view kInvalidInput = "invalid_input";
// An in-process handler threw.
inline constexpr std::string_view kHandlerError = "handler_error";
// The job (or one map element) ran longer than its timeout.
inline constexpr std::string_view kTimeout = "timeout";
// Stopped by DELETE /v1/jobs/{id}.
inline constexpr std::string_view kCanceled = "canceled";
// The server shut down before the job finished.
inline constexpr std::string_view kShutdown = "shutdown";
// The client of POST /v1/tasks/NAME/run closed its connection first.
inline constexpr std::string_view kClientDisconnected = "client_disconnected";
// POST /v1/tasks/NAME/run waited its run_timeout.
inline constexpr std::string_view kRunTimeout = "run_timeout";
// The server stopped while the job ran, and it has no retries left.
inline constexpr std::string_view kInterrupted = "interrupted";
// A job recovered at start names a task that is no longer configured.
inline constexpr std::string_view kUnknownTask = "unknown_task";
// A result over the task's max_result.
inline constexpr std::string_view kResultTooLarge = "result_too_large";
// A process task's output is not what its content type says.
inline constexpr std::string_view kInvalidResult = "invalid_result";
// A built-in handler could not encode its result.
inline constexpr std::string_view kEncodeError = "encode_error";
// A command could not be started.
inline constexpr std::string_view kSpawnFailed = "spawn_failed";
// A command exited non-zero or was killed.
inline constexpr std::string_view kCommandFailed = "command_failed";
// A worker reported an error without a type of its own.
inline constexpr std::string_view kWorkerError = "worker_error";
// A worker process died while it ran the job.
inline constexpr std::string_view kWorkerDied = "worker_died";
// No worker process could be started for the job.
inline constexpr std::string_view kWorkerUnavailable = "worker_unavailable";

}  // namespace offload::error_type
