// JobService: the life of a job, from submit to result. It ties the store, the
// scheduler and the executors together and is the only thing the HTTP layer talks to.
// It is the coordinator of parts that each run under its one mutex and know nothing
// of threads: the Scheduler (who runs next), the lifecycle (job_lifecycle.h: the one
// place a status changes), MapRun (a parallel map's elements), the
// IdempotencyCache, and one AttemptTimer per job.
//
// Threads and locks: every public method is thread-safe. mu_ guards the active jobs
// (queued, running, or finished but not yet durable), the scheduler, the waiters and
// the idempotency keys; it is held for bookkeeping only, never across a handler
// call, a wait, disk or network I/O, a callback or a log call (it is taken before
// the timer queue's and the store queue's locks). The one callback run under it is a
// RunContext's stop hook, which only hands the stop over (run_context.h). Store writes are queued on the
// StoreQueue while mu_ is held — so the store sees state changes in the order they
// happened — and their callbacks run once mu_ is released. Executions a locked
// section starts are launched once mu_ is released (Launches). Callbacks are
// invoked on the calling thread, a store thread, the timer thread or the thread
// that finished the job. One timer thread (timers_) handles timeouts, retry
// back-off, final-write retries and retention.
//
// A job enters active_ once its insert is durable (so a 202 is never sent for a job
// that is not stored) and leaves it once its final state is durable; waiters are
// answered then. A final write the store refuses (a full disk) keeps the job in
// active_ — its state there stays the truth for GET — and is written again with
// back-off until the store takes it; meanwhile the service is degraded and starts
// no new work, so a crash cannot run again more than what had already run.
//
// On a PostgreSQL store the service is one node of a cluster (docs/cluster.md;
// job_service_cluster.cc). A submit only inserts the job, queued; a claimer thread
// claims what this node can start now (cluster/cluster_tables.h) and adopts it into
// active_, from where it runs as any job does. Every write of a claimed job names the
// claim (StoreOp::claimant): once the job is no longer this node's (canceled from
// another node, rescued after a lost lease) its writes are refused, and the job is
// released: stopped, and dropped from active_ without a write. A retry goes back to
// the shared queue with its back-off (run_after), for any node to take. Waiters for a
// job not held here wait on the shared store: woken by the node that finished it
// (NOTIFY), or by a poll each second.
//
// A parallel map is one parent job whose elements run as executions of its task,
// dispatched in chunks. Only the parent is stored; its elements' outcomes are kept
// in memory (MapRun) until the parent finishes with the ordered list. After each
// chunk is dispatched the parent goes back to the end of its priority class in the
// scheduler, so a map takes turns with the jobs of equal priority that wait for the
// same resources instead of holding them until its last element.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cluster/cluster_tables.h"
#include "config/config.h"
#include "exec/executor.h"
#include "files/file_store.h"
#include "files/upload_file.h"
#include "metrics/metrics_text.h"
#include "sched/scheduler.h"
#include "service/idempotency_cache.h"
#include "service/job_event_log.h"
#include "service/map_run.h"
#include "store/store.h"
#include "store/store_queue.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"
#include "util/thread_pool.h"
#include "util/timer_queue.h"

namespace offload {

class ClusterNode;

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
  // Uploads received for the job (a binary body, multipart files), finished. They are
  // removed if the job is not accepted.
  std::vector<IncomingFile> files;
  std::string retry_of;  // Set by Retry: the job this one retries.
  // Who submits it (JobRecord::tenant); its Idempotency-Key is this tenant's.
  std::string tenant;
};

// Why a job is canceled: each gives the job its own error.type and message.
enum class CancelCause {
  kRequest,     // DELETE /v1/jobs/{id}: error.type "canceled".
  kClientGone,  // The client of POST /v1/tasks/NAME/run disconnected: "client_disconnected".
  kRunTimeout,  // POST /v1/tasks/NAME/run waited run_timeout: "run_timeout".
  kShutdown,    // The server shut down while POST /v1/tasks/NAME/run waited: "shutdown".
};

