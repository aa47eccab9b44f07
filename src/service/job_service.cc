#include "service/job_service.h"

#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <random>

#include "util/base64.h"
#include "util/id_generator.h"

namespace offload {

struct JobService::TaskRuntime {
  TaskConfig config;
  std::string content_type;
  InputValidator validate;
  std::unique_ptr<Executor> executor;
  int queue = 0;
  std::size_t parallelism = 1;      // Executions of this task that fit at once.
  std::size_t pending_inserts = 0;  // guarded by mu_; submits whose insert is in flight
};

struct JobService::ActiveJob {
  JobRecord record;
  TaskRuntime* task = nullptr;
  std::shared_ptr<RunContext> run;  // Set while an execution is under way.
  std::vector<Waiter> waiters;
  bool in_scheduler = false;   // Queued and waiting in the scheduler (not in back-off).
  bool final_durable = false;  // Its final state is in the store.
  // The running attempt's timeout, or the back-off before the next attempt; 0: none.
  TimerQueue::Handle attempt_timer = 0;
  // Times the store refused its final state; a retry of the write is then pending.
  int final_write_failures = 0;
  // Its place among the jobs of its priority: its seq, or, for a map taking turns,
  // a fresh one after each chunk.
  std::uint64_t sched_seq = 0;
  std::unique_ptr<MapState> map;  // Set for the parent of a map.
};

// The elements of a map in flight and done. Guarded by mu_, like the job.
struct JobService::MapState {
  explicit MapState(std::size_t n) : total(n), results(n) {}
  // Elements left to dispatch: those below `next` went out at least once.
  bool pending() const { return !stopping && (!again.empty() || next < total); }

  std::size_t total;
  std::size_t next = 0;
  std::deque<std::size_t> again;  // Back from back-off or from a stopped chunk; go first.
  std::size_t done = 0;
  std::size_t failed = 0;
  std::size_t running = 0;
  std::vector<std::shared_ptr<RunContext>> contexts;  // One per chunk in flight.
  std::unordered_map<std::size_t, int> failed_attempts;
  boost::json::array results;  // Final outcome per element, in input order.
  double ns_per_element = 0;   // Measured over the chunks; 0 until one reports.
  bool stopping = false;       // Finished, failed fast, canceled or shut down.
};

// One dispatch of a map: its elements run one after another on one slot.
struct JobService::MapChunk {
  ActiveJob* job = nullptr;  // Stays in active_ while a chunk is in flight.
  std::vector<std::size_t> indices;
  std::vector<int> attempts;  // Per index; empty when every one is a first attempt.
  std::shared_ptr<RunContext> context;
  std::chrono::steady_clock::time_point dispatched;
  TimerQueue::Handle timer = 0;  // Its timeout; 0: none.
};

namespace {

constexpr std::size_t kErrorHistory = 5;
// See ChunkSizeLocked.
constexpr std::chrono::milliseconds kChunkTarget{2};
constexpr std::size_t kMaxChunk = 8192;
// Maps at least this long give their memory back to the system when they end.
constexpr std::size_t kLargeMap = 10'000;

template <typename Job>
Scheduler<Job*>::Key SchedKey(const Job& job) {
  return Scheduler<Job*>::MakeKey(job.record.priority, job.sched_seq);
}

std::vector<std::string> ResourceNames(const ServerConfig& c) {
  std::vector<std::string> names;
  for (const auto& [name, cap] : c.resources) names.push_back(name);
  return names;
}

std::vector<std::int64_t> Capacities(const ServerConfig& c) {
  std::vector<std::int64_t> caps;
  for (const auto& [name, cap] : c.resources) caps.push_back(cap);
  return caps;
}

// FNV-1a: stable across runs and builds, so stored request hashes stay comparable.
std::uint64_t HashRequest(const std::string& task, const boost::json::value& input, int priority,
                          const std::optional<MapSpec>& map) {
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
  return h;
}

// What GET /v1/tasks shows as a task's "run": "builtin:NAME", "command: ARGV" or
// "worker: ARGV".
std::string DescribeRun(const TaskConfig& t) {
  auto join = [](const char* kind, const std::vector<std::string>& argv) {
    std::string out = kind;
    for (const auto& a : argv) out += " " + a;
    return out;
  };
  if (!t.command.empty()) return join("command:", t.command);
  if (!t.worker.empty()) return join("worker:", t.worker);
  return t.run;
}

std::string IdempotencySlot(const std::string& task, const std::string& key) { return task + '\0' + key; }

// A refused final write is tried again after 50 ms, doubling up to 5 s: soon after
// the disk has room again, without spinning on a disk that stays full.
Millis FinalWriteDelay(int failures) {
  const int shift = std::clamp(failures - 1, 0, 7);
  return std::min(Millis(50) * (1 << shift), Millis(5000));
}

JobError CancelError(CancelCause cause, const std::string& task, Millis run_timeout) {
  switch (cause) {
    case CancelCause::kClientGone:
      return JobError{"client_disconnected", "the client of POST /v1/tasks/" + task +
                                                 "/run closed its connection before the job finished"};
    case CancelCause::kRunTimeout:
      return JobError{"run_timeout", "the job did not finish within run_timeout (" +
                                         std::to_string(run_timeout.count()) + " ms) of POST /v1/tasks/" +
                                         task + "/run; submit long jobs with POST /v1/jobs"};
    case CancelCause::kShutdown:
      return JobError{"shutdown", "the server shut down before the job of POST /v1/tasks/" + task +
                                      "/run finished"};
    case CancelCause::kRequest:
      break;
  }
  return JobError{"canceled", "canceled by a DELETE request"};
}

Millis RetryDelay(const TaskConfig& t, int failed_attempts) {
  const int shift = std::clamp(failed_attempts - 1, 0, 30);
  const double base = static_cast<double>(t.retry_backoff.count()) * static_cast<double>(1ull << shift);
  const double capped = std::min(base, static_cast<double>(t.retry_backoff_max.count()));
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return Millis(static_cast<std::int64_t>(capped * jitter(rng)));
}

}  // namespace

JobService::JobService(const ServerConfig& config, std::unique_ptr<Store> store)
    : config_(config),
      store_(std::move(store)),
      store_queue_(std::make_unique<StoreQueue>(store_.get())),
      scheduler_(Capacities(config)),
      timers_(std::make_unique<TimerQueue>()) {}

ErrorOr<std::unique_ptr<JobService>> JobService::Create(const ServerConfig& config,
                                                        TaskExecutors executors,
                                                        std::unique_ptr<Store> store) {
  auto valid = ValidateConfig(config);
  if (!valid) return valid.error();
  std::unique_ptr<JobService> service(new JobService(config, std::move(store)));
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
    ResourceDemand demand;
    std::int64_t fit = INT64_MAX;
    for (const auto& [res, amount] : tc.uses) {
      auto idx = std::find(names.begin(), names.end(), res) - names.begin();
      demand.Add(static_cast<int>(idx), amount);
      if (amount > 0) fit = std::min(fit, config.resources.at(res) / amount);
    }
    rt->parallelism = static_cast<std::size_t>(std::clamp<std::int64_t>(fit, 1, 1 << 20));
    rt->queue = service->scheduler_.AddQueue(std::move(demand));
    service->tasks_.emplace(name, std::move(rt));
  }
  if (auto recovered = service->Recover(); !recovered) return recovered.error();
  service->ScheduleRetention();
  return service;
}

