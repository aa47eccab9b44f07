// WorkerPool: runs a `worker` task on persistent, pre-forked worker processes that
// speak newline-delimited JSON (docs/worker-protocol.md).
//
// Life of a worker: started when the pool is built (and whenever one is replaced);
// it loads what it needs, says {"type":"ready"}, then gets one job at a time on stdin
// and answers with one result or error line on stdout (progress lines before that);
// stderr is its log. It is replaced, after the job that crossed the line, when it has
// served max_jobs_per_worker jobs or its RSS (VmRSS from /proc) exceeds max_rss. A
// stop of its job (DELETE, timeout, shutdown), output over max_result, or a crash
// ends it: its process group is terminated (SIGTERM, SIGKILL after kill_grace) and
// reaped before its job reports done, then a fresh worker takes the slot. Unexpected
// exits restart with exponential backoff, so a worker that crashes at start cannot
// spin the CPU; each such start failure fails one waiting job, so that clients learn
// why instead of waiting forever.
//
// Optional features a worker announces in its ready message (docs/worker-protocol.md):
// "batch" — a map's chunk goes to it as one message and comes back as one; without
// it, the pool feeds the chunk's elements to one worker one job message at a time.
// "cancel" — a stop (DELETE, timeout) is first a {"type":"cancel"} message: a worker
// that answers within kill_grace lives on; one that does not is stopped by signals.
// A worker that cannot start may say why in a "fatal" message first: its error is
// what the waiting job fails with, and what Workers() shows.
//
// Jobs wait in the pool's FIFO only when the scheduler lets more jobs run than there
// are ready workers (`workers` set below what the resources allow, or a worker being
// replaced).
//
// Threads: Start may be called from any thread; it posts to the supervisor's loop,
// where all state lives. The destructor stops every worker and waits for them;
// REQUIRES: not called on the supervisor thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/defaults.h"
#include "exec/executor.h"
#include "exec/process.h"
#include "exec/process_supervisor.h"

namespace offload {

struct WorkerPoolOptions {
  std::string task;  // Sent to workers in each job message; names the logs.
  SpawnOptions spawn;
  // Worker processes kept running. At least 1.
  int workers = 1;
  // "application/json": a result message's "result" is the job's JSON result; else
  // it is a string holding the bytes (base64 when the message says so).
  std::string content_type = "application/json";
  // Between SIGTERM and SIGKILL when a worker is stopped.
  std::chrono::milliseconds kill_grace{kDefaultKillGrace};
  // Replace a worker after this many jobs; 0: never.
  std::int64_t max_jobs_per_worker = 0;
  // Replace a worker whose RSS exceeds this many bytes after a job; 0: never.
  std::int64_t max_rss = 0;
  // A job whose output (the result line, or all stdout during the job) exceeds this
  // many bytes fails, and its worker is replaced.
  std::int64_t max_result = kDefaultMaxResult;
  // Restart delay after consecutive unexpected exits: backoff_initial, doubling up
  // to backoff_max. A completed job resets the count.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10'000};
};

class WorkerPool final : public Executor {
 public:
  // Starts the workers (asynchronously: the constructor does not wait for them).
  WorkerPool(std::shared_ptr<ProcessSupervisor> supervisor, WorkerPoolOptions options);
  ~WorkerPool() override;

  void Start(Execution exec, ExecutionDone done) override;
  void StartBatch(Batch batch, BatchDone done) override;
  // A snapshot, published by the loop at each change; does not wait for the loop.
  std::optional<WorkerStatus> Workers() const override;

  struct Stats {
    std::vector<pid_t> ready_pids;  // Workers that said ready and are not stopping.
    std::int64_t started = 0;       // Workers spawned so far.
    std::int64_t unexpected_exits = 0;
    std::size_t waiting_jobs = 0;
  };
  // A snapshot taken on the loop; blocks the caller briefly.
  Stats StatsForTest();

 private:
  struct Impl;
  std::shared_ptr<ProcessSupervisor> supervisor_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace offload
