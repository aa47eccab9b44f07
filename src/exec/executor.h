// Executor: runs one execution of a job somewhere (a pool thread, a child process...)
// and reports its outcome once.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <memory>
#include <string>

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

// Implementations are thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  // Must not block: long work happens elsewhere.
  virtual void Start(Execution exec, ExecutionDone done) = 0;
};

}  // namespace offload