// Runs before the service is shared: no other thread can call in yet.
ErrorOr<bool> JobService::Recover() {
  auto max_seq = store_->MaxSeq();
  if (!max_seq) return max_seq.error();
  auto unfinished = store_->LoadUnfinished();
  if (!unfinished) return unfinished.error();
  auto keys = store_->LoadIdempotencyKeys(NowMillis() - config_.idempotency_ttl.count());
  if (!keys) return keys.error();

  Deferred deferred;
  std::size_t requeued = 0, interrupted = 0;
  {
    std::lock_guard lock(mu_);
    next_seq_ = *max_seq;
    for (const IdempotencyEntry& e : *keys) {
      idempotency_[IdempotencySlot(e.task, e.key)] =
          IdempotencyRecord{e.job_id, e.request_hash, e.created_at, true};
    }
    for (JobRecord& rec : *unfinished) {
      auto job = std::make_unique<ActiveJob>();
      auto task = tasks_.find(rec.task);
      job->record = std::move(rec);
      JobRecord& r = job->record;
      ActiveJob* raw = job.get();
      active_.emplace(r.id, std::move(job));
      if (task == tasks_.end()) {
        r.status = JobStatus::kFailed;
        r.error = JobError{"unknown_task", "task \"" + r.task + "\" is no longer configured"};
        FinishLocked(raw);
        continue;
      }
      raw->task = task->second.get();
      raw->sched_seq = r.seq;
      if (r.map) raw->map = std::make_unique<MapState>(r.input->is_array() ? r.input->get_array().size() : 0);
      if (r.status == JobStatus::kRunning) {
        JobError lost{"interrupted", "the server stopped while the job was running"};
        if (r.attempts <= raw->task->config.retries) {
          r.error_history.push_back(lost);
          if (r.error_history.size() > kErrorHistory) r.error_history.erase(r.error_history.begin());
          r.status = JobStatus::kQueued;
          r.started_at = 0;
          r.progress.reset();
          WriteLocked(r);
          ++requeued;
        } else {
          r.status = JobStatus::kFailed;
          r.error = lost;
          FinishLocked(raw);
          ++interrupted;
          continue;
        }
      }
      EnqueueLocked(raw);
    }
    DispatchLocked(&deferred);
  }
  if (!unfinished->empty()) {
    spdlog::info("recovery: {} unfinished jobs found; {} re-queued after an interrupted run, {} failed as "
                 "interrupted",
                 unfinished->size(), requeued, interrupted);
  }
  RunDeferred(std::move(deferred));
  return true;
}

