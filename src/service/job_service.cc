#include "service/job_service.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "exec/inprocess_executor.h"
#include "util/id_generator.h"

namespace offload {

namespace asio = boost::asio;

struct JobService::TaskRuntime {
  TaskConfig config;
  std::string content_type;
  InputValidator validate;
  std::unique_ptr<Executor> executor;
  int queue = 0;
};

struct JobService::ActiveJob {
  JobRecord record;
  TaskRuntime* task = nullptr;
  std::shared_ptr<RunContext> run;  // Set while an execution is under way.
  std::vector<Waiter> waiters;
};

namespace {

// Resource names in a fixed order: their index is their bit in ResourceDemand::mask.
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

// Threads enough for every job that can run at once: each holds at least one unit.
std::size_t PoolSize(const ServerConfig& c) {
  std::int64_t total = 0;
  for (const auto& [name, cap] : c.resources) total += cap;
  return static_cast<std::size_t>(std::clamp<std::int64_t>(total, 1, 1024));
}

}  // namespace

JobService::JobService(const ServerConfig& config, TaskRegistry registry,
                       std::unique_ptr<Store> store)
    : config_(config),
      registry_(std::move(registry)),
      store_(std::move(store)),
      pool_(std::make_unique<ThreadPool>(PoolSize(config), /*nice_increment=*/5)),
      scheduler_(Capacities(config)),
      timers_work_(asio::make_work_guard(timers_)),
      timer_thread_([this] { timers_.run(); }) {}

ErrorOr<std::unique_ptr<JobService>> JobService::Create(const ServerConfig& config,
                                                        TaskRegistry registry,
                                                        std::unique_ptr<Store> store) {
  auto valid = ValidateConfig(config);
  if (!valid) return valid.error();
  std::unique_ptr<JobService> service(new JobService(config, std::move(registry), std::move(store)));
  const std::vector<std::string> names = ResourceNames(config);
  for (const auto& [name, tc] : config.tasks) {
    const std::string builtin = tc.run.substr(tc.run.find(':') + 1);
    const TaskDefinition* def = service->registry_.Find(builtin);
    if (!def) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "task \"" + name + "\": no in-process handler named \"" + builtin + "\"");
    }
    auto rt = std::make_unique<TaskRuntime>();
    rt->config = tc;
    rt->content_type = tc.content_type.empty() ? def->content_type : tc.content_type;
    rt->validate = def->validate;
    rt->executor = std::make_unique<InProcessExecutor>(def, service->pool_.get());
    ResourceDemand demand;
    for (const auto& [res, amount] : tc.uses) {
      auto idx = std::find(names.begin(), names.end(), res) - names.begin();
      demand.Add(static_cast<int>(idx), amount);
    }
    rt->queue = service->scheduler_.AddQueue(std::move(demand));
    service->tasks_.emplace(name, std::move(rt));
  }
  service->ScheduleRetention();
  return service;
}

JobService::~JobService() {
  BeginDrain();
  CancelAll();
  WaitForIdle(Millis(10'000));
  timers_work_.reset();
  timers_.stop();
  timer_thread_.join();
  pool_.reset();  // Joins the pool threads before the jobs they point at go away.
}

void JobService::Submit(SubmitRequest request, SnapshotCallback done) {
  auto task_it = tasks_.find(request.task);
  if (task_it == tasks_.end()) {
    return done(MakeError(ErrorCode::kInvalidArgument,
                          "task: no task named \"" + request.task + "\"; GET /v1/tasks lists them"));
  }
  TaskRuntime* task = task_it->second.get();
  if (task->validate) {
    if (auto problem = task->validate(request.input)) {
      return done(MakeError(ErrorCode::kInvalidArgument, *problem));
    }
  }
  auto job = std::make_unique<ActiveJob>();
  job->task = task;
  JobRecord& rec = job->record;
  rec.id = NewJobId();
  rec.task = request.task;
  rec.priority = request.priority;
  rec.input = std::make_shared<const boost::json::value>(std::move(request.input));

  Deferred deferred;
  ErrorOr<JobSnapshot> answer = MakeError(ErrorCode::kInternal, "unset");
  {
    std::lock_guard lock(mu_);
    if (draining_) {
      answer = MakeError(ErrorCode::kUnavailable, "the server is shutting down; retry elsewhere");
    } else if (scheduler_.queued(task->queue) >= static_cast<std::size_t>(task->config.max_queued)) {
      answer = MakeError(ErrorCode::kQueueFull,
                         "task \"" + rec.task + "\" already has " +
                             std::to_string(task->config.max_queued) + " queued jobs (max_queued)");
    } else {
      rec.seq = ++next_seq_;
      rec.created_at = NowMillis();
      if (auto stored = store_->Insert(rec); !stored) {
        spdlog::error("store: cannot insert job {}: {}", rec.id, stored.error().detail);
        answer = MakeError(ErrorCode::kUnavailable,
                           "the job store cannot take writes: " + stored.error().detail);
      } else {
        ActiveJob* raw = job.get();
        active_.emplace(rec.id, std::move(job));
        scheduler_.Enqueue(task->queue, Scheduler<ActiveJob*>::MakeKey(rec.priority, rec.seq), raw);
        DispatchLocked(&deferred);
        answer = SnapshotLocked(*raw);
      }
    }
  }
  RunDeferred(std::move(deferred));
  done(std::move(answer));
}

void JobService::Get(const std::string& id, SnapshotCallback done) {
  std::optional<JobSnapshot> live;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it != active_.end()) live = SnapshotLocked(*it->second);
  }
  if (live) return done(std::move(*live));
  auto stored = store_->Get(id);
  if (!stored) return done(stored.error());
  if (!*stored) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
  done(JobSnapshot{std::move(**stored), std::nullopt});
}

