// Executor: runs one execution of a job somewhere (a pool thread, a child process...)
// and reports its outcome once. A batch runs several executions (elements of a
// parallel map) one after another in one dispatch.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exec/run_context.h"
#include "offload/result.h"

namespace offload {

struct Execution {
  std::string job_id;
  std::string task;
  std::shared_ptr<const boost::json::value> input;
  int priority = 0;
  int attempt = 1;
  // Cancellation and progress; the service keeps a reference to request a stop.
  std::shared_ptr<RunContext> context;
};

// Called exactly once per Start, from any thread.
using ExecutionDone = std::function<void(Result)>;

// The outcomes of a batch, in the order of its executions; std::nullopt for an
// execution the batch stopped before running. Called exactly once, from any thread.
using BatchDone = std::function<void(std::vector<std::optional<Result>>)>;

// Implementations are thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  // Must not block: long work happens elsewhere.
  virtual void Start(Execution exec, ExecutionDone done) = 0;
  // Runs `execs` one after another. They share one RunContext: once it is stopped,
  // or after the first failure when `stop_on_failure`, the rest are not run. The
  // default runs each through Start; an executor whose hand-off costs more than a
  // tiny execution (a thread pool) runs the whole batch in one go.
  virtual void StartBatch(std::vector<Execution> execs, bool stop_on_failure, BatchDone done);
};

}  // namespace offload
