#include "service/job_service.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <random>

#include "cluster/cluster_node.h"
#include "cluster/node_lease.h"
#include "config/tokens_file.h"
#include "exec/process_task.h"
#include "files/result_placement.h"
#include "offload/error_types.h"
#include "service/active_job.h"
#include "service/attempt_timer.h"
#include "service/job_lifecycle.h"
#include "util/id_generator.h"

namespace offload {

// One dispatch of a map: its elements run one after another on one slot.
struct JobService::MapChunk {
  MapChunk(ActiveJob* j, TimerQueue* timers) : job(j), timer(timers) {}

  ActiveJob* const job;  // Stays in active_ while a chunk is in flight.
  MapRun::Chunk elements;
  std::shared_ptr<RunContext> context;
  std::chrono::steady_clock::time_point dispatched;
  Scheduler<ActiveJob*>::Started started;  // What Release is handed back.
  AttemptTimer timer;                      // Its timeout.
  // What Launch hands over, made under mu_: copies of the job's id and task and of the
  // chunk's indices (at most MapRun::kMaxChunk).
  Executor* executor = nullptr;
  Batch batch;
};

namespace {

// The line each finished job leaves in the log, once its end is durable: what an
// operator greps for first.
void LogFinished(const JobRecord& j) {
  if (!spdlog::should_log(spdlog::level::info)) return;
  const UnixMillis started = j.started_at > 0 ? j.started_at : j.finished_at;
  const UnixMillis waited = std::max<UnixMillis>(started - j.created_at, 0);
  const UnixMillis ran = j.started_at > 0 ? std::max<UnixMillis>(j.finished_at - j.started_at, 0) : 0;
  if (j.error && j.status != JobStatus::kSucceeded) {
    // The message may hold a process's stderr: its line breaks must not make lines of
    // their own in the log.
    std::string message;
    for (char c : std::string_view(j.error->message).substr(0, 300)) {
      if (c == '\n') {
        message += "\\n";
      } else if (c == '\r') {
        message += "\\r";
      } else if (static_cast<unsigned char>(c) < 0x20) {
        message += ' ';
      } else {
        message += c;
      }
    }
    spdlog::info("job {} ({}) {}: waited {} ms, ran {} ms, attempt {}: {}: {}", j.id, j.task, JobStatusName(j.status),
                 waited, ran, j.attempts, j.error->type, message);
  } else {
    spdlog::info("job {} ({}) {}: waited {} ms, ran {} ms, attempt {}", j.id, j.task, JobStatusName(j.status), waited,
                 ran, j.attempts);
  }
}

// What is left of `bound` for an execution that has run `ran` (it may have waited
// for a worker to start first: that does not count); zero when it is spent.
Millis TimeLeft(Millis bound, std::chrono::nanoseconds ran) {
  const auto left = std::chrono::ceil<Millis>(bound - ran);
  return left.count() > 0 ? left : Millis(0);
}

// Maps at least this long give their memory back to the system when they end.
constexpr std::size_t kLargeMap = 10'000;

// The events a stream can fall behind by (about 4 MB), and how long they are kept
// after the last subscriber left, for a client that reconnects to resume.
constexpr std::size_t kEventLogCapacity = 16'384;
constexpr std::chrono::milliseconds kEventLogLinger{30'000};

template <typename Job>
typename Scheduler<Job*>::Key SchedKey(const Job& job) {
  return Scheduler<Job*>::MakeKey(job.record.priority, job.sched_seq, reinterpret_cast<std::uintptr_t>(&job));
}

std::vector<std::string> ResourceNames(const ServerConfig& c) {
  std::vector<std::string> names;
  for (const auto& [name, cap] : c.resources) names.push_back(name);
  return names;
}

// What tenants' shares of the resources are measured with.
double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<std::int64_t> Capacities(const ServerConfig& c) {
  std::vector<std::int64_t> caps;
  for (const auto& [name, cap] : c.resources) caps.push_back(cap);
  return caps;
}

// FNV-1a: stable across runs and builds, so stored request hashes stay comparable.
std::uint64_t HashRequest(const std::string& task, const boost::json::value& input, int priority,
                          const std::optional<MapSpec>& map, const std::vector<IncomingFile>& files) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  mix(task);
  mix(boost::json::serialize(input));
  mix(std::to_string(priority));
  if (map) mix("map " + std::to_string(map->chunk) + (map->collect ? " collect" : " fail_fast"));
  for (const IncomingFile& f : files) {
    mix(f.field);
    mix(f.content_type);
    mix(f.upload->sha256());
  }
  return h;
}

// What GET /v1/tasks shows as a task's "run": "builtin:NAME", "command: ARGV",
// "worker: ARGV" or "python: module:function".
std::string DescribeRun(const TaskConfig& t) {
  auto join = [](const char* kind, const std::vector<std::string>& argv) {
    std::string out = kind;
    for (const auto& a : argv) out += " " + a;
    return out;
  };
  if (!t.command.empty()) return join("command:", t.command);
  if (!t.worker.empty()) return join("worker:", t.worker);
  if (!t.python.empty()) return "python: " + t.python;
  return t.run;
}

// A refused final write is tried again after 50 ms, doubling up to 5 s: soon after
// the disk has room again, without spinning on a disk that stays full.
Millis FinalWriteDelay(int failures) {
  const int shift = std::clamp(failures - 1, 0, 7);
  return std::min(Millis(50) * (1 << shift), Millis(5000));
}

Millis RetryDelay(const TaskConfig& t, int failed_attempts) {
  const int shift = std::clamp(failed_attempts - 1, 0, 30);
  const double base = static_cast<double>(t.retry_backoff.count()) * static_cast<double>(1ull << shift);
  const double capped = std::min(base, static_cast<double>(t.retry_backoff_max.count()));
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return Millis(static_cast<std::int64_t>(capped * jitter(rng)));
}

bool Retryable(const JobError& failure) { return failure.type != error_type::kInvalidInput; }

}  // namespace

JobError CancelError(CancelCause cause, const std::string& task, Millis run_timeout) {
  switch (cause) {
    case CancelCause::kClientGone:
      return JobError{error_type::kClientDisconnected,
                      "the client of POST /v1/tasks/" + task + "/run closed its connection before the job finished"};
    case CancelCause::kRunTimeout:
      return JobError{error_type::kRunTimeout, "the job did not finish within run_timeout (" +
                                                   std::to_string(run_timeout.count()) + " ms) of POST /v1/tasks/" +
                                                   task + "/run; submit long jobs with POST /v1/jobs"};
    case CancelCause::kShutdown:
      return JobError{error_type::kShutdown,
                      "the server shut down before the job of POST /v1/tasks/" + task + "/run finished"};
    case CancelCause::kRequest:
      break;
  }
  return JobError{error_type::kCanceled, "canceled by a DELETE request"};
}

JobService::JobService(const ServerConfig& config, std::unique_ptr<Store> store, const WallClock& clock,
                       std::unique_ptr<FileStore> files)
    : config_(config),
      clock_(clock),
      store_(std::move(store)),
      store_queue_(StoreQueue::Create(store_.get())),
      files_(std::move(files)),
      file_work_(std::make_unique<ThreadPool>(1, /*nice_increment=*/0)),
      commit_work_(std::make_unique<ThreadPool>(2, /*nice_increment=*/0)),
      timers_(std::make_unique<TimerQueue>()),
      events_(JobEventLog::Create(kEventLogCapacity, kEventLogLinger)),
      scheduler_(Capacities(config), SteadySeconds),
      idempotency_(config.idempotency_ttl.count()) {}

ErrorOr<std::unique_ptr<JobService>> JobService::Create(const ServerConfig& config, TaskExecutors executors,
                                                        std::unique_ptr<Store> store, const WallClock& clock,
                                                        std::unique_ptr<FileStore> files) {
  // spdlog makes its registry at first use: here, on the thread that makes the
  // service, before any of the service's threads logs (a job's line). The prebuilt
  // libspdlog's guard of that static is invisible to ThreadSanitizer.
  spdlog::default_logger_raw();
  auto valid = ValidateConfig(config);
  if (!valid) return valid.error();
  if (!files) {
    auto temporary = FileStore::OpenTemporary();
    if (!temporary) return temporary.error();
    files = std::move(*temporary);
  }
  std::unique_ptr<JobService> service(new JobService(config, std::move(store), clock, std::move(files)));
  if (config.auth.enabled) {
    auto policies = TenantPolicies(config.auth, config.resources);
    if (!policies) return policies.error();
    MutexLock lock(&service->mu_);  // Not shared yet; the lock is for the analysis.
    service->tenant_policies_ = std::move(*policies);
  }
  const std::vector<std::string> names = ResourceNames(config);
  for (const auto& [name, tc] : config.tasks) {
    auto te = executors.find(name);
    if (te == executors.end() || !te->second.executor) {
      return MakeError(ErrorCode::kInvalidArgument, "task \"" + name + "\": no executor");
    }
    auto rt = std::make_unique<TaskRuntime>();
    rt->config = tc;
    rt->content_type = std::move(te->second.content_type);
    rt->validate = std::move(te->second.validate);
    rt->executor = std::move(te->second.executor);
    rt->process = IsProcessTask(tc);
    ResourceDemand demand;
    std::int64_t fit = INT64_MAX;
    for (const auto& [res, amount] : tc.uses) {
      auto idx = std::find(names.begin(), names.end(), res) - names.begin();
      demand.Add(static_cast<int>(idx), amount);
      if (amount > 0) fit = std::min(fit, config.resources.at(res) / amount);
    }
    // A task with fewer workers than its resources allow runs only that many at once.
    if (tc.workers > 0) fit = std::min(fit, tc.workers);
    rt->parallelism = static_cast<std::size_t>(std::clamp<std::int64_t>(fit, 1, 1 << 20));
    // A task that takes the whole of a resource (a GPU of one) keeps the cluster's
    // strict order on it: whichever node frees first starts the next.
    rt->claims_ahead = config.claim_ahead.count() > 0 && !tc.uses.empty();
    for (const auto& [res, amount] : tc.uses) {
      rt->claims_ahead = rt->claims_ahead && amount < config.resources.at(res);
    }
    service->claim_tasks_.emplace_back(name, demand);
    {
      MutexLock lock(&service->mu_);  // Not shared yet; the lock is for the analysis.
      rt->queue = service->scheduler_.AddQueue(std::move(demand));
    }
    service->tasks_.emplace(name, std::move(rt));
  }
  const std::optional<std::string> conninfo = PostgresConnInfo(config.store);
  // (A PostgreSQL store is blocking(): its calls run on the store queue's threads.)
  if (conninfo && service->store_->blocking()) {
    service->clustered_ = true;
    service->node_id_ = NodeIdOf(service->files_->root());
  }
  if (auto recovered = service->Recover(); !recovered) return recovered.error();
  if (service->clustered_) {
    if (auto joined = service->JoinCluster(*conninfo); !joined) return joined.error();
  }
  service->ScheduleRetention();
  return service;
}

// Runs before the service is shared: no other thread can call in yet.
Status JobService::Recover() {
  const bool clustered = clustered_;
  auto max_seq = clustered ? ErrorOr<std::uint64_t>(0) : store_->MaxSeq();
  if (!max_seq) return max_seq.error();
  // Before any job runs: what a crash left (an upload half received, files of a job
  // whose insert never committed, a result an attempt was writing) goes.
  files_->Sweep([this](const std::string& id) {
    auto job = store_->Get(id);
    return !job || job->has_value();  // When the store cannot tell, the files stay.
  });
  // In a cluster the unfinished jobs are the cluster's: those a node (this one's last
  // start too) left running are rescued once its lease is gone (cluster_tables.h).
  auto unfinished = clustered ? ErrorOr<std::vector<JobRecord>>(std::vector<JobRecord>()) : store_->LoadUnfinished();
  if (!unfinished) return unfinished.error();
  const UnixMillis now = clock_.Now();
  auto keys = store_->LoadIdempotencyKeys(now - config_.idempotency_ttl.count());
  if (!keys) return keys.error();

  Launches launches;
  std::size_t requeued = 0, interrupted = 0;
  {
    MutexLock lock(&mu_);
    next_seq_ = *max_seq;
    for (const IdempotencyEntry& e : *keys) {
      idempotency_.Put(IdempotencyScope(e.task, e.tenant), e.key,
                       IdempotencyCache::Entry{e.job_id, e.request_hash, e.created_at, true});
    }
    for (JobRecord& rec : *unfinished) {
      for (std::size_t i = 0; i < rec.files.size(); ++i) rec.files[i].path = files_->InputPath(rec.id, i);
      auto job = std::make_unique<ActiveJob>(timers_.get());
      auto task = tasks_.find(rec.task);
      job->record = std::move(rec);
      const JobRecord& r = job->record;
      ActiveJob* raw = job.get();
      active_.emplace(r.id, std::move(job));
      if (task == tasks_.end()) {
        MoveLocked(raw, JobStatus::kFailed,
                   JobError{error_type::kUnknownTask, "task \"" + r.task + "\" is no longer configured"});
        continue;
      }
      raw->task = task->second.get();
      raw->sched_seq = r.seq;
      if (r.map) {
        raw->map = std::make_unique<MapRun>(r.input->is_array() ? r.input->get_array().size() : 0, *r.map,
                                            raw->task->parallelism);
      }
      if (r.status == JobStatus::kRunning) {
        JobError lost{error_type::kInterrupted, "the server stopped while the job was running"};
        if (r.attempts <= raw->task->config.retries) {
          MoveLocked(raw, JobStatus::kQueued, std::move(lost));
          ++requeued;
        } else {
          MoveLocked(raw, JobStatus::kFailed, std::move(lost));
          ++interrupted;
          continue;
        }
      }
      EnqueueLocked(raw);
    }
    DispatchLocked(&launches);
  }
  if (!unfinished->empty()) {
    spdlog::info(
        "recovery: {} unfinished jobs found; {} re-queued after an interrupted run, {} failed as "
        "interrupted",
        unfinished->size(), requeued, interrupted);
  }
  Launch(std::move(launches));
  return {};
}

JobService::~JobService() {
  BeginDrain();
  if (claimer_.joinable()) {
    {
      MutexLock lock(&mu_);
      claimer_stop_ = true;
    }
    claim_cv_.SignalAll();
    claimer_.join();
  }
  commit_work_.reset();  // Joins the commits of uploads in progress (they are refused now).
  CancelAll();
  WaitForIdle(Millis(10'000));
  // An executor returns from its destructor once none of its callbacks can run: the
  // process ones kill and reap their children, the in-process one waits for its
  // handlers. What they report meanwhile touches state that must still be alive.
  for (auto& [name, task] : tasks_) task->executor.reset();
  file_work_.reset();  // Joins the result placement in progress.
  // Final writes queued so far are applied (or refused) while the timers still run.
  store_queue_->WaitForWrites();
  std::size_t unstored = 0;
  std::string store_error;
  {
    MutexLock lock(&mu_);
    stopping_ = true;  // A refused final write is not tried again from here on.
    unstored = unstored_finals_;
    store_error = store_error_;
  }
  if (unstored > 0) {
    spdlog::error(
        "store: the final state of {} finished jobs could not be recorded ({}); at the next start "
        "they count as interrupted",
        unstored, store_error);
  }
  {
    // The cluster's threads call in from here on to find it closed; cluster_ itself
    // stays until the store queue has run its last callbacks and reads, which use it.
    MutexLock lock(&mu_);
    cluster_closed_ = true;
  }
  timers_->Stop();
  // What the timer thread queued last is applied while the queue is still whole: its
  // callbacks may call back into it.
  store_queue_->WaitForWrites();
  store_queue_.reset();
  cluster_.reset();
}

void JobService::Submit(SubmitRequest request, const SnapshotCallback& done) {
  auto task_it = tasks_.find(request.task);
  if (task_it == tasks_.end()) {
    return done(MakeError(ErrorCode::kInvalidArgument,
                          "task: no task named \"" + request.task + "\"; GET /v1/tasks lists them"));
  }
  TaskRuntime* task = task_it->second.get();
  if (request.map) {
    if (!request.input.is_array()) return done(MakeError(ErrorCode::kInvalidArgument, "map must be an array"));
    if (task->validate) {
      const boost::json::array& elements = request.input.get_array();
      for (std::size_t i = 0; i < elements.size(); ++i) {
        if (auto problem = task->validate(elements[i])) {
          return done(MakeError(ErrorCode::kInvalidArgument, "map[" + std::to_string(i) + "]: " + *problem));
        }
      }
    }
  } else if (task->validate) {
    if (auto problem = task->validate(request.input)) {
      return done(MakeError(ErrorCode::kInvalidArgument, *problem));
    }
  }
  if (!request.files.empty() && request.map) {
    return done(MakeError(ErrorCode::kInvalidArgument, "a map takes JSON elements, not files"));
  }
  if (!request.files.empty() && !runs_jobs_) {
    return done(MakeError(ErrorCode::kInvalidArgument,
                          "this node (role \"api\") runs no jobs, and a job's files stay on the node that receives "
                          "them: send jobs with files to a node with role \"all\""));
  }
  if (!request.files.empty() && !request.input.is_null() && !task->config.command.empty() &&
      task->config.input_as == "stdin") {
    return done(MakeError(ErrorCode::kInvalidArgument,
                          "task \"" + request.task +
                              "\" gets its file on stdin (input_as = \"stdin\"), where a JSON input cannot go "
                              "too: send the file alone, or set input_as = \"path\" in the task"));
  }
  const std::uint64_t request_hash =
      request.idempotency_key.empty()
          ? 0
          : HashRequest(request.task, request.input, request.priority, request.map, request.files);
  if (request.files.empty()) return Admit(std::move(request), task, request_hash, {}, {}, done);
  // A job with files is named first: its files are synced and moved into its folder
  // before its insert, so that a stored job always has them. That waits for the disk,
  // which the caller's thread (an I/O thread) must not.
  auto pending = std::make_shared<SubmitRequest>(std::move(request));
  commit_work_->Submit([this, pending, task, request_hash, done] {
    std::string id = NewJobId();
    auto committed = files_->CommitInputs(id, std::move(pending->files));
    if (!committed) return done(committed.error());
    Admit(std::move(*pending), task, request_hash, std::move(id), std::move(*committed), done);
  });
}

void JobService::Admit(SubmitRequest request, TaskRuntime* task, std::uint64_t request_hash, std::string named_id,
                       std::vector<JobFile> files, const SnapshotCallback& done) {
  auto job = std::make_unique<ActiveJob>(timers_.get());
  job->task = task;
  JobRecord& rec = job->record;
  rec.task = request.task;
  rec.priority = request.priority;
  rec.timeout_ms = request.timeout.count();
  rec.map = request.map;
  rec.retry_of = std::move(request.retry_of);
  rec.tenant = std::move(request.tenant);
  if (!request.idempotency_key.empty()) {
    rec.idempotency_key = std::move(request.idempotency_key);
    rec.request_hash = request_hash;
  }
  rec.input = std::make_shared<const boost::json::value>(std::move(request.input));
  rec.files = std::move(files);

  std::optional<Error> refused;
  std::optional<JobSnapshot> replay;
  std::string replay_id;
  {
    MutexLock lock(&mu_);
    const UnixMillis now = clock_.Now();
    const IdempotencyCache::Entry* seen =
        rec.idempotency_key.empty()
            ? nullptr
            : idempotency_.Find(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key, now);
    if (seen && seen->request_hash != rec.request_hash) {
      refused = MakeError(ErrorCode::kInvalidArgument, "Idempotency-Key \"" + rec.idempotency_key +
                                                           "\" was used for job " + seen->job_id +
                                                           " with a different request; use a new key for a new job");
    } else if (seen && !seen->stored) {
      refused = MakeError(ErrorCode::kConflict, "the first request with Idempotency-Key \"" + rec.idempotency_key +
                                                    "\" is still being stored; retry");
    } else if (seen) {
      auto active = active_.find(seen->job_id);
      if (active != active_.end())
        replay = SnapshotLocked(*active->second);
      else
        replay_id = seen->job_id;
    } else if (draining_) {
      refused = MakeError(ErrorCode::kUnavailable, "the server is shutting down; retry elsewhere");
    } else if ((clustered_ ? static_cast<std::size_t>(std::max<std::int64_t>(task->cluster_queued, 0))
                           : scheduler_.queued(task->queue)) +
                   task->pending_inserts >=
               static_cast<std::size_t>(task->config.max_queued)) {
      refused =
          MakeError(ErrorCode::kQueueFull, "task \"" + rec.task + "\" already has " +
                                               std::to_string(task->config.max_queued) + " queued jobs (max_queued)");
    } else if (TenantState* tenant = TenantLocked(rec.tenant);
               !clustered_ && tenant && tenant->max_queued > 0 &&
               static_cast<std::int64_t>(scheduler_.queued_of(tenant->sched)) + tenant->pending_inserts >=
                   tenant->max_queued) {
      // (In a cluster the store counts them: StoreOp::tenant_max_queued.)
      refused = TenantQueuedError(rec.tenant, tenant->max_queued);
    } else {
      rec.id = named_id.empty() ? NewJobId() : named_id;
      // In a cluster the store numbers it (the order of submission across nodes), and
      // a job with files runs where they are.
      rec.seq = clustered_ ? 0 : ++next_seq_;
      if (clustered_ && !rec.files.empty()) rec.files_node = node_id_;
      rec.created_at = now;
      ++task->pending_inserts;
      std::int64_t tenant_max_queued = 0;
      if (TenantState* tenant = TenantLocked(rec.tenant)) {
        if (clustered_) {
          tenant_max_queued = tenant->max_queued;
        } else {
          ++tenant->pending_inserts;
        }
      }
      if (!rec.idempotency_key.empty()) {
        idempotency_.Put(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key,
                         IdempotencyCache::Entry{rec.id, rec.request_hash, now, false});
      }
      // The callback owns the job until it is durable; it is never dropped: the
      // queue calls every callback, with an error if the write failed.
      ActiveJob* raw = job.release();
      StoreOp insert{StoreOp::Kind::kInsert, raw->record};
      insert.tenant_max_queued = tenant_max_queued;
      store_queue_->Write(std::move(insert), [this, raw, done](const Status& stored) {
        OnInserted(std::unique_ptr<ActiveJob>(raw), stored, done);
      });
    }
  }
  // Refused or replayed: the files received for it are not kept.
  if (!named_id.empty() && (refused || replay || !replay_id.empty())) files_->RemoveJob(named_id);
  if (refused) return done(std::move(*refused));
  if (replay) {
    replay->replayed = true;
    return done(std::move(*replay));
  }
  if (!replay_id.empty()) {
    return StoreGet(replay_id, [done, replay_id](ErrorOr<std::optional<JobRecord>> got) {
      if (!got) return done(got.error());
      if (!*got) {
        return done(MakeError(ErrorCode::kConflict, "the job of this Idempotency-Key (" + replay_id +
                                                        ") was removed by retention; use a new key"));
      }
      JobSnapshot snap{std::move(**got), std::nullopt, true};
      done(std::move(snap));
    });
  }
  store_queue_->RunCallbacks();
}

void JobService::OnInserted(std::unique_ptr<ActiveJob> job, const Status& stored, const SnapshotCallback& done) {
  if (clustered_ && !stored && stored.error().code == ErrorCode::kConflict && !job->record.idempotency_key.empty() &&
      !job->key_looked_up) {
    return OnKeyTaken(std::move(job), done);
  }
  Launches launches;
  ErrorOr<JobSnapshot> answer = MakeError(ErrorCode::kInternal, "unset");
  const std::string id = job->record.id;
  {
    MutexLock lock(&mu_);
    JobRecord& rec = job->record;
    --job->task->pending_inserts;
    if (TenantState* tenant = TenantLocked(rec.tenant); tenant && !clustered_) --tenant->pending_inserts;
    if (!stored) {
      if (!rec.idempotency_key.empty())
        idempotency_.Forget(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key, rec.id);
      answer = stored.error().code == ErrorCode::kQuotaExceeded
                   ? stored.error()
                   : MakeError(ErrorCode::kUnavailable, "the job store cannot take writes: " + stored.error().detail);
    } else if (clustered_) {
      // Queued for the whole cluster: a claimer takes it, this node's or another's.
      if (!rec.idempotency_key.empty())
        idempotency_.MarkStored(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key, rec.id);
      NoteStatusLocked(rec);
      ++job->task->cluster_queued;
      answer = JobSnapshot{rec, std::nullopt};
      WakeClaimerLocked();
    } else {
      if (!rec.idempotency_key.empty())
        idempotency_.MarkStored(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key, rec.id);
      NoteStatusLocked(rec);
      ActiveJob* raw = job.get();
      active_.emplace(rec.id, std::move(job));
      raw->sched_seq = rec.seq;
      if (rec.map) {
        raw->map = std::make_unique<MapRun>(rec.input->get_array().size(), *rec.map, raw->task->parallelism);
      }
      if (raw->map && raw->map->complete()) {
        // Nothing to run: an empty map succeeds with an empty list.
        raw->map->Stop();
        rec.result = Result::Json(boost::json::array()).output();
        MoveLocked(raw, JobStatus::kSucceeded);
      } else {
        EnqueueLocked(raw);
        DispatchLocked(&launches);
      }
      answer = SnapshotLocked(*raw);
    }
  }
  if (!stored) {
    // A tenant at its quota is no trouble of the store's.
    if (stored.error().code != ErrorCode::kQuotaExceeded) {
      spdlog::error("store: cannot insert job {}: {}", id, stored.error().detail);
    }
    files_->RemoveJob(id);
  } else if (clustered_) {
    cluster_->AnnounceWork();  // cluster_ outlives every store callback.
  }
  Launch(std::move(launches));
  done(std::move(answer));
}

void JobService::StoreGet(const std::string& id, std::function<void(ErrorOr<std::optional<JobRecord>>)> done) {
  store_queue_->Read([this, id, done = std::move(done)] { done(store_->Get(id)); });
}

void JobService::Get(const std::string& id, SnapshotCallback done) {
  std::optional<JobSnapshot> live;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it != active_.end()) live = SnapshotLocked(*it->second);
  }
  if (live) return done(std::move(*live));
  StoreGet(id, [id, done = std::move(done)](ErrorOr<std::optional<JobRecord>> stored) {
    if (!stored) return done(stored.error());
    if (!*stored) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
    done(JobSnapshot{std::move(**stored), std::nullopt});
  });
}

void JobService::Cancel(const std::string& id, CancelCause cause, SnapshotCallback done) {
  Launches launches;
  std::optional<JobSnapshot> snap;
  std::optional<JobStatus> finished_as;
  bool answered_once_stored = false;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    // A job released or handed back is the cluster's, not this node's to cancel.
    if (it != active_.end() && !it->second->released && !it->second->handed_back) {
      ActiveJob* job = it->second.get();
      const JobRecord& rec = job->record;
      if (rec.status == JobStatus::kQueued) {
        UnqueueLocked(job);
        if (job->map) job->map->Stop();
        MoveLocked(job, JobStatus::kCanceled, CancelError(cause, rec.task, config_.run_timeout));
        snap = SnapshotLocked(*job);
        DispatchLocked(&launches);  // It may have blocked the jobs behind it.
      } else if (rec.status == JobStatus::kRunning) {
        // The execution keeps its resources until it has really stopped; the job
        // is canceled for the client from now on.
        MoveLocked(job, JobStatus::kCanceled, CancelError(cause, rec.task, config_.run_timeout));
        if (job->map) {
          StopMapLocked(job, StopReason::kCanceled);
          DispatchLocked(&launches);  // Its turn in the scheduler is gone.
        } else {
          job->run->RequestStop(StopReason::kCanceled);
        }
        snap = SnapshotLocked(*job);
      } else if (rec.status == JobStatus::kCanceled && Executing(*job)) {
        snap = SnapshotLocked(*job);  // Canceled earlier, still stopping: same answer.
      } else {
        finished_as = rec.status;  // Finished; only its final write is in flight.
      }
      // Another node reads the store: the answer waits for the canceled state there.
      // Not after a refused write: the store may be down for long, and the first
      // cancel was answered then.
      if (snap && clustered_ && !job->final_durable && job->final_write_failures == 0) {
        job->cancel_answers.push_back(std::move(done));
        answered_once_stored = true;
      }
    }
  }
  if (answered_once_stored) return Launch(std::move(launches));
  if (finished_as) {
    return done(MakeError(ErrorCode::kConflict,
                          "job " + id + " already finished as " + std::string(JobStatusName(*finished_as))));
  }
  if (snap) {
    Launch(std::move(launches));
    return done(std::move(*snap));
  }
  if (clustered_) return CancelElsewhere(id, cause, std::move(done));
  StoreGet(id, [id, done = std::move(done)](ErrorOr<std::optional<JobRecord>> stored) {
    if (!stored) return done(stored.error());
    if (!*stored) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
    done(MakeError(ErrorCode::kConflict,
                   "job " + id + " already finished as " + std::string(JobStatusName((*stored)->status))));
  });
}