void JobService::Cancel(const std::string& id, SnapshotCallback done) {
  Deferred deferred;
  std::optional<JobSnapshot> snap;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it != active_.end()) {
      ActiveJob* job = it->second.get();
      JobRecord& rec = job->record;
      if (rec.status == JobStatus::kQueued) {
        scheduler_.Remove(job->task->queue, Scheduler<ActiveJob*>::MakeKey(rec.priority, rec.seq));
        rec.status = JobStatus::kCanceled;
        FinishLocked(job, &deferred);  // Erases job.
        DispatchLocked(&deferred);     // It may have blocked the jobs behind it.
        snap = deferred.notify.back().second;
      } else if (rec.status == JobStatus::kRunning) {
        // The execution keeps its resources until it has really stopped; the job
        // is canceled for the client from now on.
        rec.status = JobStatus::kCanceled;
        rec.finished_at = NowMillis();
        rec.error = JobError{"canceled", "canceled by a DELETE request"};
        if (auto s = store_->Update(rec); !s) {
          spdlog::error("store: cannot record cancel of {}: {}", rec.id, s.error().detail);
        }
        job->run->RequestStop(StopReason::kCanceled);
        snap = SnapshotLocked(*job);
        deferred.notify.emplace_back(std::move(job->waiters), *snap);
        job->waiters.clear();
      } else {
        snap = SnapshotLocked(*job);  // Canceled earlier, still stopping: same answer.
      }
    }
  }
  if (snap) {
    RunDeferred(std::move(deferred));
    return done(std::move(*snap));
  }
  auto stored = store_->Get(id);
  if (!stored) return done(stored.error());
  if (!*stored) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
  done(MakeError(ErrorCode::kConflict, "job " + id + " already finished as " +
                                           std::string(JobStatusName((*stored)->status))));
}

void JobService::List(const JobQuery& query, PageCallback done) {
  auto page = store_->List(query);
  if (!page) return done(page.error(), std::nullopt);
  std::vector<JobSnapshot> out;
  out.reserve(page->jobs.size());
  {
    // Active jobs: the live view (progress, position, a status newer than the
    // store's) wins over the stored copy.
    std::lock_guard lock(mu_);
    for (JobRecord& rec : page->jobs) {
      auto it = active_.find(rec.id);
      if (it != active_.end()) out.push_back(SnapshotLocked(*it->second));
      else out.push_back(JobSnapshot{std::move(rec), std::nullopt});
    }
  }
  done(std::move(out), page->next_before_seq);
}

JobService::WaitTicket JobService::AwaitFinish(const std::string& id,
                                               std::function<void(JobSnapshot)> on_finish) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end() || IsFinished(it->second->record.status)) return 0;
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
    out.push_back(TaskInfo{name, rt->config.run, rt->config.uses, rt->content_type,
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

bool JobService::WaitForIdle(Millis timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [this] { return running_ == 0; });
}

void JobService::CancelAll() {
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    std::vector<ActiveJob*> queued;
    for (auto& [id, job] : active_) {
      if (job->record.status == JobStatus::kQueued) queued.push_back(job.get());
      else if (job->run) job->run->RequestStop(StopReason::kShutdown);
    }
    for (ActiveJob* job : queued) {
      scheduler_.Remove(job->task->queue,
                        Scheduler<ActiveJob*>::MakeKey(job->record.priority, job->record.seq));
      job->record.status = JobStatus::kCanceled;
      job->record.error = JobError{"shutdown", "the server shut down before the job started"};
      FinishLocked(job, &deferred);
    }
  }
  RunDeferred(std::move(deferred));
}

// REQUIRES: mu_ held.
void JobService::DispatchLocked(Deferred* out) {
  if (draining_) return;
  scheduler_.Dispatch([&](int, ActiveJob* job) { StartLocked(job, out); });
}