JobService::~JobService() {
  BeginDrain();
  CancelAll();
  WaitForIdle(Millis(10'000));
  // An executor returns from its destructor once none of its callbacks can run: the
  // process ones kill and reap their children, the in-process one waits for its
  // handlers. What they report meanwhile touches state that must still be alive.
  for (auto& [name, task] : tasks_) task->executor.reset();
  // Final writes queued so far are applied (or refused) while the timers still run.
  store_queue_->Flush();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;  // A refused final write is not tried again from here on.
    if (unstored_finals_ > 0) {
      spdlog::error("store: the final state of {} finished jobs could not be recorded ({}); at the next start "
                    "they count as interrupted",
                    unstored_finals_, store_error_);
    }
  }
  timers_->Stop();
  // What the timer thread queued last is applied while the queue is still whole: its
  // callbacks may call back into it.
  store_queue_->Flush();
  store_queue_.reset();
}

void JobService::Submit(SubmitRequest request, SnapshotCallback done) {
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
  auto job = std::make_unique<ActiveJob>();
  job->task = task;
  JobRecord& rec = job->record;
  rec.task = request.task;
  rec.priority = request.priority;
  rec.timeout_ms = request.timeout.count();
  rec.map = request.map;
  if (!request.idempotency_key.empty()) {
    rec.idempotency_key = std::move(request.idempotency_key);
    rec.request_hash = HashRequest(rec.task, request.input, rec.priority, request.map);
  }
  rec.input = std::make_shared<const boost::json::value>(std::move(request.input));

  std::optional<Error> refused;
  std::optional<JobSnapshot> replay;
  std::string replay_id;
  {
    std::lock_guard lock(mu_);
    const UnixMillis now = NowMillis();
    IdempotencyRecord* seen = nullptr;
    if (!rec.idempotency_key.empty()) {
      auto it = idempotency_.find(IdempotencySlot(rec.task, rec.idempotency_key));
      if (it != idempotency_.end() && it->second.created_at + config_.idempotency_ttl.count() > now) {
        seen = &it->second;
      }
    }
    if (seen && seen->request_hash != rec.request_hash) {
      refused = MakeError(ErrorCode::kInvalidArgument,
                          "Idempotency-Key \"" + rec.idempotency_key + "\" was used for job " + seen->job_id +
                              " with a different request; use a new key for a new job");
    } else if (seen && !seen->stored) {
      refused = MakeError(ErrorCode::kConflict, "the first request with Idempotency-Key \"" +
                                                    rec.idempotency_key + "\" is still being stored; retry");
    } else if (seen) {
      auto active = active_.find(seen->job_id);
      if (active != active_.end()) replay = SnapshotLocked(*active->second);
      else replay_id = seen->job_id;
    } else if (draining_) {
      refused = MakeError(ErrorCode::kUnavailable, "the server is shutting down; retry elsewhere");
    } else if (scheduler_.queued(task->queue) + task->pending_inserts >=
               static_cast<std::size_t>(task->config.max_queued)) {
      refused = MakeError(ErrorCode::kQueueFull, "task \"" + rec.task + "\" already has " +
                                                     std::to_string(task->config.max_queued) +
                                                     " queued jobs (max_queued)");
    } else {
      rec.id = NewJobId();
      rec.seq = ++next_seq_;
      rec.created_at = now;
      ++task->pending_inserts;
      if (!rec.idempotency_key.empty()) {
        idempotency_[IdempotencySlot(rec.task, rec.idempotency_key)] =
            IdempotencyRecord{rec.id, rec.request_hash, now, false};
      }
      // The callback owns the job until it is durable; it is never dropped: the
      // queue calls every callback, with an error if the write failed.
      ActiveJob* raw = job.release();
      store_queue_->Write(StoreOp{StoreOp::Kind::kInsert, raw->record},
                          [this, raw, done](ErrorOr<bool> stored) {
                            OnInserted(std::unique_ptr<ActiveJob>(raw), std::move(stored), done);
                          });
    }
  }
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
  store_queue_->Drain();
}

void JobService::OnInserted(std::unique_ptr<ActiveJob> job, ErrorOr<bool> stored, SnapshotCallback done) {
  Deferred deferred;
  ErrorOr<JobSnapshot> answer = MakeError(ErrorCode::kInternal, "unset");
  {
    std::lock_guard lock(mu_);
    JobRecord& rec = job->record;
    --job->task->pending_inserts;
    auto slot = rec.idempotency_key.empty() ? idempotency_.end()
                                            : idempotency_.find(IdempotencySlot(rec.task, rec.idempotency_key));
    if (!stored) {
      spdlog::error("store: cannot insert job {}: {}", rec.id, stored.error().detail);
      if (slot != idempotency_.end() && slot->second.job_id == rec.id) idempotency_.erase(slot);
      answer = MakeError(ErrorCode::kUnavailable, "the job store cannot take writes: " + stored.error().detail);
    } else {
      if (slot != idempotency_.end() && slot->second.job_id == rec.id) slot->second.stored = true;
      ActiveJob* raw = job.get();
      active_.emplace(rec.id, std::move(job));
      raw->sched_seq = rec.seq;
      if (rec.map) raw->map = std::make_unique<MapState>(rec.input->get_array().size());
      if (raw->map && raw->map->total == 0) {
        // Nothing to run: an empty map succeeds with an empty list.
        rec.status = JobStatus::kSucceeded;
        rec.started_at = NowMillis();
        rec.result = Result::Json(boost::json::array()).output();
        rec.progress = 1.0;
        raw->map->stopping = true;
        FinishLocked(raw);
      } else {
        EnqueueLocked(raw);
        DispatchLocked(&deferred);
      }
      answer = SnapshotLocked(*raw);
    }
  }
  RunDeferred(std::move(deferred));
  done(std::move(answer));
}

void JobService::StoreGet(const std::string& id, std::function<void(ErrorOr<std::optional<JobRecord>>)> done) {
  store_queue_->Read([this, id, done = std::move(done)] { done(store_->Get(id)); });
}

void JobService::Get(const std::string& id, SnapshotCallback done) {
  std::optional<JobSnapshot> live;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it != active_.end()) live = SnapshotLocked(*it->second);
  }
  if (live) return done(std::move(*live));
  StoreGet(id, [id, done](ErrorOr<std::optional<JobRecord>> stored) {
    if (!stored) return done(stored.error());
    if (!*stored) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
    done(JobSnapshot{std::move(**stored), std::nullopt});
  });
}

