#include "offload/task_registry.h"

#include "tasks/builtin_tasks.h"

namespace offload {

TaskRegistry TaskRegistry::WithBuiltins() {
  TaskRegistry r;
  RegisterBuiltinTasks(&r);
  return r;
}

void TaskRegistry::Register(std::string name, TaskDefinition def) { defs_[std::move(name)] = std::move(def); }

const TaskDefinition* TaskRegistry::Find(const std::string& name) const {
  auto it = defs_.find(name);
  return it == defs_.end() ? nullptr : &it->second;
}

}  // namespace offload
