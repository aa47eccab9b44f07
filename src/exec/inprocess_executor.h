// InProcessExecutor: runs a registered C++ handler on a shared ThreadPool.
//
// The pool belongs to whoever built the executors (it is shared by every in-process
// task); the executor keeps the one guarantee every Executor gives its owner: once its
// destructor has returned, none of its callbacks runs any more. It counts the
// executions it handed to the pool, and the destructor waits for that count to reach
// zero, so a handler that is still running when the service shuts down reports
// before the state its callback touches goes away.
#pragma once

#include <memory>

#include "exec/executor.h"
#include "offload/task_registry.h"
#include "util/thread_pool.h"

namespace offload {

// Thread-safe. Keeps its own copy of the handler (the registry need not outlive it);
// borrows the pool. REQUIRES: the pool outlives the executor, and no Start or
// StartBatch call is under way or follows once the destructor has begun.
class InProcessExecutor final : public Executor {
 public:
  InProcessExecutor(Handler handler, ThreadPool* pool);
  // Blocks until every execution handed to the pool has run and reported: a handler
  // that ignores its cancellation keeps it waiting.
  ~InProcessExecutor() override;
  InProcessExecutor(const InProcessExecutor&) = delete;
  InProcessExecutor& operator=(const InProcessExecutor&) = delete;

  void Start(Execution exec, ExecutionDone done) override;
  // The whole batch runs on one pool thread: no hand-off between its executions.
  void StartBatch(Batch batch, BatchDone done) override;

 private:
  // Shared with the work in the pool, so that the last piece of work can still
  // signal the destructor after the count it decremented let the executor go.
  struct State;

  std::shared_ptr<State> state_;  // Constant after construction.
  ThreadPool* pool_;
};

}  // namespace offload
