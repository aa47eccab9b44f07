#include "exec/inprocess_executor.h"

#include <exception>

#include "offload/error_types.h"

namespace offload {

namespace {

Result RunHandler(const TaskDefinition& def, const Execution& exec) {
  Job job{exec.job_id, exec.task, *exec.input, exec.priority, exec.attempt};
  // A handler's exception must not cross into the pool thread: it becomes the
  // job's error.
  try {
    return def.handler(job, *exec.context);
  } catch (const std::exception& e) {
    return Result::Fail(error_type::kHandlerError, e.what());
  } catch (...) {
    return Result::Fail(error_type::kHandlerError, "the handler threw a non-standard exception");
  }
}

}  // namespace

void InProcessExecutor::Start(Execution exec, ExecutionDone done) {
  pool_->Submit([def = def_, exec = std::move(exec), done = std::move(done)]() mutable {
    done(RunHandler(*def, exec));
  });
}

void InProcessExecutor::StartBatch(std::vector<Execution> execs, bool stop_on_failure, BatchDone done) {
  pool_->Submit([def = def_, execs = std::move(execs), stop_on_failure, done = std::move(done)]() mutable {
    std::vector<std::optional<Result>> outcomes(execs.size());
    for (std::size_t i = 0; i < execs.size(); ++i) {
      if (execs[i].context->canceled()) break;
      outcomes[i] = RunHandler(*def, execs[i]);
      if (stop_on_failure && !outcomes[i]->ok()) break;
    }
    done(std::move(outcomes));
  });
}

}  // namespace offload