// REQUIRES: mu_ held; the scheduler has reserved the job's resources.
void JobService::StartLocked(ActiveJob* job, Deferred* out) {
  JobRecord& rec = job->record;
  rec.status = JobStatus::kRunning;
  rec.started_at = NowMillis();
  rec.attempts += 1;
  job->run = std::make_shared<RunContext>();
  if (auto s = store_->Update(rec); !s) {
    spdlog::error("store: cannot record start of {}: {}", rec.id, s.error().detail);
  }
  ++running_;
  out->started.push_back(job);
}

// Sets finished_at, writes the final record, hands the waiters to `out` and erases
// the job. REQUIRES: mu_ held; rec.status is final; the job holds no resources.
void JobService::FinishLocked(ActiveJob* job, Deferred* out) {
  JobRecord& rec = job->record;
  if (rec.finished_at == 0) rec.finished_at = NowMillis();
  if (rec.status == JobStatus::kCanceled && !rec.error) {
    rec.error = JobError{"canceled", "canceled by a DELETE request"};
  }
  if (auto s = store_->Update(rec); !s) {
    spdlog::error("store: cannot record the end of {}: {}", rec.id, s.error().detail);
  }
  out->notify.emplace_back(std::move(job->waiters), JobSnapshot{rec, std::nullopt});
  active_.erase(rec.id);
}

// REQUIRES: mu_ held.
JobSnapshot JobService::SnapshotLocked(const ActiveJob& job) const {
  JobSnapshot snap{job.record, std::nullopt};
  if (job.record.status == JobStatus::kQueued) {
    snap.position = scheduler_.Position(
        job.task->queue, Scheduler<ActiveJob*>::MakeKey(job.record.priority, job.record.seq));
  } else if (job.record.status == JobStatus::kRunning && job.run && job.run->progress() >= 0) {
    snap.record.progress = job.run->progress();
  }
  return snap;
}

void JobService::RunDeferred(Deferred deferred) {
  for (ActiveJob* job : deferred.started) {
    Execution exec{job->record.id, job->record.task, job->record.input, job->record.priority,
                   job->record.attempts, job->run};
    const Millis timeout = job->task->config.timeout;
    if (timeout.count() > 0) {
      auto timer = std::make_shared<asio::steady_timer>(timers_, timeout);
      timer->async_wait([this, timer, id = job->record.id, seq = job->record.seq](
                            const boost::system::error_code& ec) {
        if (!ec) OnTimeout(id, seq);
      });
    }
    job->task->executor->Start(std::move(exec),
                               [this, job](Result outcome) { OnExecutionDone(job, std::move(outcome)); });
  }
  for (auto& [waiters, snap] : deferred.notify) {
    for (auto& w : waiters) w.fn(snap);
  }
}

void JobService::OnExecutionDone(ActiveJob* job, Result outcome) {
  Deferred deferred;
  {
    std::lock_guard lock(mu_);
    scheduler_.Release(job->task->queue);
    JobRecord& rec = job->record;
    const StopReason stop = job->run->stop_reason();
    if (rec.status == JobStatus::kRunning) {
      if (stop == StopReason::kTimeout) {
        rec.status = JobStatus::kFailed;
        rec.error = JobError{"timeout", "the job ran longer than the task's timeout of " +
                                            std::to_string(job->task->config.timeout.count()) + " ms"};
      } else if (stop == StopReason::kShutdown) {
        rec.status = JobStatus::kCanceled;
        rec.error = JobError{"shutdown", "the server shut down while the job ran"};
      } else if (outcome.ok()) {
        rec.status = JobStatus::kSucceeded;
        rec.result = outcome.output();
        rec.progress = 1.0;
      } else {
        rec.status = JobStatus::kFailed;
        rec.error = outcome.error();
      }
    }
    if (job->run->progress() >= 0 && rec.status != JobStatus::kSucceeded) {
      rec.progress = job->run->progress();
    }
    job->run.reset();
    FinishLocked(job, &deferred);
    if (--running_ == 0) idle_cv_.notify_all();
    DispatchLocked(&deferred);
  }
  RunDeferred(std::move(deferred));
}

void JobService::OnTimeout(const std::string& id, std::uint64_t seq) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end() || it->second->record.seq != seq || !it->second->run) return;
  it->second->run->RequestStop(StopReason::kTimeout);
}

void JobService::ScheduleRetention() {
  const Millis period = std::clamp(config_.retention / 10, Millis(100), Millis(60'000));
  auto timer = std::make_shared<asio::steady_timer>(timers_, period);
  timer->async_wait([this, timer](const boost::system::error_code& ec) {
    if (ec) return;
    RemoveExpired();
    ScheduleRetention();
  });
}

void JobService::RemoveExpired() {
  auto removed = store_->RemoveFinishedBefore(NowMillis() - config_.retention.count());
  if (!removed) spdlog::error("store: retention failed: {}", removed.error().detail);
  else if (*removed > 0) spdlog::debug("retention: removed {} finished jobs", *removed);
}

}  // namespace offload