void JobService::Cancel(const std::string& id, CancelCause cause, SnapshotCallback done) {
  Deferred deferred;
  std::optional<JobSnapshot> snap;
  std::optional<JobStatus> finished_as;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it != active_.end()) {
      ActiveJob* job = it->second.get();
      JobRecord& rec = job->record;
      if (rec.status == JobStatus::kQueued) {
        if (job->in_scheduler) {
          scheduler_.Remove(job->task->queue, SchedKey(*job));
          job->in_scheduler = false;
        }
        if (job->map) job->map->stopping = true;
        rec.status = JobStatus::kCanceled;
        rec.error = CancelError(cause, rec.task, config_.run_timeout);
        FinishLocked(job);
        snap = SnapshotLocked(*job);
        DispatchLocked(&deferred);  // It may have blocked the jobs behind it.
      } else if (rec.status == JobStatus::kRunning) {
        // The execution keeps its resources until it has really stopped; the job
        // is canceled for the client from now on.
        rec.status = JobStatus::kCanceled;
        rec.error = CancelError(cause, rec.task, config_.run_timeout);
        FinishLocked(job);
        if (job->map) {
          StopMapLocked(job, StopReason::kCanceled);
          DispatchLocked(&deferred);  // Its turn in the scheduler is gone.
        } else {
          job->run->RequestStop(StopReason::kCanceled);
        }
        snap = SnapshotLocked(*job);
      } else if (rec.status == JobStatus::kCanceled && Executing(*job)) {
        snap = SnapshotLocked(*job);  // Canceled earlier, still stopping: same answer.
      } else {
        finished_as = rec.status;  // Finished; only its final write is in flight.
      }
    }
  }
  if (finished_as) {
    return done(MakeError(ErrorCode::kConflict, "job " + id + " already finished as " +
                                                    std::string(JobStatusName(*finished_as))));
  }
  if (snap) {
    RunDeferred(std::move(deferred));
    return done(std::move(*snap));
  }
  StoreGet(id, [id, done](ErrorOr<std::optional<JobRecord>> stored) {
    if (!stored) return done(stored.error());
    if (!*stored) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
    done(MakeError(ErrorCode::kConflict, "job " + id + " already finished as " +
                                             std::string(JobStatusName((*stored)->status))));
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
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < page->jobs.size(); ++i) {
        JobRecord& rec = page->jobs[i];
        auto it = active_.find(rec.id);
        if (it != active_.end()) {
          JobSnapshot live = SnapshotLocked(*it->second);
          if (!query.status || live.record.status == *query.status) slots[i] = std::move(live);
        } else if (!IsFinished(rec.status)) {
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

JobService::WaitTicket JobService::AwaitFinish(const std::string& id,
                                               std::function<void(JobSnapshot)> on_finish) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  // A job whose final write is still in flight is waited for too: a waiter hears
  // "finished" only once the store (and so GET /v1/jobs) says so as well.
  if (it == active_.end() || it->second->final_durable) return 0;
  WaitTicket t = ++next_ticket_;
  it->second->waiters.push_back(Waiter{t, std::move(on_finish)});
  return t;
}

bool JobService::CancelAwait(const std::string& id, WaitTicket ticket) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return false;
  auto& ws = it->second->waiters;
  auto w = std::find_if(ws.begin(), ws.end(), [&](const Waiter& x) { return x.ticket == ticket; });
  if (w == ws.end()) return false;
  ws.erase(w);
  return true;
}

std::vector<TaskInfo> JobService::Tasks() const {
  std::vector<TaskInfo> out;
  std::lock_guard lock(mu_);
  for (const auto& [name, rt] : tasks_) {
    out.push_back(TaskInfo{name, DescribeRun(rt->config), rt->config.uses, rt->content_type,
                           rt->config.max_queued, scheduler_.queued(rt->queue), rt->config.timeout});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::vector<ResourceInfo> JobService::Resources() const {
  std::vector<ResourceInfo> out;
  std::lock_guard lock(mu_);
  int r = 0;
  for (const auto& [name, cap] : config_.resources) {
    out.push_back(ResourceInfo{name, cap, scheduler_.in_use(r), scheduler_.queued_demand(r)});
    ++r;
  }
  return out;
}

void JobService::BeginDrain() {
  std::lock_guard lock(mu_);
  draining_ = true;
}

bool JobService::draining() const {
  std::lock_guard lock(mu_);
  return draining_;
}

StoreHealth JobService::store_health() const {
  std::lock_guard lock(mu_);
  return StoreHealth{unstored_finals_, store_error_};
}

bool JobService::WaitForIdle(Millis timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [this] { return running_ == 0; });
}

void JobService::CancelAll() {
  // Clients waiting on a queued job get its state now (canceled, or still queued in
  // a durable store): the server is going away and would otherwise drop them.
  std::vector<std::pair<std::vector<Waiter>, JobSnapshot>> kept;
  {
    std::lock_guard lock(mu_);
    std::vector<ActiveJob*> queued;
    for (auto& [id, job] : active_) {
      if (job->record.status == JobStatus::kRunning && job->run) {
        job->run->RequestStop(StopReason::kShutdown);
      } else if (job->record.status == JobStatus::kRunning && job->map) {
        // A map between chunks, or with chunks in flight, ends now as a whole.
        job->record.status = JobStatus::kCanceled;
        job->record.error = JobError{"shutdown", "the server shut down while the map ran"};
        StopMapLocked(job.get(), StopReason::kShutdown);
        FinishLocked(job.get());
        if (!job->waiters.empty()) {
          kept.emplace_back(std::move(job->waiters), SnapshotLocked(*job));
          job->waiters.clear();
        }
      } else if (job->record.status == JobStatus::kQueued && !store_->durable()) {
        queued.push_back(job.get());
      } else if (job->record.status == JobStatus::kQueued && !job->waiters.empty()) {
        // A durable store keeps queued jobs queued: they resume at the next start.
        kept.emplace_back(std::move(job->waiters), SnapshotLocked(*job));
        job->waiters.clear();
      }
    }
    for (ActiveJob* job : queued) {
      if (job->in_scheduler) {
        scheduler_.Remove(job->task->queue, SchedKey(*job));
        job->in_scheduler = false;
      }
      // A memory store ends with this process: the waiters are answered now and the
      // write is not waited for, so a million queued jobs drop in a moment rather
      // than a million round trips through the store's callbacks.
      job->record.status = JobStatus::kCanceled;
      job->record.finished_at = NowMillis();
      job->record.error = JobError{"shutdown", "the server shut down before the job started"};
      WriteLocked(job->record);
      if (!job->waiters.empty()) {
        kept.emplace_back(std::move(job->waiters), JobSnapshot{job->record, std::nullopt});
      }
      active_.erase(job->record.id);
    }
  }
  store_queue_->Drain();
  for (auto& [waiters, snap] : kept) {
    for (auto& w : waiters) w.fn(snap);
  }
}

// REQUIRES: mu_ held.
void JobService::WriteLocked(const JobRecord& rec) {
  store_queue_->Write(StoreOp{StoreOp::Kind::kUpdate, rec}, nullptr);
}

// REQUIRES: mu_ held.
void JobService::DispatchLocked(Deferred* out) {
  // A store that refuses final states stops new work: what runs now could be stored
  // by nobody, and would run again after a crash.
  if (draining_ || unstored_finals_ > 0) return;
  scheduler_.Dispatch([&](int, ActiveJob* job) {
    job->in_scheduler = false;
    if (job->map) StartChunkLocked(job, out);
    else StartLocked(job, out);
  });
}

// REQUIRES: mu_ held; the job is not in the scheduler.
void JobService::EnqueueLocked(ActiveJob* job) {
  scheduler_.Enqueue(job->task->queue, SchedKey(*job), job);
  job->in_scheduler = true;
}

bool JobService::Executing(const ActiveJob& job) {
  return job.run != nullptr || (job.map && !job.map->contexts.empty());
}

size_t JobService::active_jobs() const {
  std::lock_guard lock(mu_);
  return active_.size();
}

// REQUIRES: mu_ held; the scheduler has reserved the job's resources.
void JobService::StartLocked(ActiveJob* job, Deferred* out) {
  JobRecord& rec = job->record;
  rec.status = JobStatus::kRunning;
  rec.started_at = NowMillis();
  rec.attempts += 1;
  job->run = std::make_shared<RunContext>();
  if (const Millis timeout = EffectiveTimeout(*job); timeout.count() > 0) {
    job->attempt_timer = timers_->Schedule(
        timeout, [this, id = rec.id, attempt = rec.attempts] { OnTimeout(id, attempt); });
  }
  WriteLocked(rec);
  ++running_;
  out->started.push_back(job);
}

// Sets finished_at and queues the final write; once it is durable the waiters are
// answered and the job leaves active_ — or, for a canceled job whose execution is
// still stopping, leaves it in OnExecutionDone. REQUIRES: mu_ held; rec.status is
// final (and rec.error set when it is canceled).
void JobService::FinishLocked(ActiveJob* job) {
  JobRecord& rec = job->record;
  if (rec.finished_at == 0) rec.finished_at = NowMillis();
  timers_->Cancel(job->attempt_timer);
  job->attempt_timer = 0;
  WriteFinalLocked(job);
}

// REQUIRES: mu_ held; the job's status is final.
void JobService::WriteFinalLocked(ActiveJob* job) {
  store_queue_->Write(StoreOp{StoreOp::Kind::kUpdate, job->record}, [this, id = job->record.id](ErrorOr<bool> stored) {
    // kUnavailable is the disk (full, read-only, failing): worth another try. Any
    // other refusal is a bug that another try would repeat.
    if (!stored && stored.error().code == ErrorCode::kUnavailable) return OnFinalWriteFailed(id, stored.error());
    if (!stored) spdlog::error("store: cannot record the end of {}: {}", id, stored.error().detail);
    OnFinishDurable(id);
  });
}

void JobService::OnFinalWriteFailed(const std::string& id, const Error& error) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return;
  ActiveJob* job = it->second.get();
  store_error_ = error.detail;
  if (stopping_) return;
  if (job->final_write_failures++ == 0 && unstored_finals_++ == 0) {
    spdlog::error("store: cannot record the end of job {}: {}; finished jobs stay in memory and are written "
                  "again until the store takes them, and no new job starts meanwhile",
                  id, error.detail);
  }
  timers_->Schedule(FinalWriteDelay(job->final_write_failures), [this, id] { OnFinalWriteRetryDue(id); });
}

void JobService::OnFinalWriteRetryDue(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return;
    WriteFinalLocked(it->second.get());
  }
  store_queue_->Drain();
}

