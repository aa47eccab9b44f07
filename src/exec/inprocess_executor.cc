#include "exec/inprocess_executor.h"

#include <exception>

namespace offload {

void InProcessExecutor::Start(Execution exec, ExecutionDone done) {
  pool_->Submit([def = def_, exec = std::move(exec), done = std::move(done)]() mutable {
    Job job{exec.job_id, exec.task, *exec.input, exec.priority, exec.attempt};
    // A handler's exception must not cross into the pool thread: it becomes the
    // job's error.
    Result outcome = Result::Fail("handler_error", "the handler threw a non-standard exception");
    try {
      outcome = def->handler(job, *exec.context);
    } catch (const std::exception& e) {
      outcome = Result::Fail("handler_error", e.what());
    } catch (...) {
    }
    done(std::move(outcome));
  });
}

}  // namespace offload