void JobService::List(const JobQuery& query, PageCallback done) {
  store_queue_->Read([this, query, done = std::move(done)] {
    auto page = store_->List(query);
    if (!page) return done(page.error(), std::nullopt);
    // Active jobs: the live view (progress, position, a status newer than the
    // store's) wins over the stored copy. The store filtered on its own copy, so
    // the status filter is checked again against the one shown.
    std::vector<std::optional<JobSnapshot>> slots(page->jobs.size());
    std::vector<std::size_t> reread;
    {
      MutexLock lock(&mu_);
      for (std::size_t i = 0; i < page->jobs.size(); ++i) {
        JobRecord& rec = page->jobs[i];
        auto it = active_.find(rec.id);
        if (it != active_.end()) {
          JobSnapshot live = SnapshotLocked(*it->second);
          if (!query.status || live.record.status == *query.status) slots[i] = std::move(live);
        } else if (!IsFinished(rec.status) && !clustered_) {
          // It finished and left active_ after the page was read; a job leaves
          // only once its final state is stored, so the store has it now.
          reread.push_back(i);
        } else {
          slots[i] = JobSnapshot{std::move(rec), std::nullopt};
        }
      }
    }
    for (std::size_t i : reread) {
      auto fresh = store_->Get(page->jobs[i].id);
      if (!fresh || !*fresh) continue;  // Removed by retention meanwhile.
      if (query.status && (*fresh)->status != *query.status) continue;
      slots[i] = JobSnapshot{std::move(**fresh), std::nullopt};
    }
    std::vector<JobSnapshot> out;
    out.reserve(slots.size());
    for (auto& slot : slots) {
      if (slot) out.push_back(std::move(*slot));
    }
    done(std::move(out), page->next_before_seq);
  });
}

