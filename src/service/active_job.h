// What JobService holds of each task and each active job: the parts of its state
// that job_service.cc and job_service_cluster.cc both work on. Guarded by the
// service's mu_ as each field says.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/attempt_timer.h"
#include "service/job_service.h"
#include "service/map_run.h"
#include "service/task_metrics.h"

namespace offload {

struct JobService::TaskRuntime {
  TaskConfig config;
  std::string content_type;
  InputValidator validate;
  std::unique_ptr<Executor> executor;
  int queue = 0;
  std::size_t parallelism = 1;      // Executions of this task that fit at once.
  bool process = false;             // Runs a program, which may write a result file.
  std::size_t pending_inserts = 0;  // Guarded by mu_: submits whose insert is in flight.
  // Guarded by mu_. In a cluster: its queued jobs, cluster-wide, as last counted (each
  // second) plus those inserted here since.
  std::int64_t cluster_queued = 0;
  // In a cluster, claim-ahead (docs/cluster.md). Constant: whether its jobs may be
  // claimed ahead of a free slot (claim_ahead is on, and it takes the whole of no
  // resource here, such as a GPU of one, whose order is strict). Guarded by mu_: its jobs claimed
  // here that have not started; how long one of its executions holds its slot, on
  // average (microseconds, weighted to the latest), and how many were timed.
  bool claims_ahead = false;
  std::size_t claimed_waiting = 0;
  double slot_us = 0;
  std::uint64_t slots_timed = 0;
  TaskMetrics metrics;  // Guarded by mu_.
};

// A job the service holds in memory. Every field but the record's id, task, input,
// priority and map spec (constant while it is active) is guarded by mu_.
struct JobService::ActiveJob {
  explicit ActiveJob(TimerQueue* timers) : attempt_timer(timers) {}

  JobRecord record;
  TaskRuntime* task = nullptr;
  std::shared_ptr<RunContext> run;  // Set while an execution is under way.
  std::vector<Waiter> waiters;
  // In a cluster: the answers to cancels made here, given once the canceled state is
  // stored, so that every node reads what the answer said.
  std::vector<SnapshotCallback> cancel_answers;
  bool in_scheduler = false;  // Queued and waiting in the scheduler (not in back-off).
  int sched_tenant = 0;       // Its tenant's index in the scheduler (TenantIndexLocked).
  // Its last start (or its map's last chunk's): what the scheduler gets back at its end.
  Scheduler<ActiveJob*>::Started started;
  bool final_durable = false;  // Its final state is in the store.
  // The running attempt's timeout, or the back-off before the next attempt.
  AttemptTimer attempt_timer;
  // Times the store refused its final state; a retry of the write is then pending.
  int final_write_failures = 0;
  // Its place among the jobs of its priority: its seq, or, for a map taking turns,
  // a fresh one after each chunk.
  std::uint64_t sched_seq = 0;
  std::unique_ptr<MapRun> map;                              // Set for the parent of a map.
  std::vector<std::shared_ptr<RunContext>> chunk_contexts;  // A map's chunks in flight.
  // In a cluster, a map held here: its chunks offered to the other nodes
  // (job_service_chunks.cc).
  struct Offers {
    std::map<std::int64_t, MapRun::Chunk> out;  // By number: offered or running elsewhere, not folded yet.
    std::size_t unclaimed = 0;                  // Of those, offered and not claimed, as last looked up.
    bool writing = false;                       // An insert of offers is in flight.
    bool collecting = false;                    // A look-up of done chunks is in flight,
    bool collect_again = false;                 // and another is wanted after it.
    bool withdrawing = false;
    bool closed = false;  // Offers were taken back once: the map's tail runs here.
    // Moves at each start and end of an insert or a withdraw: a look-up made across
    // one cannot tell a row that is not there yet from one that is gone.
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point retry_after;  // After an insert failed.
  };
  Offers offers;
  // A chunk of another node's map, claimed here: this ActiveJob is not in active_ but
  // in remote_runs_; its record is the chunk's elements as a map of their own, and
  // nothing of it is written but its outcome, to its row.
  struct RemoteChunk {
    std::uint64_t seq = 0;
    NodeIdentity claim;
    std::vector<std::size_t> indices;  // In the owner's map.
    std::vector<int> attempts;
  };
  std::unique_ptr<RemoteChunk> remote;
  // In a cluster: the claim it runs under, for the jobs this node claimed.
  std::optional<NodeIdentity> claim;
  std::uint64_t adoption = 0;                        // Which claim of it this is, on this node.
  bool claim_waiting = false;                        // Claimed here and not started yet (TaskRuntime::claimed_waiting).
  std::chrono::steady_clock::time_point slot_since;  // When its execution took its slot.
  // No longer this node's (job_service.h): nothing of it is written from here on, and
  // it leaves active_ once its execution has stopped.
  bool released = false;
  // Its attempt failed and it goes back to the shared queue: it leaves active_ once
  // that write is durable.
  bool handed_back = false;
  // Its insert met its Idempotency-Key held in the store, which was looked up.
  bool key_looked_up = false;
};

}  // namespace offload