bool JobService::WaitForFinalWrites(Millis timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [this] { return unstored_finals_ == 0; });
}

void JobService::OnFinishDurable(const std::string& id) {
  std::vector<Waiter> waiters;
  std::optional<JobSnapshot> snap;
  bool large_map_gone = false;
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return;
    ActiveJob* job = it->second.get();
    job->final_durable = true;
    if (job->final_write_failures > 0 && --unstored_finals_ == 0) {
      spdlog::info("store: takes writes again; every finished job is recorded; starting new jobs");
      idle_cv_.notify_all();
      DispatchLocked(&deferred);
    }
    waiters = std::move(job->waiters);
    job->waiters.clear();
    snap = JobSnapshot{job->record, std::nullopt};
    if (!Executing(*job)) {
      large_map_gone = job->map && job->map->total >= kLargeMap;
      active_.erase(it);
    }
  }
  RunDeferred(std::move(deferred));
  for (auto& w : waiters) w.fn(*snap);
  // A large map's many small allocations are free now; hand the pages back rather
  // than keep the peak for good.
  if (large_map_gone) malloc_trim(0);
}

// REQUIRES: mu_ held.
JobSnapshot JobService::SnapshotLocked(const ActiveJob& job) const {
  JobSnapshot snap{job.record, std::nullopt};
  if (job.map) {
    const MapState& m = *job.map;
    snap.map = MapCounts{m.total, m.done, m.failed, m.running};
    if (job.record.status == JobStatus::kRunning) {
      snap.record.progress = static_cast<double>(m.done) / static_cast<double>(m.total);
    }
  }
  if (job.record.status == JobStatus::kQueued) {
    snap.position = scheduler_.Position(job.task->queue, SchedKey(job));
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

void JobService::RunDeferred(Deferred deferred) {
  store_queue_->Drain();
  for (ActiveJob* job : deferred.started) {
    Execution exec{job->record.id, job->record.task, job->record.input, job->record.priority,
                   job->record.attempts, job->run};
    job->task->executor->Start(std::move(exec),
                               [this, job](Result outcome) { OnExecutionDone(job, std::move(outcome)); });
  }
  for (auto& chunk : deferred.chunks) {
    // The job's id, task, input and map spec do not change while it is active:
    // they are read here without mu_.
    const ActiveJob& job = *chunk->job;
    const boost::json::array& elements = job.record.input->get_array();
    std::vector<Execution> execs;
    execs.reserve(chunk->indices.size());
    for (std::size_t i = 0; i < chunk->indices.size(); ++i) {
      const std::size_t index = chunk->indices[i];
      // Aliasing pointers: the elements stay in the parent's input, uncopied.
      execs.push_back(Execution{job.record.id + "." + std::to_string(index), job.record.task,
                                std::shared_ptr<const boost::json::value>(job.record.input, &elements[index]),
                                job.record.priority, chunk->attempts.empty() ? 1 : chunk->attempts[i],
                                chunk->context});
    }
    const bool stop_on_failure = !job.record.map->collect && job.task->config.retries == 0;
    chunk->dispatched = std::chrono::steady_clock::now();
    job.task->executor->StartBatch(std::move(execs), stop_on_failure,
                                   [this, chunk](std::vector<std::optional<Result>> outcomes) {
                                     OnChunkDone(chunk, std::move(outcomes));
                                   });
  }
}

// REQUIRES: mu_ held; the scheduler has reserved one execution's resources.
void JobService::StartChunkLocked(ActiveJob* job, Deferred* out) {
  JobRecord& rec = job->record;
  MapState& m = *job->map;
  if (rec.status == JobStatus::kQueued) {
    rec.status = JobStatus::kRunning;
    rec.started_at = NowMillis();
    rec.attempts += 1;
    WriteLocked(rec);
  }
  auto chunk = std::make_shared<MapChunk>();
  chunk->job = job;
  const std::size_t size = ChunkSizeLocked(*job);
  while (chunk->indices.size() < size && !m.again.empty()) {
    chunk->indices.push_back(m.again.front());
    m.again.pop_front();
  }
  while (chunk->indices.size() < size && m.next < m.total) chunk->indices.push_back(m.next++);
  if (!m.failed_attempts.empty()) {
    for (std::size_t index : chunk->indices) {
      auto it = m.failed_attempts.find(index);
      chunk->attempts.push_back(it == m.failed_attempts.end() ? 1 : it->second + 1);
    }
  }
  chunk->context = std::make_shared<RunContext>();
  if (const Millis timeout = EffectiveTimeout(*job); timeout.count() > 0) {
    // Each element may take the whole timeout: the chunk's bound is their sum.
    const auto bound = timeout * static_cast<std::int64_t>(chunk->indices.size());
    chunk->timer = timers_->Schedule(bound, [ctx = std::weak_ptr<RunContext>(chunk->context)] {
      if (auto c = ctx.lock()) c->RequestStop(StopReason::kTimeout);
    });
  }
  m.contexts.push_back(chunk->context);
  m.running += chunk->indices.size();
  ++running_;
  out->chunks.push_back(std::move(chunk));
  if (m.pending()) {
    // Its turn is over: to the end of its priority class.
    job->sched_seq = ++next_seq_;
    EnqueueLocked(job);
  }
}

// Elements per chunk. A chunk should take about kChunkTarget: long enough that a
// dispatch (tens of microseconds) costs under 5% even for the tiniest elements,
// short enough that the jobs taking turns with the map wait about that long.
// REQUIRES: mu_ held.
std::size_t JobService::ChunkSizeLocked(const ActiveJob& job) const {
  const MapState& m = *job.map;
  if (job.record.map->chunk > 0) return static_cast<std::size_t>(job.record.map->chunk);
  if (m.ns_per_element <= 0) return 1;  // Measure first.
  const double fit = static_cast<double>(kChunkTarget.count()) * 1e6 / m.ns_per_element;
  // At the tail, leave some for every slot rather than one long last chunk.
  const std::size_t remaining = m.total - m.next + m.again.size();
  const std::size_t share = std::max<std::size_t>(1, remaining / (2 * job.task->parallelism));
  return std::clamp<std::size_t>(std::min(static_cast<std::size_t>(fit), share), 1, kMaxChunk);
}

void JobService::OnChunkDone(const std::shared_ptr<MapChunk>& chunk, std::vector<std::optional<Result>> outcomes) {
  const auto elapsed = std::chrono::steady_clock::now() - chunk->dispatched;
  // Copies of the element results are made before the lock is taken.
  std::vector<boost::json::value> values(outcomes.size());
  std::size_t ran = 0, last_ran = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    if (!outcomes[i]) continue;
    ++ran;
    last_ran = i;
    if (!outcomes[i]->ok()) continue;
    const Output& out = *outcomes[i]->output();
    // A map's result is one JSON list: a binary element result goes in it as base64.
    values[i] = out.is_json() ? out.json
                              : boost::json::value(boost::json::object{{"content_type", out.content_type},
                                                                       {"base64", Base64Encode(out.bytes)}});
  }
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    ActiveJob* job = chunk->job;
    MapState& m = *job->map;
    JobRecord& rec = job->record;
    scheduler_.Release(job->task->queue);
    if (--running_ == 0) idle_cv_.notify_all();
    timers_->Cancel(chunk->timer);
    m.running -= chunk->indices.size();
    std::erase(m.contexts, chunk->context);
    const StopReason stop = chunk->context->stop_reason();
    if (ran > 0) {
      const double per = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()) /
                         static_cast<double>(ran);
      m.ns_per_element = m.ns_per_element > 0 ? (m.ns_per_element + per) / 2 : per;
    }
    const TaskConfig& tc = job->task->config;
    for (std::size_t i = 0; i < outcomes.size() && !m.stopping; ++i) {
      const std::size_t index = chunk->indices[i];
      if (!outcomes[i]) {
        m.again.push_back(index);  // The chunk stopped before it: it goes out again.
        continue;
      }
      std::optional<JobError> failure;
      if (!outcomes[i]->ok()) {
        failure = outcomes[i]->error();
        if (stop == StopReason::kTimeout && i == last_ran) {
          failure = JobError{"timeout", "the element ran longer than its timeout of " +
                                            std::to_string(EffectiveTimeout(*job).count()) + " ms"};
        }
      }
      if (!failure) {
        m.results[index] = rec.map->collect ? boost::json::value(boost::json::object{{"ok", std::move(values[i])}})
                                       : std::move(values[i]);
        ++m.done;
        continue;
      }
      const int failed_attempts = ++m.failed_attempts[index];
      if (failure->type != "invalid_input" && !draining_ && failed_attempts <= tc.retries) {
        // Not cancelled when the map ends: it is short (the back-off) and finds the
        // map stopped.
        timers_->Schedule(RetryDelay(tc, failed_attempts),
                          [this, id = rec.id, index] { OnElementRetryDue(id, index); });
        continue;
      }
      ++m.done;
      ++m.failed;
      if (rec.map->collect) {
        m.results[index] = boost::json::object{
            {"error", boost::json::object{{"type", failure->type}, {"message", failure->message}}}};
        continue;
      }
      rec.status = JobStatus::kFailed;
      rec.error = JobError{failure->type, "element " + std::to_string(index) + " of " + std::to_string(m.total) +
                                              " failed: " + failure->message};
      rec.map->failed_index = static_cast<std::int64_t>(index);
      rec.progress = static_cast<double>(m.done) / static_cast<double>(m.total);
      StopMapLocked(job, StopReason::kCanceled);
      FinishLocked(job);
    }
    if (m.stopping) {
      // Ended (canceled, shut down or failed fast): it leaves once its last chunk
      // has reported and its final state is durable.
      if (!Executing(*job) && job->final_durable) active_.erase(rec.id);
    } else if (m.done == m.total) {
      rec.status = JobStatus::kSucceeded;
      rec.result = Result::Json(std::move(m.results)).output();
      rec.progress = 1.0;
      m.stopping = true;
      FinishLocked(job);
    } else if (m.pending() && !job->in_scheduler) {
      job->sched_seq = ++next_seq_;
      EnqueueLocked(job);
    }
    DispatchLocked(&deferred);
  }
  RunDeferred(std::move(deferred));
}