JobService::WaitTicket JobService::AwaitFinish(const std::string& id, SnapshotCallback on_finish) {
  WaitTicket t = 0;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    // A job whose final write is still in flight is waited for too: a waiter hears
    // "finished" only once the store (and so GET /v1/jobs) says so as well.
    if (it != active_.end() && !it->second->final_durable && !it->second->released && !it->second->handed_back) {
      t = ++next_ticket_;
      it->second->waiters.push_back(Waiter{t, std::move(on_finish)});
      return t;
    }
    if (!clustered_ || cluster_closed_) return 0;
    // Held by another node, or by none yet: the store says when it is done.
    t = ++next_ticket_;
    remote_waiters_[id].push_back(Waiter{t, std::move(on_finish)});
  }
  AnswerRemoteWaitersSoon({id});  // It may have finished already.
  return t;
}

bool JobService::CancelAwait(const std::string& id, WaitTicket ticket) {
  MutexLock lock(&mu_);
  auto drop = [ticket](std::vector<Waiter>& ws) {
    auto w = std::find_if(ws.begin(), ws.end(), [&](const Waiter& x) { return x.ticket == ticket; });
    if (w == ws.end()) return false;
    ws.erase(w);
    return true;
  };
  if (auto it = active_.find(id); it != active_.end() && drop(it->second->waiters)) return true;
  auto remote = remote_waiters_.find(id);
  if (remote == remote_waiters_.end() || !drop(remote->second)) return false;
  if (remote->second.empty()) remote_waiters_.erase(remote);
  return true;
}

