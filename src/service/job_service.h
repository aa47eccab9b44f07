// JobService: the life of a job, from submit to result. It ties the store, the
// scheduler and the executors together and is the only thing the HTTP layer talks to.
//
// Threads and locks: every public method is thread-safe. mu_ guards the active jobs
// (queued, running, or finished but not yet durable), the scheduler, the waiters and
// the idempotency keys; it is held for bookkeeping only, never across a handler
// call, a wait, disk or network I/O (it is taken before the timer queue's lock). Store writes are queued on a StoreQueue while mu_
// is held — so the store sees state changes in the order they happened — and applied
// by the writer thread for SQLite, or at once for the memory store (a map update, no
// I/O). Callbacks are always
// invoked with mu_ released, on the calling thread, a store thread or the thread that
// finished the job. One timer thread (timers_) handles timeouts, retry back-off,
// final-write retries and retention; every timer of an attempt is cancelled when the
// attempt ends.
//
// A job enters active_ once its insert is durable (so a 202 is never sent for a job
// that is not stored) and leaves it once its final state is durable; waiters are
// answered then. A final write the store refuses (a full disk) keeps the job in
// active_ — its state there stays the truth for GET — and is written again with
// back-off until the store takes it; meanwhile the service is degraded and starts
// no new work, so a crash cannot run again more than what had already run.
//
// A parallel map is one parent job whose elements run as executions of its task,
// dispatched in chunks. Only the parent is stored; its elements' outcomes are kept
// in memory (MapState) until the parent finishes with the ordered list. After each
// chunk is dispatched the parent goes back to the end of its priority class in the
// scheduler, so a map takes turns with the jobs of equal priority that wait for the
// same resources instead of holding them until its last element.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "exec/executor.h"
#include "sched/scheduler.h"
#include "store/store.h"
#include "store/store_queue.h"
#include "util/timer_queue.h"

namespace offload {

// How far a map has got; live while the map is active.
struct MapCounts {
  std::size_t total = 0;
  std::size_t done = 0;     // Elements with a final outcome (succeeded or failed).
  std::size_t failed = 0;   // Of those, the failed ones.
  std::size_t running = 0;  // Elements dispatched and not yet reported.
};

// A job as the API shows it: the record plus live facts only the service knows.
struct JobSnapshot {
  JobRecord record;
  std::optional<std::size_t> position;  // Set while queued.
  // Set when Submit returned an earlier job for a repeated Idempotency-Key.
  bool replayed = false;
  std::optional<MapCounts> map = std::nullopt;  // Set for an active map.
};

struct SubmitRequest {
  std::string task;
  boost::json::value input;
  int priority = 0;
  std::string idempotency_key;  // Empty: none.
  Millis timeout{0};            // The job's own timeout; 0: the task's. Capped by the task's.
  // Set for a parallel map: `input` is then the array of elements.
  std::optional<MapSpec> map;
};

// Why a job is canceled: each gives the job its own error.type and message.
enum class CancelCause {
  kRequest,     // DELETE /v1/jobs/{id}: error.type "canceled".
  kClientGone,  // The client of POST /v1/tasks/NAME/run disconnected: "client_disconnected".
  kRunTimeout,  // POST /v1/tasks/NAME/run waited run_timeout: "run_timeout".
  kShutdown,    // The server shut down while POST /v1/tasks/NAME/run waited: "shutdown".
};

// Whether the store takes the service's writes (GET /healthz).
struct StoreHealth {
  // Finished jobs whose final state the store refused; they are written again with
  // back-off, and no new job starts while there are any.
  std::size_t unstored_finals = 0;
  std::string last_error;  // The store's last refusal; empty when none since start.
};

struct TaskInfo {
  std::string name;
  std::string run;
  std::map<std::string, std::int64_t> uses;
  std::string content_type;
  std::int64_t max_queued = 0;
  std::size_t queued = 0;
  Millis timeout{0};
};

struct ResourceInfo {
  std::string name;
  std::int64_t capacity = 0;
  std::int64_t in_use = 0;
  std::int64_t queued_demand = 0;
};

class JobService {
 public:
  using SnapshotCallback = std::function<void(ErrorOr<JobSnapshot>)>;
  using PageCallback = std::function<void(ErrorOr<std::vector<JobSnapshot>>, std::optional<std::uint64_t>)>;
  using WaitTicket = std::uint64_t;

  // Takes the executors (MakeTaskExecutors builds them), one for each of
  // config.tasks; kInvalidArgument when one is missing or the config is invalid.
  static ErrorOr<std::unique_ptr<JobService>> Create(const ServerConfig& config,
                                                     TaskExecutors executors,
                                                     std::unique_ptr<Store> store);
  // Cancels whatever still runs, destroys the executors (each returns once none of
  // its callbacks can run), then joins the timer thread.
  ~JobService();

  // Validates, stores and queues a job; `done` gets it once it is durable. Errors:
  // kInvalidArgument (unknown task, input the task rejects, an Idempotency-Key reused
  // with another request), kQueueFull, kUnavailable (draining, or the store failed),
  // kConflict (the first request with this Idempotency-Key is still being stored).
  void Submit(SubmitRequest request, SnapshotCallback done);
  // kNotFound for an unknown id.
  void Get(const std::string& id, SnapshotCallback done);
  // Cancels a queued or running job. kConflict when it had finished already.
  void Cancel(const std::string& id, CancelCause cause, SnapshotCallback done);
  void Cancel(const std::string& id, SnapshotCallback done) { Cancel(id, CancelCause::kRequest, std::move(done)); }
  // Newest first; the second argument is the cursor for the next page.
  void List(const JobQuery& query, PageCallback done);