// Nothing more of the map starts; its chunks in flight are asked to stop.
// REQUIRES: mu_ held.
void JobService::StopMapLocked(ActiveJob* job, StopReason reason) {
  MapState& m = *job->map;
  m.stopping = true;
  m.again.clear();
  if (job->in_scheduler) {
    scheduler_.Remove(job->task->queue, SchedKey(*job));
    job->in_scheduler = false;
  }
  for (auto& ctx : m.contexts) ctx->RequestStop(reason);
}

void JobService::OnElementRetryDue(const std::string& id, std::size_t index) {
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end() || !it->second->map || it->second->map->stopping) return;
    ActiveJob* job = it->second.get();
    job->map->again.push_back(index);
    if (!job->in_scheduler) {
      job->sched_seq = ++next_seq_;
      EnqueueLocked(job);
    }
    DispatchLocked(&deferred);
  }
  RunDeferred(std::move(deferred));
}

void JobService::OnExecutionDone(ActiveJob* job, Result outcome) {
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    scheduler_.Release(job->task->queue);
    JobRecord& rec = job->record;
    const StopReason stop = job->run->stop_reason();
    const double progress = job->run->progress();
    job->run.reset();
    timers_->Cancel(job->attempt_timer);
    job->attempt_timer = 0;
    if (--running_ == 0) idle_cv_.notify_all();
    if (rec.status == JobStatus::kCanceled) {
      // Canceled while running: its final state was queued by Cancel. Erase it once
      // that write is durable (else OnFinishDurable erases it).
      if (job->final_durable) active_.erase(rec.id);
    } else {
      std::optional<JobError> failure;
      if (stop == StopReason::kTimeout) {
        failure = JobError{"timeout", "the job ran longer than its timeout of " +
                                          std::to_string(EffectiveTimeout(*job).count()) + " ms"};
      } else if (stop == StopReason::kShutdown) {
        rec.status = JobStatus::kCanceled;
        rec.error = JobError{"shutdown", "the server shut down while the job ran"};
      } else if (outcome.ok()) {
        rec.status = JobStatus::kSucceeded;
        rec.result = outcome.output();
        rec.progress = 1.0;
      } else {
        failure = outcome.error();
      }
      if (progress >= 0 && rec.status != JobStatus::kSucceeded) rec.progress = progress;
      const bool retry = failure && failure->type != "invalid_input" && !draining_ &&
                         rec.attempts <= job->task->config.retries;
      if (retry) {
        rec.error_history.push_back(*failure);
        if (rec.error_history.size() > kErrorHistory) rec.error_history.erase(rec.error_history.begin());
        rec.status = JobStatus::kQueued;
        rec.started_at = 0;
        rec.progress.reset();
        WriteLocked(rec);
        job->attempt_timer = timers_->Schedule(RetryDelay(job->task->config, rec.attempts),
                                               [this, id = rec.id, attempt = rec.attempts] { OnRetryDue(id, attempt); });
      } else {
        if (failure) {
          rec.status = JobStatus::kFailed;
          rec.error = std::move(failure);
        }
        FinishLocked(job);
      }
    }
    DispatchLocked(&deferred);
  }
  RunDeferred(std::move(deferred));
}