const TaskConfig* JobService::FindTask(const std::string& name) const {
  auto it = tasks_.find(name);
  return it == tasks_.end() ? nullptr : &it->second->config;
}

std::vector<TaskInfo> JobService::Tasks() const {
  std::vector<TaskInfo> out;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, rt] : tasks_) {
      out.push_back(TaskInfo{name, DescribeRun(rt->config), rt->config.uses, rt->content_type, rt->config.max_queued,
                             QueuedLocked(*rt), scheduler_.running(rt->queue), rt->config.timeout, std::nullopt});
    }
  }
  // Outside the lock: each executor has its own.
  for (TaskInfo& info : out) info.workers = tasks_.at(info.name)->executor->Workers();
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::size_t JobService::QueuedLocked(const TaskRuntime& task) const {
  // In a cluster, the cluster's queue as last counted.
  return clustered_ ? static_cast<std::size_t>(std::max<std::int64_t>(task.cluster_queued, 0))
                    : scheduler_.queued(task.queue);
}

std::vector<ResourceInfo> JobService::Resources() const {
  MutexLock lock(&mu_);
  return ResourcesLocked();
}

std::vector<ResourceInfo> JobService::ResourcesLocked() const {
  std::vector<ResourceInfo> out;
  int r = 0;
  for (const auto& [name, cap] : config_.resources) {
    out.push_back(ResourceInfo{name, cap, scheduler_.in_use(r), scheduler_.queued_demand(r)});
    ++r;
  }
  return out;
}