  // If job `id` is queued or running, or finished with its final write still in
  // flight, registers `on_finish` to receive its final snapshot once that write is
  // durable, and returns a non-zero ticket. Returns 0 when the job is not active
  // (finished and stored, or unknown): use Get.
  WaitTicket AwaitFinish(const std::string& id, std::function<void(JobSnapshot)> on_finish);
  // Removes a waiter. Returns false when it already fired (or is firing).
  bool CancelAwait(const std::string& id, WaitTicket ticket);

  std::vector<TaskInfo> Tasks() const;
  std::vector<ResourceInfo> Resources() const;
  bool HasTask(const std::string& name) const { return tasks_.count(name) > 0; }
  // Jobs held in memory: queued, running, or with their final write in flight.
  std::size_t active_jobs() const;

  // Shutdown, in order: BeginDrain (refuse submits, start nothing new),
  // WaitForIdle (running jobs finish), CancelAll (the rest are stopped; waiters are
  // answered), WaitForIdle again.
  void BeginDrain();
  bool draining() const;
  StoreHealth store_health() const;
  // Returns true when no job is running, waiting at most `timeout`.
  bool WaitForIdle(Millis timeout);
  void CancelAll();
  // Returns true when every finished job's final state is in the store, waiting at
  // most `timeout` for refused ones to be taken on a retry.
  bool WaitForFinalWrites(Millis timeout);

  // Deletes finished jobs older than the retention period. Runs periodically on the
  // timer thread; public for tests.
  void RemoveExpiredForTest() { RemoveExpired(); }
  // Blocks until every store write queued so far is applied.
  void FlushStoreForTest() { store_queue_->Flush(); }
  // Timers pending: retention's, plus one per attempt in flight or in back-off and
  // per refused final write waiting to be tried again.
  std::size_t PendingTimersForTest() const { return timers_->pending(); }

 private:
  struct TaskRuntime;
  struct ActiveJob;
  struct MapState;
  struct MapChunk;
  struct Waiter {
    WaitTicket ticket;
    std::function<void(JobSnapshot)> fn;
  };
  struct IdempotencyRecord {
    std::string job_id;
    std::uint64_t request_hash = 0;
    UnixMillis created_at = 0;
    bool stored = false;  // False while the first request's insert is in flight.
  };
  // What a locked section hands back to run once mu_ is released.
  struct Deferred {
    std::vector<ActiveJob*> started;
    std::vector<std::shared_ptr<MapChunk>> chunks;
  };

  JobService(const ServerConfig& config, std::unique_ptr<Store> store);

  ErrorOr<bool> Recover();
  void OnInserted(std::unique_ptr<ActiveJob> job, ErrorOr<bool> stored, SnapshotCallback done);
  void DispatchLocked(Deferred* out);
  void StartLocked(ActiveJob* job, Deferred* out);
  void EnqueueLocked(ActiveJob* job);
  void StartChunkLocked(ActiveJob* job, Deferred* out);
  std::size_t ChunkSizeLocked(const ActiveJob& job) const;
  void OnChunkDone(const std::shared_ptr<MapChunk>& chunk, std::vector<std::optional<Result>> outcomes);
  void StopMapLocked(ActiveJob* job, StopReason reason);
  void OnElementRetryDue(const std::string& id, std::size_t index);
  static bool Executing(const ActiveJob& job);
  void FinishLocked(ActiveJob* job);
  void WriteFinalLocked(ActiveJob* job);
  void OnFinishDurable(const std::string& id);
  void OnFinalWriteFailed(const std::string& id, const Error& error);
  void OnFinalWriteRetryDue(const std::string& id);
  void WriteLocked(const JobRecord& rec);
  JobSnapshot SnapshotLocked(const ActiveJob& job) const;
  void RunDeferred(Deferred deferred);
  void OnExecutionDone(ActiveJob* job, Result outcome);
  void OnTimeout(const std::string& id, int attempt);
  static Millis EffectiveTimeout(const ActiveJob& job);
  void OnRetryDue(const std::string& id, int attempt);
  void StoreGet(const std::string& id, std::function<void(ErrorOr<std::optional<JobRecord>>)> done);
  void ScheduleRetention();
  void RemoveExpired();

  // Constant after construction.
  const ServerConfig config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StoreQueue> store_queue_;
  std::unordered_map<std::string, std::unique_ptr<TaskRuntime>> tasks_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // Signalled when running_ drops to 0.
  Scheduler<ActiveJob*> scheduler_;  // guarded by mu_
  std::unordered_map<std::string, std::unique_ptr<ActiveJob>> active_;  // guarded by mu_
  std::uint64_t next_seq_ = 0;      // guarded by mu_
  std::uint64_t next_ticket_ = 0;   // guarded by mu_
  std::size_t running_ = 0;         // guarded by mu_
  bool draining_ = false;           // guarded by mu_
  bool stopping_ = false;            // guarded by mu_; the destructor has begun
  std::size_t unstored_finals_ = 0;  // guarded by mu_; see StoreHealth
  std::string store_error_;          // guarded by mu_
  // "task\0key" -> the job it created; pruned after idempotency_ttl.
  std::unordered_map<std::string, IdempotencyRecord> idempotency_;  // guarded by mu_

  // Timeouts, back-off, final-write retries and retention.
  std::unique_ptr<TimerQueue> timers_;
};

}  // namespace offload
