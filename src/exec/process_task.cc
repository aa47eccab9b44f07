#include "exec/process_task.h"

#include <algorithm>
#include <climits>

#include "exec/command_executor.h"
#include "exec/worker_pool.h"

namespace offload {

int WorkerCount(const ResourceCapacities& capacities, const TaskConfig& task) {
  if (task.workers > 0) return static_cast<int>(std::min<std::int64_t>(task.workers, 1024));
  std::int64_t n = 1024;
  for (const auto& [res, amount] : task.uses) {
    auto it = capacities.find(res);
    if (it != capacities.end() && amount > 0) n = std::min(n, it->second / amount);
  }
  return static_cast<int>(std::max<std::int64_t>(n, 1));
}

ErrorOr<std::unique_ptr<Executor>> MakeProcessExecutor(const ResourceCapacities& capacities, const TaskConfig& task,
                                                       std::shared_ptr<ProcessSupervisor> supervisor) {
  const bool is_command = !task.command.empty();
  SpawnOptions spawn;
  spawn.argv = is_command ? task.command : task.worker;
  spawn.cwd = task.cwd;
  spawn.environment = MergeEnvironment(task.env);
  if (auto found = FindExecutable(spawn.argv[0], spawn.cwd); !found) {
    return MakeError(ErrorCode::kInvalidArgument, "task \"" + task.name + "\": " + (is_command ? "command" : "worker") +
                                                      ": " + found.error().detail);
  }
  const std::string content_type = task.content_type.empty() ? "application/json" : task.content_type;
  if (is_command) {
    CommandOptions o;
    o.task = task.name;
    o.spawn = std::move(spawn);
    o.content_type = content_type;
    o.kill_grace = task.kill_grace;
    o.max_result = task.max_result;
    return std::unique_ptr<Executor>(std::make_unique<CommandExecutor>(std::move(supervisor), std::move(o)));
  }
  WorkerPoolOptions o;
  o.task = task.name;
  o.spawn = std::move(spawn);
  o.workers = WorkerCount(capacities, task);
  o.content_type = content_type;
  o.kill_grace = task.kill_grace;
  o.max_jobs_per_worker = task.max_jobs_per_worker;
  o.max_rss = task.max_rss;
  o.max_result = task.max_result;
  return std::unique_ptr<Executor>(std::make_unique<WorkerPool>(std::move(supervisor), std::move(o)));
}

}  // namespace offload
