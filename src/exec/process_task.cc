#include "exec/process_task.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>

#include "exec/command_executor.h"
#include "exec/python_package.h"
#include "exec/worker_pool.h"
#include "util/json_writer.h"

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

ErrorOr<std::vector<std::string>> PythonWorkerArgv(const TaskConfig& task) {
  const std::string interpreter = task.interpreter.empty() ? "python3" : task.interpreter;
  ErrorOr<std::string> found = FindExecutable(interpreter, task.cwd);
  if (!found) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "task \"" + task.name + "\": interpreter: " + found.error().detail +
                         (task.interpreter.empty() ? " (set interpreter = \"/path/to/python\" in the task)" : ""));
  }
  ErrorOr<std::string> package = InstalledPythonPackageDir();
  if (!package) return package.error();
  // The runner, found first on sys.path, whatever else is installed: its protocol
  // is the one this server speaks. A JSON string is a valid Python literal.
  std::string bootstrap = "import sys; sys.path.insert(0, ";
  AppendJsonString(&bootstrap, *package);
  bootstrap += "); import offload.worker; offload.worker.main()";
  std::vector<std::string> argv{*found,    "-c",      std::move(bootstrap), task.python, "--call",
                                task.call, "--input", task.python_input};
  for (const std::string& dir : task.python_path) {
    argv.emplace_back("--path");
    argv.push_back(dir);
  }
  spdlog::info("task {}: python workers run {} on {} (cwd {})", task.name, *found, task.python,
               task.cwd.empty() ? "the server's" : task.cwd);
  return argv;
}

ErrorOr<std::unique_ptr<Executor>> MakeProcessExecutor(const ResourceCapacities& capacities, const TaskConfig& task,
                                                       std::shared_ptr<ProcessSupervisor> supervisor,
                                                       std::int64_t max_memory_result) {
  const bool is_command = !task.command.empty();
  SpawnOptions spawn;
  spawn.cwd = task.cwd;
  spawn.environment = MergeEnvironment(task.env);
  if (!task.python.empty()) {
    ErrorOr<std::vector<std::string>> argv = PythonWorkerArgv(task);
    if (!argv) return argv.error();
    spawn.argv = std::move(*argv);
  } else {
    spawn.argv = is_command ? task.command : task.worker;
    if (auto found = FindExecutable(spawn.argv[0], spawn.cwd); !found) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "task \"" + task.name + "\": " + (is_command ? "command" : "worker") + ": " + found.error().detail);
    }
  }
  const std::string content_type = task.content_type.empty() ? "application/json" : task.content_type;
  if (is_command) {
    CommandOptions o;
    o.task = task.name;
    o.spawn = std::move(spawn);
    o.content_type = content_type;
    o.kill_grace = task.kill_grace;
    o.max_result = task.max_result;
    o.input_as_path = task.input_as == "path";
    o.max_memory_result = max_memory_result;
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
