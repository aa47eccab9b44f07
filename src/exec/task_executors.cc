#include "exec/task_executors.h"

#include <algorithm>
#include <memory>

#include "exec/inprocess_executor.h"
#include "exec/process_task.h"

namespace offload {

std::size_t InProcessPoolSize(const ServerConfig& config) {
  std::int64_t total = 0;
  for (const auto& [name, cap] : config.resources) total += cap;
  return static_cast<std::size_t>(std::clamp<std::int64_t>(total, 1, 1024));
}

ErrorOr<TaskExecutors> MakeTaskExecutors(const ServerConfig& config, const TaskRegistry& registry, ThreadPool* pool) {
  // Worker counts and resource checks below assume a consistent config.
  if (auto valid = ValidateConfig(config); !valid) return valid.error();
  TaskExecutors out;
  std::shared_ptr<ProcessSupervisor> supervisor;  // Shared by the process tasks' executors.
  for (const auto& [name, tc] : config.tasks) {
    TaskExecutor te;
    if (IsProcessTask(tc)) {
      if (!supervisor) supervisor = ProcessSupervisor::Create();
      auto executor = MakeProcessExecutor(config.resources, tc, supervisor, config.max_memory_result);
      if (!executor) return executor.error();
      te.executor = std::move(*executor);
      te.content_type = tc.content_type.empty() ? "application/json" : tc.content_type;
    } else {
      const std::string builtin = tc.run.substr(tc.run.find(':') + 1);
      const TaskDefinition* def = registry.Find(builtin);
      if (!def) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "task \"" + name + "\": no in-process handler named \"" + builtin + "\"");
      }
      te.content_type = tc.content_type.empty() ? def->content_type : tc.content_type;
      te.validate = def->validate;
      te.executor = std::make_unique<InProcessExecutor>(def->handler, pool);
    }
    out.emplace(name, std::move(te));
  }
  return out;
}

}  // namespace offload
