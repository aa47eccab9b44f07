// Building the executor of a process task (`command`, `worker` or `python` in
// [tasks.NAME]) from its config: the one place that turns config keys into
// CommandOptions or WorkerPoolOptions.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "exec/executor.h"
#include "exec/process_supervisor.h"
#include "util/error.h"

namespace offload {

// True when `task` runs a program rather than an in-process handler.
inline bool IsProcessTask(const TaskConfig& task) {
  return !task.command.empty() || !task.worker.empty() || !task.python.empty();
}

// The capacity of each resource, by name ([resources], ServerConfig::resources): all
// that a process task reads of the server's config besides its own TaskConfig.
using ResourceCapacities = std::map<std::string, std::int64_t>;

// Worker processes a worker task keeps: `workers` when set, else as many jobs as
// its `uses` lets run at once within `capacities`.
int WorkerCount(const ResourceCapacities& capacities, const TaskConfig& task);

// The program and arguments of a `python` task's workers: its interpreter running
// the bundled runner (exec/python_package.h) on its function. Fails when the
// interpreter cannot be found or the runner cannot be installed.
ErrorOr<std::vector<std::string>> PythonWorkerArgv(const TaskConfig& task);

// REQUIRES: IsProcessTask(task). Fails (kInvalidArgument, naming the task) when the
// program cannot be found, so that a typo stops the server at start-up. A worker
// task's processes start now, in the background.
// `max_memory_result` is the server's: a command's binary stdout past it is written to
// a file as it arrives.
ErrorOr<std::unique_ptr<Executor>> MakeProcessExecutor(const ResourceCapacities& capacities, const TaskConfig& task,
                                                       std::shared_ptr<ProcessSupervisor> supervisor,
                                                       std::int64_t max_memory_result = kDefaultMaxMemoryResult);

}  // namespace offload
