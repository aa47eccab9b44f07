#include "exec/inprocess_executor.h"

#include <atomic>
#include <exception>

#include "offload/error_types.h"
#include "util/mutex.h"

namespace offload {

struct InProcessExecutor::State {
  explicit State(Handler h) : handler(std::move(h)) {}

  // Marks the end of one execution handed to the pool, after its callback returned.
  void Finished() {
    // Both sides are sequentially consistent: either the destructor's load of
    // in_flight sees this decrement, or this load of closing sees its store (and it
    // waits for the signal, which is sent under mu so it cannot be missed).
    if (in_flight.fetch_sub(1) == 1 && closing.load()) {
      MutexLock lock(&mu);
      idle.SignalAll();
    }
  }

  const Handler handler;
  // Executions handed to the pool whose callback has not returned yet.
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> closing{false};  // The destructor has begun.
  Mutex mu;                          // Only for the wait in the destructor.
  CondVar idle;                      // Signalled, once closing, when in_flight reaches 0.
};

namespace {

Result RunHandler(const Handler& handler, const Job& job, RunContext& context) {
  // A handler's exception must not cross into the pool thread: it becomes the
  // job's error.
  try {
    return handler(job, context);
  } catch (const std::exception& e) {
    return Result::Fail(error_type::kHandlerError, e.what());
  } catch (...) {
    return Result::Fail(error_type::kHandlerError, "the handler threw a non-standard exception");
  }
}

}  // namespace

InProcessExecutor::InProcessExecutor(Handler handler, ThreadPool* pool)
    : state_(std::make_shared<State>(std::move(handler))), pool_(pool) {}

InProcessExecutor::~InProcessExecutor() {
  state_->closing.store(true);
  MutexLock lock(&state_->mu);
  while (state_->in_flight.load() > 0) state_->idle.Wait(&state_->mu);
}

void InProcessExecutor::Start(Execution exec, ExecutionDone done) {
  state_->in_flight.fetch_add(1);
  pool_->Submit([state = state_, exec = std::move(exec), done = std::move(done)]() mutable {
    done(RunHandler(state->handler, Job{exec.job_id, exec.task, *exec.input, exec.priority, exec.attempt, exec.files},
                    *exec.context));
    // What the work holds goes before the count does: nothing of the execution
    // outlives the executor.
    done = nullptr;
    exec = Execution{};
    state->Finished();
  });
}

void InProcessExecutor::StartBatch(Batch batch, BatchDone done) {
  state_->in_flight.fetch_add(1);
  pool_->Submit([state = state_, batch = std::move(batch), done = std::move(done)]() mutable {
    BatchOutcome outcome;
    outcome.values.reserve(batch.size());
    // One id string for every element, rewritten in place: MAPID.INDEX.
    std::string id = batch.map_id + ".";
    const std::size_t prefix = id.size();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch.context->canceled()) break;
      id.resize(prefix);
      id += std::to_string(batch.IndexOf(i));
      Result r = RunHandler(state->handler, Job{id, batch.task, batch.InputOf(i), batch.priority, batch.AttemptOf(i)},
                            *batch.context);
      const bool failed = !r.ok();
      outcome.Add(std::move(r));
      if (failed && batch.stop_on_failure) break;
    }
    done(std::move(outcome));
    done = nullptr;
    batch = Batch{};
    state->Finished();
  });
}

}  // namespace offload