void JobService::BeginDrain() {
  {
    MutexLock lock(&mu_);
    draining_ = true;
  }
  // The event streams end, so that their clients learn of the shutdown now and the
  // connections do not hold the drain up.
  events_->Close();
}

bool JobService::draining() const {
  MutexLock lock(&mu_);
  return draining_;
}

StoreHealth JobService::store_health() const {
  MutexLock lock(&mu_);
  return StoreHealth{unstored_finals_, store_error_};
}

bool JobService::WaitForIdle(Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&mu_);
  while (running_ > 0) {
    if (!idle_cv_.WaitUntil(&mu_, deadline) && running_ > 0) return false;
  }
  return true;
}

bool JobService::WaitForFinalWrites(Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&mu_);
  while (unstored_finals_ > 0) {
    if (!idle_cv_.WaitUntil(&mu_, deadline) && unstored_finals_ > 0) return false;
  }
  return true;
}

void JobService::CancelAll() {
  // Clients waiting on a queued job get its state now (canceled, or still queued in
  // a durable store): the server is going away and would otherwise drop them.
  std::vector<std::pair<std::vector<Waiter>, JobSnapshot>> kept;
  std::unordered_map<std::string, std::vector<Waiter>> remote;
  {
    MutexLock lock(&mu_);
    remote.swap(remote_waiters_);
    // Chunks of other nodes' maps stop unreported: this node leaves the cluster at a
    // new epoch, and the rescue offers them again.
    DropRemoteRunsLocked([](const ActiveJob&) { return true; });
    std::vector<ActiveJob*> queued;
    for (auto& [id, job] : active_) {
      if (job->record.status == JobStatus::kRunning && job->run) {
        job->run->RequestStop(StopReason::kShutdown);
      } else if (job->record.status == JobStatus::kRunning && job->map) {
        // A map between chunks, or with chunks in flight, ends now as a whole.
        MoveLocked(job.get(), JobStatus::kCanceled,
                   JobError{error_type::kShutdown, "the server shut down while the map ran"});
        StopMapLocked(job.get(), StopReason::kShutdown);
        if (!job->waiters.empty()) {
          kept.emplace_back(std::move(job->waiters), SnapshotLocked(*job));
          job->waiters.clear();
        }
      } else if (job->record.status == JobStatus::kQueued && (!store_->durable() || job->claim) && !job->handed_back) {
        queued.push_back(job.get());
      } else if (job->record.status == JobStatus::kQueued && !job->waiters.empty()) {
        // A durable store keeps queued jobs queued: they resume at the next start.
        kept.emplace_back(std::move(job->waiters), SnapshotLocked(*job));
        job->waiters.clear();
      }
    }
    for (ActiveJob* job : queued) {
      UnqueueLocked(job);
      if (job->claim) {
        // Claimed but not started: back to the cluster's queue (its claim ends with
        // the write), where another node takes it.
        if (!job->released) WriteLocked(*job);
        if (!job->waiters.empty()) kept.emplace_back(std::move(job->waiters), SnapshotLocked(*job));
        active_.erase(job->record.id);
        continue;
      }
      // A memory store ends with this process: the waiters are answered now and the
      // write is not waited for, so a million queued jobs drop in a moment rather
      // than a million round trips through the store's callbacks. So the status
      // changes here, not through MoveLocked, which would wait for the write.
      EnterStatus(&job->record, JobStatus::kCanceled, clock_.Now(),
                  JobError{error_type::kShutdown, "the server shut down before the job started"});
      WriteLocked(*job);
      if (!job->waiters.empty()) {
        kept.emplace_back(std::move(job->waiters), JobSnapshot{job->record, std::nullopt});
      }
      active_.erase(job->record.id);
    }
  }
  store_queue_->RunCallbacks();
  for (auto& [waiters, snap] : kept) {
    for (auto& w : waiters) w.fn(snap);
  }
  // Jobs of the cluster that this node does not hold go on without it.
  for (auto& [id, waiters] : remote) {
    for (auto& w : waiters) {
      w.fn(MakeError(ErrorCode::kUnavailable,
                     "this server is shutting down; job " + id + " goes on in the cluster: ask another node"));
    }
  }
}

void JobService::WriteLocked(const ActiveJob& job) {
  if (!job.claim) return store_queue_->Write(StoreOp{StoreOp::Kind::kUpdate, job.record}, nullptr);
  store_queue_->Write(StoreOp{StoreOp::Kind::kUpdate, job.record, job.claim},
                      [this, id = job.record.id, adoption = job.adoption](Status s) {
                        if (s) return;
                        if (s.error().code == ErrorCode::kConflict) return OnFenced(id, adoption);
                        spdlog::error("store: write of job {} failed: {}", id, s.error().detail);
                      });
}