void JobService::OnRetryDue(const std::string& id, int attempt) {
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return;
    ActiveJob* job = it->second.get();
    if (job->record.attempts != attempt || job->record.status != JobStatus::kQueued || job->in_scheduler) return;
    job->attempt_timer = 0;
    // Its original seq keeps its place: a retry goes before jobs submitted after it.
    job->sched_seq = job->record.seq;
    EnqueueLocked(job);
    DispatchLocked(&deferred);
  }
  RunDeferred(std::move(deferred));
}

// Belt and braces: the timer is cancelled when its attempt ends, and the attempt
// number is checked in case it fired just before.
void JobService::OnTimeout(const std::string& id, int attempt) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end() || it->second->record.attempts != attempt || !it->second->run) return;
  it->second->attempt_timer = 0;
  it->second->run->RequestStop(StopReason::kTimeout);
}

void JobService::ScheduleRetention() {
  const Millis period = std::clamp(config_.retention / 10, Millis(100), Millis(60'000));
  timers_->Schedule(period, [this] {
    RemoveExpired();
    ScheduleRetention();
  });
}

void JobService::RemoveExpired() {
  const UnixMillis now = NowMillis();
  {
    std::lock_guard lock(mu_);
    for (auto it = idempotency_.begin(); it != idempotency_.end();) {
      if (it->second.stored && it->second.created_at + config_.idempotency_ttl.count() <= now) {
        it = idempotency_.erase(it);
      } else {
        ++it;
      }
    }
  }
  auto removed = store_->RemoveFinishedBefore(now - config_.retention.count());
  if (!removed) spdlog::error("store: retention failed: {}", removed.error().detail);
  else if (*removed > 0) spdlog::debug("retention: removed {} finished jobs", *removed);
}

}  // namespace offload