// The error of a job of task `task` canceled for `cause`.
JobError CancelError(CancelCause cause, const std::string& task, Millis run_timeout);

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
  std::int64_t running = 0;  // Executions on this node (a map's chunks count one each).
  Millis timeout{0};
  std::optional<WorkerStatus> workers;  // For a task with persistent workers.
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
  // Jobs are stamped and expired by `clock`, which must outlive the service. Jobs'
  // files live in `files`; without one, in a temporary folder removed at the end.
  static ErrorOr<std::unique_ptr<JobService>> Create(const ServerConfig& config, TaskExecutors executors,
                                                     std::unique_ptr<Store> store,
                                                     const WallClock& clock = SystemClock(),
                                                     std::unique_ptr<FileStore> files = nullptr);
  // Cancels whatever still runs, destroys the executors (each returns once none of
  // its callbacks can run), then joins the timer thread.
  ~JobService();

  // Validates, stores and queues a job; `done` gets it once it is durable (for a job
  // with files, on another thread, once they are synced). Errors:
  // kInvalidArgument (unknown task, input the task rejects, an Idempotency-Key reused
  // with another request), kQueueFull, kUnavailable (draining, or the store failed),
  // kConflict (the first request with this Idempotency-Key is still being stored).
  void Submit(SubmitRequest request, const SnapshotCallback& done);
  // kNotFound for an unknown id.
  void Get(const std::string& id, SnapshotCallback done);
  // Cancels a queued or running job. kConflict when it had finished already.
  void Cancel(const std::string& id, CancelCause cause, SnapshotCallback done);
  void Cancel(const std::string& id, SnapshotCallback done) { Cancel(id, CancelCause::kRequest, std::move(done)); }
  // Newest first; the second argument is the cursor for the next page.
  void List(const JobQuery& query, PageCallback done);

  // Bulk operations (job_service_bulk.cc). The submit that runs job `old`, which
  // failed or was canceled, again: its task, input, priority, timeout and map, naming
  // it in retry_of, and the idempotency key "retry-of:ID" (so that a retry of a retry
  // whose answer was lost, or a button pressed twice, runs it once). kConflict for a
  // job in another state, or one that came with files (they are not kept for another
  // run).
  static ErrorOr<SubmitRequest> RetryOf(const JobRecord& old);
  // Cancels every job, cluster-wide, that is queued or running (`status`: only those
  // of that status), of task `task` (empty: any) and of `tenant` (unset: any). `done`
  // gets how many it canceled, or kUnavailable when a drain began first (the sweep
  // stops there).
  void CancelMatching(const std::string& task, std::optional<JobStatus> status, std::optional<std::string> tenant,
                      std::function<void(ErrorOr<std::size_t>)> done);

  // If job `id` is queued or running, or finished with its final write still in
  // flight, registers `on_finish` to receive its final snapshot once that write is
  // durable, and returns a non-zero ticket. Returns 0 when the job is not active
  // (finished and stored, or unknown): use Get.
  // In a cluster a job held by another node is waited for too, and `on_finish` may
  // then get an error (kNotFound for an id no node knows).
  WaitTicket AwaitFinish(const std::string& id, SnapshotCallback on_finish);
  // Removes a waiter. Returns false when it already fired (or is firing).
  bool CancelAwait(const std::string& id, WaitTicket ticket);

  // Reads the jobs' status changes (JobEventLog::Subscribe), cluster-wide.
  std::unique_ptr<JobEventLog::Subscription> SubscribeEvents(JobEventFilter filter, std::string_view last_event_id);

  std::vector<TaskInfo> Tasks() const;
  // Appends the service's series for GET /metrics (job_service_metrics.cc): jobs by
  // task and status, resources, workers, the store's writes, the event streams.
  void WriteMetrics(MetricsText* out) const LOCKS_EXCLUDED(mu_);
  // The config of task `name`; nullptr when there is none.
  const TaskConfig* FindTask(const std::string& name) const;
  // Where jobs' files are: an upload is received into files().NewUpload().
  FileStore& files() const { return *files_; }
  std::vector<ResourceInfo> Resources() const;
  // Each tenant's weight and quotas (config/tokens_file.h), at start and on SIGHUP; a
  // tenant not named has weight 1 and no quotas. Takes effect for the next start.
  void SetTenantPolicies(std::map<std::string, TenantPolicy> policies) LOCKS_EXCLUDED(mu_);
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

  // Deletes finished jobs older than the retention period, and idempotency keys past
  // their ttl. Runs periodically on the timer thread; public for tests.
  void RemoveExpired();
  // Timers pending: retention's, plus one per attempt in flight or in back-off and
  // per refused final write waiting to be tried again.
  std::size_t PendingTimersForTest() const { return timers_->pending(); }
  // Blocks until every store write queued so far is applied.
  void FlushStoreForTest() { store_queue_->WaitForWrites(); }

 private:
  struct TaskRuntime;
  struct ActiveJob;
  class CancelSweep;
  struct MapChunk;
  struct Waiter {
    WaitTicket ticket;
    SnapshotCallback fn;
  };
  // A tenant the service has seen (a job's JobRecord::tenant, not empty).
  struct TenantState {
    int sched = 0;  // Its index in the scheduler.
    std::int64_t max_queued = 0;
    std::int64_t pending_inserts = 0;  // Outside a cluster: its submits whose insert is in flight.
  };
  // The executions a locked section started: they are handed to their executors
  // once mu_ is released (Launch), since an executor may run them inline.
  struct Launches {
    struct Single {
      Executor* executor;
      Execution exec;
      ActiveJob* job;  // Stays in active_ until its outcome is reported.
    };
    std::vector<Single> singles;
    std::vector<std::shared_ptr<MapChunk>> chunks;
  };

  JobService(const ServerConfig& config, std::unique_ptr<Store> store, const WallClock& clock,
             std::unique_ptr<FileStore> files);

  Status Recover() LOCKS_EXCLUDED(mu_);
  // The rest of Submit once the request is valid (and its files, if any, are in the
  // job's folder `named_id`): idempotency, queue room, the insert.
  void Admit(SubmitRequest request, TaskRuntime* task, std::uint64_t request_hash, std::string named_id,
             std::vector<JobFile> files, const SnapshotCallback& done) LOCKS_EXCLUDED(mu_);
  void OnInserted(std::unique_ptr<ActiveJob> job, const Status& stored, const SnapshotCallback& done)
      LOCKS_EXCLUDED(mu_);
  // Starts what the scheduler lets start now.
  void DispatchLocked(Launches* out) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartLocked(ActiveJob* job, Launches* out) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartChunkLocked(ActiveJob* job, Launches* out) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueueLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnqueueLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the job to `to` (job_lifecycle.h) and queues the store write; a final
  // status also cancels its timer and answers its waiters once the write is durable.
  void MoveLocked(ActiveJob* job, JobStatus to, std::optional<JobError> error = std::nullopt)
      EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Launch(Launches launches) LOCKS_EXCLUDED(mu_);
  // Places the result first (files/result_placement.h), on file_work_ when that
  // means file I/O, then finishes the execution.
  void OnExecutionDone(ActiveJob* job, Result outcome) LOCKS_EXCLUDED(mu_);
  void FinishExecution(ActiveJob* job, const Result& outcome) LOCKS_EXCLUDED(mu_);
  void OnChunkDone(const std::shared_ptr<MapChunk>& chunk, BatchOutcome outcome) LOCKS_EXCLUDED(mu_);
  void StopMapLocked(ActiveJob* job, StopReason reason) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnElementRetryDue(const std::string& id, std::size_t index) LOCKS_EXCLUDED(mu_);
  void OnTimeout(const std::string& id, int attempt) LOCKS_EXCLUDED(mu_);
  // The timer of a chunk fired; `bound` is its timeout.
  void OnChunkTimeout(const std::weak_ptr<MapChunk>& chunk, Millis bound) LOCKS_EXCLUDED(mu_);
  void OnRetryDue(const std::string& id, int attempt) LOCKS_EXCLUDED(mu_);
  // Queues the write of the job's record as it is now (with its claim, in a cluster).
  void WriteLocked(const ActiveJob& job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteFinalLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFinishDurable(const std::string& id) LOCKS_EXCLUDED(mu_);
  // `adoption`: the claim of the job the write was for (ActiveJob::adoption; 0 outside
  // a cluster): a callback of an earlier claim of the same job is ignored.
  void OnFinalWriteFailed(const std::string& id, std::uint64_t adoption, const Error& error) LOCKS_EXCLUDED(mu_);
  void OnFinalWriteRetryDue(const std::string& id, std::uint64_t adoption) LOCKS_EXCLUDED(mu_);
  JobSnapshot SnapshotLocked(const ActiveJob& job) const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The tenant's state, made (with its policy) when first seen; nullptr for "" (no
  // [auth]: the one tenant, index 0, without quotas).
  TenantState* TenantLocked(const std::string& tenant) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int TenantIndexLocked(const std::string& tenant) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyPolicyLocked(const std::string& name, TenantState* tenant) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Jobs of `task` waiting to start (in a cluster, the cluster's queue as last counted),
  // and each resource's capacity and use: what Tasks, Resources and WriteMetrics show.
  std::size_t QueuedLocked(const TaskRuntime& task) const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<ResourceInfo> ResourcesLocked() const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static bool Executing(const ActiveJob& job);
  static Millis EffectiveTimeout(const ActiveJob& job);
  void StoreGet(const std::string& id, std::function<void(ErrorOr<std::optional<JobRecord>>)> done);
  void ScheduleRetention();

  // The cluster (job_service_cluster.cc). Joins it and starts the claimer.
  Status JoinCluster(const std::string& conninfo) LOCKS_EXCLUDED(mu_);
  void ClaimLoop() LOCKS_EXCLUDED(mu_);
  void WakeClaimerLocked() EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Adopt(const NodeIdentity& claim, ClaimedWork work) LOCKS_EXCLUDED(mu_);
  // A job interrupted on its node moves on as its task's retries say: queued again, or
  // failed `interrupted` with `why`.
  void Interrupt(JobRecord* job, UnixMillis now, std::string why) const;
  // On the claimer thread: the jobs running under this node's claim that it does not
  // hold (a claim whose answer was lost, a final write refused) are interrupted.
  void RescueUnheld() LOCKS_EXCLUDED(mu_);
  // Claim-ahead (docs/cluster.md): how many jobs of `task` to claim ahead of a free
  // slot now; the job, claimed here, starts or leaves the local queue; how long an
  // execution held its slot; jobs claimed ahead that still wait go back to the
  // cluster's queue.
  std::size_t AheadWantedLocked(const TaskRuntime& task) const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndClaimWaitLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimeSlotLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandBackUnstarted(const std::vector<std::pair<std::string, std::uint64_t>>& jobs) LOCKS_EXCLUDED(mu_);
  // Each second, on a store reader thread: waited-for jobs that finished elsewhere,
  // held jobs that are no longer this node's, and work the notifications missed.
  void PollCluster() LOCKS_EXCLUDED(mu_);
  void PollClusterSoon() LOCKS_EXCLUDED(mu_);
  void ScheduleClusterPoll();
  // Answers the waiters of those of `ids` that are finished (or unknown) in the
  // store. Blocks on the store: call it on a store reader thread.
  void AnswerRemoteWaiters(const std::vector<std::string>& ids) LOCKS_EXCLUDED(mu_);
  void AnswerRemoteWaitersSoon(std::vector<std::string> ids) LOCKS_EXCLUDED(mu_);
  // The jobs are no longer this node's: stopped and dropped, their waiters left to
  // wait on the store. Each names its adoption (ActiveJob::adoption), or 0 for any.
  void ReleaseJobs(const std::vector<std::pair<std::string, std::uint64_t>>& jobs) LOCKS_EXCLUDED(mu_);
  void ReleaseLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnLeaseLost(const NodeIdentity& lost) LOCKS_EXCLUDED(mu_);
  // A write naming the job's claim was refused.
  void OnFenced(const std::string& id, std::uint64_t adoption) LOCKS_EXCLUDED(mu_);
  void CancelElsewhere(const std::string& id, CancelCause cause, SnapshotCallback done);
  // The insert of `job` found its Idempotency-Key held by another job in the store
  // (submitted on another node): that job is the answer, or, if its key's ttl is
  // over, the key is taken from it and the insert made again.
  void OnKeyTaken(std::unique_ptr<ActiveJob> job, const SnapshotCallback& done) LOCKS_EXCLUDED(mu_);
  // Maps across nodes (job_service_chunks.cc, docs/cluster.md). After a map's fold:
  // what its outcome makes of the map, then ShareMapLocked. That offers chunks of a
  // map held here to the other nodes while it has more left than its slots here
  // start soon, and takes back the offers no node claimed once nothing is left to
  // start here.
  void AfterFoldLocked(ActiveJob* job, MapRun::Folded folded) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ShareMapLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WithdrawOffersLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The map ended: its offers go.
  void DropOffersLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Folds in the chunks of maps `ids` that other nodes finished.
  void CollectChunksSoon(const std::vector<std::string>& ids) LOCKS_EXCLUDED(mu_);
  void CollectChunks(const std::string& id, std::uint64_t adoption) LOCKS_EXCLUDED(mu_);
  // Chunks of other nodes' maps claimed here: queued for a slot like any execution.
  // Returns the maps they are of, whose owners are to be told.
  std::vector<std::string> AdoptChunksLocked(const NodeIdentity& claim, std::vector<ClaimedChunk> chunks)
      EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Those of chunks `seqs` claimed here that still wait for a slot go back to the
  // cluster (a job running long here, a drain, a store that refuses final writes).
  void HandBackChunks(const std::vector<std::uint64_t>& seqs) LOCKS_EXCLUDED(mu_);
  // A chunk run here for another node's map reported: its outcome goes to its row.
  void FinishRemoteChunkLocked(ActiveJob* run, ChunkOutcome outcome) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops (or unqueues) the chunks run here that `drop` picks; nothing of them is written.
  void DropRemoteRunsLocked(const std::function<bool(const ActiveJob&)>& drop) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropRemoteRuns(const std::function<bool(const ActiveJob&)>& drop) LOCKS_EXCLUDED(mu_);
  // On the claimer thread: chunks running under this node's claim that it does not
  // run are offered again; those it runs that are no longer its are dropped.
  void ReconcileChunks() LOCKS_EXCLUDED(mu_);
  // A write of chunk `seq`'s row (its outcome, or its hand-back) ended.
  void EndChunkWriteLocked(std::uint64_t seq) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes `job` from where it is held: active_, or remote_runs_ for a chunk run here.
  void ForgetLocked(ActiveJob* job) EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Events (job_service_events.cc). The job's status changed to what `rec` says:
  // counted for /metrics (TaskMetrics) and published to the event streams.
  void NoteStatusLocked(const JobRecord& rec) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnEventsFromElsewhere(const std::vector<std::string>& events);
  void OnEventsWanted();
  // With subscribers here, every few seconds: asks the other nodes for their events.
  void AskForEventsIfWatched() LOCKS_EXCLUDED(mu_);

  // A retry's attempt failed: the job goes back to the shared queue after `delay`.
  void HandBackLocked(ActiveJob* job, JobError failure, Millis delay) EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const ServerConfig config_;
  const WallClock& clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StoreQueue> store_queue_;
  std::unique_ptr<FileStore> files_;
  // Moves, hashes and syncs result files, off the executors' threads.
  std::unique_ptr<ThreadPool> file_work_;
  // Syncs and commits uploads (Submit of a job with files), off the I/O threads.
  std::unique_ptr<ThreadPool> commit_work_;
  std::unordered_map<std::string, std::unique_ptr<TaskRuntime>> tasks_;
  // In a cluster: whether this node runs jobs (role "all" or "worker"), its id, and
  // the tasks it claims, with what one of their jobs holds.
  bool clustered_ = false;
  bool runs_jobs_ = true;
  std::string node_id_;
  std::vector<std::pair<std::string, ResourceDemand>> claim_tasks_;
  // Timeouts, back-off, final-write retries and retention. Declared before the jobs
  // so that it outlives their timers.
  std::unique_ptr<TimerQueue> timers_;

  // The status changes the event streams read. Shared: a stream's subscription keeps
  // it alive, and sessions may outlive the service.
  const std::shared_ptr<JobEventLog> events_;

  mutable Mutex mu_;
  CondVar idle_cv_;  // running_ dropped to 0, or unstored_finals_ did.
  Scheduler<ActiveJob*> scheduler_ GUARDED_BY(mu_);
  std::unordered_map<std::string, std::unique_ptr<ActiveJob>> active_ GUARDED_BY(mu_);
  std::map<std::string, TenantPolicy> tenant_policies_ GUARDED_BY(mu_);
  std::unordered_map<std::string, TenantState> tenants_ GUARDED_BY(mu_);
  IdempotencyCache idempotency_ GUARDED_BY(mu_);
  std::uint64_t next_seq_ GUARDED_BY(mu_) = 0;  // Not used in a cluster: the store numbers jobs.
  std::uint64_t next_ticket_ GUARDED_BY(mu_) = 0;
  std::size_t running_ GUARDED_BY(mu_) = 0;  // Executions (or chunks) in flight.
  bool draining_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;            // The destructor has begun.
  std::size_t unstored_finals_ GUARDED_BY(mu_) = 0;  // See StoreHealth.
  std::string store_error_ GUARDED_BY(mu_);

  // Cluster only (cluster_ is set once, in Create, before any other thread runs).
  std::unique_ptr<ClusterNode> cluster_;
  std::thread claimer_;
  CondVar claim_cv_;  // claim_wanted_ or claimer_stop_ was set.
  bool claim_wanted_ GUARDED_BY(mu_) = false;
  bool claimer_stop_ GUARDED_BY(mu_) = false;
  // Waiters of jobs not held here, by job id.
  std::unordered_map<std::string, std::vector<Waiter>> remote_waiters_ GUARDED_BY(mu_);
  // Not joined yet, or the destructor has begun: what the cluster's threads call in
  // for is ignored.
  bool cluster_closed_ GUARDED_BY(mu_) = false;
  // Claims of epochs whose lease was lost: a claim made under one is not adopted.
  std::vector<NodeIdentity> lost_claims_ GUARDED_BY(mu_);
  std::uint64_t next_adoption_ GUARDED_BY(mu_) = 0;
  bool poll_pending_ GUARDED_BY(mu_) = false;  // A PollCluster is queued or running.
  // When this node last asked the others for their events (AskForEventsIfWatched).
  std::chrono::steady_clock::time_point last_asked_for_events_ GUARDED_BY(mu_);
  // Waited-for jobs to look up, and whether a look-up is queued or running.
  std::vector<std::string> to_check_ GUARDED_BY(mu_);
  // Jobs a claim brought that go straight back to the queue (Adopt), until that write
  // lands.
  std::unordered_set<std::string> giving_back_ GUARDED_BY(mu_);
  bool check_pending_ GUARDED_BY(mu_) = false;
  // Maps across nodes: chunks of other nodes' maps run here, by seq (ActiveJob::remote);
  // those whose outcome is being written; the number of the next chunk offered from here.
  std::unordered_map<std::uint64_t, std::unique_ptr<ActiveJob>> remote_runs_ GUARDED_BY(mu_);
  std::unordered_map<std::uint64_t, int> finishing_chunks_ GUARDED_BY(mu_);  // Seq: writes in flight.
  std::int64_t next_chunk_ GUARDED_BY(mu_) = 0;
};

}  // namespace offload
