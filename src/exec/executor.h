// Executor: runs one execution of a job somewhere (a pool thread, a child process...)
// and reports its outcome once. A batch runs several executions (elements of a
// parallel map) one after another in one dispatch.
//
// The service knows executors only through this interface: it receives them, one
// per task, built by MakeTaskExecutors (exec/task_executors.h), and owns them.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "exec/run_context.h"
#include "offload/result.h"
#include "offload/task_registry.h"

namespace offload {

struct Execution {
  std::string job_id;
  std::string task;
  std::shared_ptr<const boost::json::value> input;
  int priority = 0;
  int attempt = 1;
  // Cancellation and progress; the service keeps a reference to request a stop.
  std::shared_ptr<RunContext> context;
  // The files that came with the job, with their paths (read-only files).
  std::vector<JobFile> files = {};
  // Where a process may write the result instead of stdout (OFFLOAD_RESULT_PATH);
  // empty for an element of a map, whose result goes into the map's list.
  std::string result_path = {};
};

// A chunk of a parallel map: some of its elements, run one after another in one
// dispatch. The elements stay in the map's input, uncopied; one that runs on its own
// (a worker without batches, a command) is the execution named MAPID.INDEX.
struct Batch {
  std::string map_id;
  std::string task;
  std::shared_ptr<const boost::json::value> input;  // The map's whole input: an array.
  std::vector<std::size_t> indices;                 // Its elements in `input`, in running order.
  std::vector<int> attempts;                        // Per element; empty when all are first ones.
  int priority = 0;
  // Once an element fails, the rest are not run.
  bool stop_on_failure = false;
  // Shared by the elements: once it is stopped, the rest are not run.
  std::shared_ptr<RunContext> context;
  // The elements' indices in the map, where `input` holds only this batch's elements (a chunk
  // run for a map held by another node); empty when they are `indices`.
  std::vector<std::size_t> map_indices;

  std::size_t size() const { return indices.size(); }
  const boost::json::value& InputOf(std::size_t i) const { return input->get_array()[indices[i]]; }
  int AttemptOf(std::size_t i) const { return attempts.empty() ? 1 : attempts[i]; }
  std::size_t IndexOf(std::size_t i) const { return map_indices.empty() ? indices[i] : map_indices[i]; }
  std::string IdOf(std::size_t i) const { return map_id + "." + std::to_string(IndexOf(i)); }
  // Element `i` as an execution of its own.
  Execution ExecutionOf(std::size_t i) const;
};

// What a batch reports: its first ran() elements ran, in order, and the rest did not.
// A map's result is one JSON list, so each outcome is kept as the value it takes
// there (a binary one as {"content_type", "base64"}), which an executor makes on its
// own thread rather than the map's.
struct BatchOutcome {
  boost::json::array values;  // Per element that ran: its result, null where it failed.
  // The failed ones: position in the batch (ascending) and error.
  std::vector<std::pair<std::size_t, JobError>> errors;

  std::size_t ran() const { return values.size(); }
  // Appends the next element's outcome.
  void Add(Result outcome);
  void Fail(JobError error) {
    errors.emplace_back(values.size(), std::move(error));
    values.emplace_back(nullptr);
  }
};

// The persistent workers of a process task, as GET /v1/tasks and /healthz show them.
struct WorkerStatus {
  int configured = 0;         // Processes the task keeps.
  int starting = 0;           // Started, not yet ready (or waiting to be restarted).
  int idle = 0;               // Ready, without a job.
  int busy = 0;               // Running a job or a batch.
  std::int64_t started = 0;   // Processes spawned since the server started.
  std::int64_t restarts = 0;  // Of those, replacements after an unexpected exit.
  // Each process now, in slot order (a slot waiting to restart has none).
  struct Process {
    int pid = 0;
    std::string state;      // "starting", "idle", "busy" or "stopping".
    std::int64_t jobs = 0;  // Jobs it has served (each element of a map counts).
  };
  std::vector<Process> processes;
  std::vector<std::string> features;  // What the last ready worker announced.
  // Of the last unexpected exit: how it ended ("exited with status 3") and the last
  // of its stderr. Empty until one.
  std::string last_exit;
  std::string stderr_tail;
  // What the last worker that could not start said (a "fatal" message).
  std::optional<JobError> last_error;
  // Non-empty while the workers crash-loop (they fail to start, or die during job
  // after job): why, for /healthz.
  std::string trouble;
};

// Called exactly once per Start, from any thread.
using ExecutionDone = std::function<void(Result)>;

// Called exactly once per StartBatch, from any thread.
using BatchDone = std::function<void(BatchOutcome)>;

// Implementations are thread-safe. The destructor returns only once none of the
// executor's callbacks can run any more (what is still running is stopped or waited
// for): its owner may then destroy what the callbacks touch.
class Executor {
 public:
  virtual ~Executor() = default;
  // Must not block: long work happens elsewhere.
  virtual void Start(Execution exec, ExecutionDone done) = 0;
  // Runs the batch's elements one after another. The default runs each through
  // Start; an executor whose hand-off costs more than a tiny execution (a thread
  // pool, a pipe) runs the whole batch in one go. REQUIRES: batch.size() > 0.
  virtual void StartBatch(Batch batch, BatchDone done);
  // For an executor with persistent workers, their state; std::nullopt otherwise.
  virtual std::optional<WorkerStatus> Workers() const { return std::nullopt; }
};

// How one configured task runs, as the service receives it.
struct TaskExecutor {
  std::unique_ptr<Executor> executor;
  // Of its results: the task's content_type, else its handler's, else JSON.
  std::string content_type = "application/json";
  // Checks an input before the job is accepted; empty for every process task, and
  // for a handler registered without one.
  InputValidator validate;
};

// Task name -> how it runs; one entry per [tasks.NAME].
using TaskExecutors = std::map<std::string, TaskExecutor>;

}  // namespace offload
