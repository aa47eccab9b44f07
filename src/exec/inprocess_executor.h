// InProcessExecutor: runs a registered C++ handler on a shared ThreadPool.
#pragma once

#include "exec/executor.h"
#include "util/thread_pool.h"
#include "offload/task_registry.h"

namespace offload {

// Thread-safe. Borrows the pool and the definition; both outlive it.
class InProcessExecutor final : public Executor {
 public:
  InProcessExecutor(const TaskDefinition* def, ThreadPool* pool) : def_(def), pool_(pool) {}
  void Start(Execution exec, ExecutionDone done) override;
  // The whole batch runs on one pool thread: no hand-off between its executions.
  void StartBatch(std::vector<Execution> execs, bool stop_on_failure, BatchDone done) override;

 private:
  const TaskDefinition* def_;
  ThreadPool* pool_;
};

}  // namespace offload