void JobService::MoveLocked(ActiveJob* job, JobStatus to, std::optional<JobError> error) {
  if (job->released) return;  // Its state is another node's now.
  EnterStatus(&job->record, to, clock_.Now(), std::move(error));
  if (!IsFinished(to)) {
    NoteStatusLocked(job->record);
    return WriteLocked(*job);
  }
  // Once the final write is durable the waiters are answered and the job leaves
  // active_ — or, for a canceled job whose execution is still stopping, leaves it
  // in OnExecutionDone or OnChunkDone.
  job->attempt_timer.Cancel();
  WriteFinalLocked(job);
}

void JobService::DispatchLocked(Launches* out) {
  // A store that refuses final states stops new work: what runs now could be stored
  // by nobody, and would run again after a crash.
  if (draining_ || unstored_finals_ > 0) return;
  scheduler_.Dispatch([&](int, ActiveJob* job, Scheduler<ActiveJob*>::Started started) {
    mu_.AssertHeld();  // Dispatch calls back before it returns, under the same lock.
    job->in_scheduler = false;
    job->started = started;
    EndClaimWaitLocked(job);
    if (job->map)
      StartChunkLocked(job, out);
    else
      StartLocked(job, out);
  });
}

// REQUIRES: the job is not in the scheduler.
void JobService::EnqueueLocked(ActiveJob* job) {
  job->sched_tenant = TenantIndexLocked(job->record.tenant);
  scheduler_.Enqueue(job->task->queue, SchedKey(*job), job, job->sched_tenant);
  job->in_scheduler = true;
}

void JobService::UnqueueLocked(ActiveJob* job) {
  EndClaimWaitLocked(job);
  if (!job->in_scheduler) return;
  scheduler_.Remove(job->task->queue, SchedKey(*job), job->sched_tenant);
  job->in_scheduler = false;
}

bool JobService::Executing(const ActiveJob& job) { return job.run != nullptr || !job.chunk_contexts.empty(); }

JobService::TenantState* JobService::TenantLocked(const std::string& tenant) {
  if (tenant.empty()) return nullptr;
  auto [it, added] = tenants_.try_emplace(tenant);
  if (added) {
    it->second.sched = scheduler_.AddTenant();
    ApplyPolicyLocked(tenant, &it->second);
  }
  return &it->second;
}

int JobService::TenantIndexLocked(const std::string& tenant) {
  TenantState* state = TenantLocked(tenant);
  return state ? state->sched : 0;
}

void JobService::ApplyPolicyLocked(const std::string& name, TenantState* tenant) {
  auto found = tenant_policies_.find(name);
  const TenantPolicy policy = found == tenant_policies_.end() ? TenantPolicy{} : found->second;
  tenant->max_queued = policy.max_queued;
  scheduler_.shares().SetWeight(tenant->sched, policy.weight);
  int r = 0;
  for (const auto& [resource, capacity] : config_.resources) {
    auto cap = policy.max_running.find(resource);
    scheduler_.shares().SetCap(tenant->sched, r++,
                               cap == policy.max_running.end() ? TenantShares::kNoCap : cap->second);
  }
}

void JobService::SetTenantPolicies(std::map<std::string, TenantPolicy> policies) {
  Launches launches;
  {
    MutexLock lock(&mu_);
    tenant_policies_ = std::move(policies);
    for (auto& [name, tenant] : tenants_) ApplyPolicyLocked(name, &tenant);
    DispatchLocked(&launches);  // A cap raised may let jobs start,
    WakeClaimerLocked();        // here or from the cluster's queue.
  }
  Launch(std::move(launches));
}

size_t JobService::active_jobs() const {
  MutexLock lock(&mu_);
  return active_.size();
}

// REQUIRES: the scheduler has reserved the job's resources.
void JobService::StartLocked(ActiveJob* job, Launches* out) {
  const JobRecord& rec = job->record;
  MoveLocked(job, JobStatus::kRunning);
  job->run = std::make_shared<RunContext>();
  job->slot_since = std::chrono::steady_clock::now();
  if (const Millis timeout = EffectiveTimeout(*job); timeout.count() > 0) {
    job->attempt_timer.Set(timeout, [this, id = rec.id, attempt = rec.attempts] { OnTimeout(id, attempt); });
  }
  ++running_;
  out->singles.push_back(
      Launches::Single{job->task->executor.get(),
                       Execution{rec.id, rec.task, rec.input, rec.priority, rec.attempts, job->run, rec.files,
                                 job->task->process ? files_->AttemptResultPath(rec.id, rec.attempts) : std::string()},
                       job});
}

// REQUIRES: the scheduler has reserved one execution's resources.
void JobService::StartChunkLocked(ActiveJob* job, Launches* out) {
  const JobRecord& rec = job->record;
  MapRun& m = *job->map;
  if (rec.status == JobStatus::kQueued) MoveLocked(job, JobStatus::kRunning);
  auto chunk = std::make_shared<MapChunk>(job, timers_.get());
  chunk->started = job->started;
  chunk->elements = m.TakeChunk();
  chunk->context = std::make_shared<RunContext>();
  if (const Millis timeout = EffectiveTimeout(*job); timeout.count() > 0) {
    // Each element may take the whole timeout: the chunk's bound is their sum.
    const auto bound = timeout * static_cast<std::int64_t>(chunk->elements.indices.size());
    chunk->timer.Set(bound, [this, weak = std::weak_ptr<MapChunk>(chunk), bound] { OnChunkTimeout(weak, bound); });
  }
  chunk->executor = job->task->executor.get();
  chunk->batch = Batch{rec.id,
                       rec.task,
                       rec.input,
                       chunk->elements.indices,
                       chunk->elements.attempts,
                       rec.priority,
                       /*stop_on_failure=*/!rec.map->collect && job->task->config.retries == 0,
                       chunk->context,
                       {}};
  if (job->remote) {
    // Its elements are the whole of its input; the owner's map numbers them.
    chunk->batch.map_indices = job->remote->indices;
    chunk->batch.attempts = job->remote->attempts;
  }
  job->chunk_contexts.push_back(chunk->context);
  ++running_;
  out->chunks.push_back(std::move(chunk));
  if (m.pending()) {
    // Its turn is over: to the end of its priority class.
    job->sched_seq = ++next_seq_;
    EnqueueLocked(job);
  }
}

// Reads only what the locked section copied into `launches`: no job state.
void JobService::Launch(Launches launches) {
  store_queue_->RunCallbacks();
  for (auto& single : launches.singles) {
    single.executor->Start(std::move(single.exec),
                           [this, job = single.job](Result outcome) { OnExecutionDone(job, std::move(outcome)); });
  }
  for (auto& chunk : launches.chunks) {
    chunk->dispatched = std::chrono::steady_clock::now();
    chunk->executor->StartBatch(std::move(chunk->batch),
                                [this, chunk](BatchOutcome outcome) { OnChunkDone(chunk, std::move(outcome)); });
  }
}

