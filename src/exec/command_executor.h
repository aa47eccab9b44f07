// CommandExecutor: runs a `command` task, one child process per job.
//
// The job's input is written to the child's stdin as one line of JSON, then stdin is
// closed — or, for a job that came with a file (unless input_as_path), the file is
// the child's stdin. Everything the child writes to stdout is the result (JSON when
// the task's content type is JSON, raw bytes otherwise), unless it wrote the file
// named by OFFLOAD_RESULT_PATH, which then is; exit status 0 means success. A binary
// stdout longer than max_memory_result goes to a file as it arrives. A non-zero
// exit or a signal fails the job with the status and the last 4 KiB of stderr. A stop
// (DELETE, timeout, shutdown) terminates the child's process group: SIGTERM, then
// SIGKILL after kill_grace. The execution reports done only once the child has been
// reaped, so the job's resources are never released while it still runs.
//
// Threads: Start may be called from any thread (it posts to the supervisor's loop,
// where everything else happens). The destructor kills what still runs and waits for
// it; REQUIRES: not called on the supervisor thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include "config/defaults.h"
#include "exec/executor.h"
#include "exec/process.h"
#include "exec/process_supervisor.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

struct CommandOptions {
  std::string task;  // For messages and logs.
  SpawnOptions spawn;
  // "application/json": stdout is parsed as JSON (empty stdout is null); else the
  // bytes are the result as they are.
  std::string content_type = "application/json";
  // Between SIGTERM and SIGKILL when a job is stopped.
  std::chrono::milliseconds kill_grace{kDefaultKillGrace};
  // Stdout beyond this many bytes fails the job (and stops the child).
  std::int64_t max_result = kDefaultMaxResult;
  // A job's file reaches the child as a path (OFFLOAD_INPUT_PATH) with the JSON input
  // on stdin, rather than as stdin.
  bool input_as_path = false;
  // A binary stdout past this many bytes is written to a file beside the result path
  // rather than held in memory.
  std::int64_t max_memory_result = kDefaultMaxMemoryResult;
};

class CommandExecutor final : public Executor {
 public:
  CommandExecutor(std::shared_ptr<ProcessSupervisor> supervisor, CommandOptions options);
  ~CommandExecutor() override;

  void Start(Execution exec, ExecutionDone done) override;

 private:
  struct Run;
  // What every execution shares; outlives the executor if a straggler needs it.
  struct Shared {
    // Not owned: a run may be released last on the supervisor's own thread, which
    // must never be where the supervisor is destroyed.
    ProcessSupervisor* supervisor = nullptr;
    CommandOptions options;
    // Counts executions for the destructor, which waits on cv for live == 0. Held
    // only to read or change the two fields below, never while calling out.
    Mutex mu;
    CondVar cv;
    std::int64_t live GUARDED_BY(mu) = 0;  // Executions not yet done.
    bool closing GUARDED_BY(mu) = false;
    std::unordered_set<Run*> running;  // Supervisor thread only.
  };
  static void Begin(const std::shared_ptr<Run>& run);
  static void Finish(const std::shared_ptr<Run>& run, Result outcome);

  std::shared_ptr<ProcessSupervisor> supervisor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace offload
