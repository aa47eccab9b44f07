// MakeTaskExecutors: the executor of every configured task, from the config and the
// registry of in-process handlers. It is the one place that knows the concrete
// executors (InProcessExecutor, CommandExecutor, WorkerPool); the service receives
// what it builds and sees only exec/executor.h.
#pragma once

#include <cstddef>

#include "config/config.h"
#include "exec/executor.h"
#include "offload/task_registry.h"
#include "util/error.h"

namespace offload {

class ThreadPool;

// Threads enough for every job that can run at once, each holding at least one
// unit: the sum of the capacities, within [1, 1024].
std::size_t InProcessPoolSize(const ServerConfig& config);

// One TaskExecutor per entry of config.tasks. A "builtin:NAME" task runs the
// registry's handler NAME (copied: the registry need not outlive the executors) on
// `pool`; the process tasks share one ProcessSupervisor, made only if there is one,
// and their worker processes start now, in the background. Errors
// (kInvalidArgument, naming the task): a config ValidateConfig refuses, a handler
// the registry lacks, a program that cannot be found.
// REQUIRES: `pool` outlives the executors.
ErrorOr<TaskExecutors> MakeTaskExecutors(const ServerConfig& config, const TaskRegistry& registry, ThreadPool* pool);

}  // namespace offload