void JobService::OnChunkDone(const std::shared_ptr<MapChunk>& chunk, BatchOutcome batch) {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - chunk->dispatched);
  ChunkOutcome outcome{std::move(batch), elapsed, chunk->context->stop_reason()};
  Launches launches;
  {
    MutexLock lock(&mu_);
    ActiveJob* job = chunk->job;
    scheduler_.Release(job->task->queue, job->sched_tenant, chunk->started);
    if (--running_ == 0) idle_cv_.SignalAll();
    chunk->timer.Cancel();
    std::erase(job->chunk_contexts, chunk->context);
    WakeClaimerLocked();  // A slot is free.
    if (job->released) {
      if (!Executing(*job)) ForgetLocked(job);  // Its outcome is not this node's to record.
    } else if (job->remote) {
      FinishRemoteChunkLocked(job, std::move(outcome));
    } else {
      AfterFoldLocked(job, job->map->Fold(chunk->elements, std::move(outcome), EffectiveTimeout(*job),
                                          job->task->config.retries, /*may_retry=*/!draining_));
    }
    DispatchLocked(&launches);
  }
  Launch(std::move(launches));
}

void JobService::AfterFoldLocked(ActiveJob* job, MapRun::Folded folded) {
  MapRun& m = *job->map;
  JobRecord& rec = job->record;
  const TaskConfig& tc = job->task->config;
  for (const auto& retry : folded.retries) {
    // Not cancelled when the map ends: it is short (the back-off) and finds the
    // map stopped.
    timers_->Schedule(RetryDelay(tc, retry.second),
                      [this, id = rec.id, index = retry.first] { OnElementRetryDue(id, index); });
  }
  if (folded.failure) {
    rec.map->failed_index = folded.failed_index;
    rec.progress = m.progress();
    MoveLocked(job, JobStatus::kFailed, std::move(folded.failure));
    StopMapLocked(job, StopReason::kCanceled);
  }
  if (IsFinished(rec.status)) {
    // Ended (canceled, shut down or failed fast): it leaves once its last chunk
    // has reported and its final state is durable.
    if (!Executing(*job) && job->final_durable) active_.erase(rec.id);
  } else if (m.complete()) {
    m.Stop();
    rec.result = Result::Json(m.TakeResults()).output();
    MoveLocked(job, JobStatus::kSucceeded);
  } else {
    if (m.pending() && !job->in_scheduler) {
      job->sched_seq = ++next_seq_;
      EnqueueLocked(job);
    }
    ShareMapLocked(job);
  }
}

void JobService::ForgetLocked(ActiveJob* job) {
  if (job->remote) {
    remote_runs_.erase(job->remote->seq);
  } else {
    active_.erase(job->record.id);
  }
}

// Nothing more of the map starts; its chunks in flight are asked to stop.
void JobService::StopMapLocked(ActiveJob* job, StopReason reason) {
  job->map->Stop();
  UnqueueLocked(job);
  for (auto& ctx : job->chunk_contexts) ctx->RequestStop(reason);
  DropOffersLocked(job);
}

void JobService::OnElementRetryDue(const std::string& id, std::size_t index) {
  Launches launches;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end() || !it->second->map || it->second->map->stopping()) return;
    ActiveJob* job = it->second.get();
    job->map->Retry(index);
    if (!job->in_scheduler) {
      job->sched_seq = ++next_seq_;
      EnqueueLocked(job);
    }
    DispatchLocked(&launches);
  }
  Launch(std::move(launches));
}

void JobService::OnExecutionDone(ActiveJob* job, Result outcome) {
  const TaskConfig& task = job->task->config;
  const ResultPlacementLimits limits{static_cast<std::uint64_t>(config_.max_memory_result),
                                     static_cast<std::uint64_t>(task.max_result)};
  if (!NeedsPlacement(outcome, limits)) return FinishExecution(job, outcome);
  {
    // The task's work is done; keeping its result is the server's, which its timeout
    // must not cut short.
    MutexLock lock(&mu_);
    job->attempt_timer.Cancel();
  }
  // The id is constant while the job is active, and it stays active until finished.
  file_work_->Submit([this, job, limits, outcome = std::move(outcome)]() mutable {
    FinishExecution(job, PlaceResult(*files_, job->record.id, std::move(outcome), limits));
  });
}

void JobService::FinishExecution(ActiveJob* job, const Result& outcome) {
  Launches launches;
  bool result_unused = false;
  std::string attempt_file;  // What the process may have left at OFFLOAD_RESULT_PATH.
  {
    MutexLock lock(&mu_);
    scheduler_.Release(job->task->queue, job->sched_tenant, job->started);
    JobRecord& rec = job->record;
    const StopReason stop = job->run->stop_reason();
    if (stop == StopReason::kNone) TimeSlotLocked(job);  // A stop says nothing of how long its task runs.
    const double progress = job->run->progress();
    job->run.reset();
    job->attempt_timer.Cancel();
    if (--running_ == 0) idle_cv_.SignalAll();
    WakeClaimerLocked();  // A slot is free.
    if (job->task->process) attempt_file = files_->AttemptResultPath(rec.id, rec.attempts);
    result_unused = outcome.ok() && outcome.output()->file &&
                    (job->released || rec.status == JobStatus::kCanceled || stop == StopReason::kShutdown ||
                     stop == StopReason::kTimeout);
    if (job->released) {
      active_.erase(rec.id);  // Its outcome is not this node's to record.
    } else if (rec.status == JobStatus::kCanceled) {
      // Canceled while running: its final state was queued by Cancel. Erase it once
      // that write is durable (else OnFinishDurable erases it).
      if (job->final_durable) active_.erase(rec.id);
    } else if (stop == StopReason::kShutdown) {
      if (progress >= 0) rec.progress = progress;
      MoveLocked(job, JobStatus::kCanceled, JobError{error_type::kShutdown, "the server shut down while the job ran"});
    } else if (stop != StopReason::kTimeout && outcome.ok()) {
      rec.result = outcome.output();
      MoveLocked(job, JobStatus::kSucceeded);
    } else {
      JobError failure =
          stop == StopReason::kTimeout
              ? JobError{error_type::kTimeout, "the job ran longer than its timeout of " +
                                                   std::to_string(EffectiveTimeout(*job).count()) + " ms"}
              : outcome.error();
      if (progress >= 0) rec.progress = progress;
      // A claimed job goes back to the cluster's queue, draining or not: another node
      // may run it.
      if (Retryable(failure) && (!draining_ || job->claim) && rec.attempts <= job->task->config.retries) {
        const Millis delay = RetryDelay(job->task->config, rec.attempts);
        if (job->claim) {
          HandBackLocked(job, std::move(failure), delay);
        } else {
          MoveLocked(job, JobStatus::kQueued, std::move(failure));
          job->attempt_timer.Set(delay, [this, id = rec.id, attempt = rec.attempts] { OnRetryDue(id, attempt); });
        }
      } else {
        MoveLocked(job, JobStatus::kFailed, std::move(failure));
      }
    }
    DispatchLocked(&launches);
  }
  if (result_unused) ::unlink(outcome.output()->file->path.c_str());
  // Taken in (renamed) when it was the result; else left by a failed, canceled or
  // stopped attempt, or by a worker that answered inline.
  if (!attempt_file.empty()) ::unlink(attempt_file.c_str());
  Launch(std::move(launches));
}

void JobService::OnChunkTimeout(const std::weak_ptr<MapChunk>& weak, Millis bound) {
  MutexLock lock(&mu_);
  std::shared_ptr<MapChunk> chunk = weak.lock();
  if (!chunk) return;
  chunk->timer.Fired();
  if (const Millis left = TimeLeft(bound, chunk->context->RunningFor()); left.count() > 0) {
    chunk->timer.Set(left, [this, weak, bound] { OnChunkTimeout(weak, bound); });
    return;
  }
  // Safe under mu_, as in OnTimeout.
  chunk->context->RequestStop(StopReason::kTimeout);
}

void JobService::OnRetryDue(const std::string& id, int attempt) {
  Launches launches;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return;
    ActiveJob* job = it->second.get();
    if (job->record.attempts != attempt || job->record.status != JobStatus::kQueued || job->in_scheduler) return;
    job->attempt_timer.Fired();
    // Its original seq keeps its place: a retry goes before jobs submitted after it.
    job->sched_seq = job->record.seq;
    EnqueueLocked(job);
    DispatchLocked(&launches);
  }
  Launch(std::move(launches));
}

// Belt and braces: the timer is cancelled when its attempt ends, and the attempt
// number is checked in case it fired just before.
void JobService::OnTimeout(const std::string& id, int attempt) {
  MutexLock lock(&mu_);
  auto it = active_.find(id);
  if (it == active_.end() || it->second->record.attempts != attempt || !it->second->run) return;
  ActiveJob* job = it->second.get();
  job->attempt_timer.Fired();
  if (const Millis left = TimeLeft(EffectiveTimeout(*job), job->run->RunningFor()); left.count() > 0) {
    job->attempt_timer.Set(left, [this, id, attempt] { OnTimeout(id, attempt); });
    return;
  }
  // Safe under mu_: RequestStop's OnStop hook only hands the stop over (run_context.h).
  it->second->run->RequestStop(StopReason::kTimeout);
}

void JobService::WriteFinalLocked(ActiveJob* job) {
  const bool claimed = job->claim.has_value();
  store_queue_->Write(StoreOp{StoreOp::Kind::kUpdate, job->record, job->claim},
                      [this, claimed, id = job->record.id, adoption = job->adoption](const Status& stored) {
                        // kUnavailable is the disk (full, read-only, failing) or the database (down): worth
                        // another try. A claimed job's kConflict: it is no longer this node's. Any other
                        // refusal is a bug that another try would repeat.
                        if (!stored && stored.error().code == ErrorCode::kUnavailable)
                          return OnFinalWriteFailed(id, adoption, stored.error());
                        if (!stored && claimed && stored.error().code == ErrorCode::kConflict) {
                          return OnFenced(id, adoption);
                        }
                        if (!stored) spdlog::error("store: cannot record the end of {}: {}", id, stored.error().detail);
                        OnFinishDurable(id);
                      });
}

void JobService::OnFinalWriteFailed(const std::string& id, std::uint64_t adoption, const Error& error) {
  bool first_refusal = false;
  std::vector<SnapshotCallback> cancel_answers;
  std::optional<JobSnapshot> snap;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    // A write of an earlier claim of it, here, says nothing of this one.
    if (it == active_.end() || it->second->released || it->second->adoption != adoption) return;
    ActiveJob* job = it->second.get();
    store_error_ = error.detail;
    // The cancel stands here and is written once the store takes it, as on one node.
    cancel_answers = std::move(job->cancel_answers);
    job->cancel_answers.clear();
    if (!cancel_answers.empty()) snap = SnapshotLocked(*job);
    if (!stopping_) {
      first_refusal = job->final_write_failures++ == 0 && unstored_finals_++ == 0;
      timers_->Schedule(FinalWriteDelay(job->final_write_failures),
                        [this, id, adoption] { OnFinalWriteRetryDue(id, adoption); });
    }
  }
  if (first_refusal) {
    spdlog::error(
        "store: cannot record the end of job {}: {}; finished jobs stay in memory and are written "
        "again until the store takes them, and no new job starts meanwhile",
        id, error.detail);
  }
  for (auto& answer : cancel_answers) answer(*snap);
}

void JobService::OnFinalWriteRetryDue(const std::string& id, std::uint64_t adoption) {
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end() || it->second->released || it->second->adoption != adoption) return;
    WriteFinalLocked(it->second.get());
  }
  store_queue_->RunCallbacks();
}

void JobService::OnFinishDurable(const std::string& id) {
  std::vector<Waiter> waiters;
  std::optional<JobSnapshot> snap;
  bool large_map_gone = false;
  bool store_back = false;
  bool announce = false;
  bool queued_again = false;
  std::vector<SnapshotCallback> cancel_answers;
  Launches launches;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return;
    ActiveJob* job = it->second.get();
    job->final_durable = true;
    if (job->final_write_failures > 0 && --unstored_finals_ == 0) {
      store_back = true;
      idle_cv_.SignalAll();
      DispatchLocked(&launches);
    }
    waiters = std::move(job->waiters);
    job->waiters.clear();
    cancel_answers = std::move(job->cancel_answers);
    job->cancel_answers.clear();
    snap = JobSnapshot{job->record, std::nullopt};
    NoteStatusLocked(job->record);
    if (job->handed_back) {
      // Queued again for the cluster: its waiters wait on the store from here.
      auto& remote = remote_waiters_[id];
      std::move(waiters.begin(), waiters.end(), std::back_inserter(remote));
      waiters.clear();
      active_.erase(it);
      queued_again = true;
    } else {
      if (auto remote = remote_waiters_.find(id); remote != remote_waiters_.end()) {
        std::move(remote->second.begin(), remote->second.end(), std::back_inserter(waiters));
        remote_waiters_.erase(remote);
      }
      announce = clustered_;
      if (!Executing(*job)) {
        large_map_gone = job->map && job->map->counts().total >= kLargeMap;
        active_.erase(it);
      }
    }
  }
  // cluster_ outlives every store callback.
  if (announce) cluster_->AnnounceDone(id);
  if (queued_again) cluster_->AnnounceWork();  // Any node may take it.
  if (store_back) spdlog::info("store: takes writes again; every finished job is recorded; starting new jobs");
  if (!queued_again && config_.log_jobs) LogFinished(snap->record);
  Launch(std::move(launches));
  for (auto& answer : cancel_answers) answer(*snap);
  for (auto& w : waiters) w.fn(*snap);
  // A large map's many small allocations are free now; hand the pages back rather
  // than keep the peak for good.
  if (large_map_gone) malloc_trim(0);
}

JobSnapshot JobService::SnapshotLocked(const ActiveJob& job) const {
  JobSnapshot snap{job.record, std::nullopt};
  if (job.map) {
    snap.map = job.map->counts();
    if (job.record.status == JobStatus::kRunning) snap.record.progress = job.map->progress();
  }
  if (job.record.status == JobStatus::kQueued) {
    snap.position = scheduler_.Position(job.task->queue, SchedKey(job), job.sched_tenant);
  } else if (job.record.status == JobStatus::kRunning && job.run && job.run->progress() >= 0) {
    snap.record.progress = job.run->progress();
  }
  return snap;
}

// The job's own timeout capped by its task's; 0: none.
Millis JobService::EffectiveTimeout(const ActiveJob& job) {
  const Millis task = job.task->config.timeout;
  const Millis own(job.record.timeout_ms);
  if (own.count() <= 0) return task;
  return task.count() > 0 ? std::min(own, task) : own;
}

void JobService::ScheduleRetention() {
  const Millis period = std::clamp(config_.retention / 10, Millis(100), Millis(60'000));
  timers_->Schedule(period, [this] {
    RemoveExpired();
    ScheduleRetention();
  });
}

void JobService::RemoveExpired() {
  const UnixMillis now = clock_.Now();
  {
    MutexLock lock(&mu_);
    idempotency_.RemoveExpired(now);
  }
  const UnixMillis cutoff = now - config_.retention.count();
  // Rows first, then files: a crash in between leaves files without a job, which the
  // next start removes, never a job without its files.
  auto with_files = store_->FinishedWithFilesBefore(cutoff);
  if (!with_files) {
    spdlog::error("store: cannot list the expired jobs with files ({}); their files stay until the next start",
                  with_files.error().detail);
  }
  auto removed = store_->RemoveFinishedBefore(cutoff);
  if (removed && with_files) {
    for (const std::string& id : *with_files) files_->RemoveJob(id);
  }
  if (!removed)
    spdlog::error("store: retention failed: {}", removed.error().detail);
  else if (*removed > 0)
    spdlog::debug("retention: removed {} finished jobs", *removed);
}

}  // namespace offload
