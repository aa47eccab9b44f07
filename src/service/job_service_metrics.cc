// JobService's series of GET /metrics (docs/operations.md lists them). The counts
// are copied under mu_, in one pass over the tasks; what has a lock of its own (the
// executors' workers, the store queue, the event log) is read after it is released.
#include <algorithm>

#include "service/active_job.h"
#include "service/job_service.h"

namespace offload {

namespace {

struct TenantCounts {
  std::string name;
  std::uint64_t queued = 0;
  std::vector<std::int64_t> in_use;  // Per resource, in config order.
  std::vector<double> seconds;
};

struct TaskCounts {
  std::string name;
  TaskMetrics metrics;
  std::size_t queued = 0;
  std::int64_t running = 0;
  std::optional<WorkerStatus> workers;
};

}  // namespace

void JobService::WriteMetrics(MetricsText* out) const {
  std::vector<TaskCounts> tasks;
  std::vector<ResourceInfo> resources;
  std::vector<TenantCounts> tenant_counts;  // With [auth]: the tenants seen since start.
  std::size_t active = 0;
  std::size_t unstored = 0;
  bool draining = false;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, rt] : tasks_) {
      tasks.push_back(TaskCounts{name, rt->metrics, QueuedLocked(*rt), scheduler_.running(rt->queue), std::nullopt});
    }
    resources = ResourcesLocked();
    for (const auto& [name, tenant] : tenants_) {
      TenantCounts& c = tenant_counts.emplace_back(TenantCounts{name, scheduler_.queued_of(tenant.sched), {}, {}});
      for (int r = 0; r < static_cast<int>(resources.size()); ++r) {
        c.in_use.push_back(scheduler_.shares().running_units(tenant.sched, r));
        c.seconds.push_back(scheduler_.shares().consumed(tenant.sched, r));
      }
    }
    active = active_.size();
    unstored = unstored_finals_;
    draining = draining_;
  }
  for (TaskCounts& t : tasks) t.workers = tasks_.at(t.name)->executor->Workers();
  std::sort(tasks.begin(), tasks.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

  auto per_task = [&](std::string_view name, MetricType type, std::string_view help, auto value) {
    out->Family(name, type, help);
    for (const TaskCounts& t : tasks) out->Sample(name, {{"task", t.name}}, value(t));
  };
  per_task("offload_jobs_submitted_total", MetricType::kCounter, "Jobs accepted on this node (their insert durable).",
           [](const TaskCounts& t) { return t.metrics.submitted; });
  per_task("offload_jobs_started_total", MetricType::kCounter,
           "Attempts started on this node (a retried job starts again).",
           [](const TaskCounts& t) { return t.metrics.started; });
  out->Family("offload_jobs_finished_total", MetricType::kCounter,
              "Jobs that ended on this node, by final status (succeeded, failed, canceled).");
  for (const TaskCounts& t : tasks) {
    out->Sample("offload_jobs_finished_total", {{"task", t.name}, {"status", "succeeded"}}, t.metrics.succeeded);
    out->Sample("offload_jobs_finished_total", {{"task", t.name}, {"status", "failed"}}, t.metrics.failed);
    out->Sample("offload_jobs_finished_total", {{"task", t.name}, {"status", "canceled"}}, t.metrics.canceled);
  }
  per_task("offload_job_retries_total", MetricType::kCounter, "Attempts that failed and were queued again.",
           [](const TaskCounts& t) { return t.metrics.retried; });
  per_task("offload_jobs_queued", MetricType::kGauge,
           "Jobs waiting to start (in a cluster: the cluster's queue as this node last counted it).",
           [](const TaskCounts& t) { return static_cast<std::uint64_t>(t.queued); });
  per_task("offload_jobs_running", MetricType::kGauge,
           "Executions running on this node (each chunk of a parallel map counts once).",
           [](const TaskCounts& t) { return t.running; });
  out->Family("offload_job_queue_wait_seconds", MetricType::kHistogram,
              "Seconds from a job's submit to the start of its first attempt.");
  for (const TaskCounts& t : tasks)
    out->Samples("offload_job_queue_wait_seconds", {{"task", t.name}}, t.metrics.queue_wait);
  out->Family("offload_job_run_seconds", MetricType::kHistogram,
              "Seconds from the start of a job's last attempt to its end, for jobs that started.");
  for (const TaskCounts& t : tasks) out->Samples("offload_job_run_seconds", {{"task", t.name}}, t.metrics.run_time);

  auto per_resource = [&](std::string_view name, std::string_view help, auto value) {
    out->Family(name, MetricType::kGauge, help);
    for (const ResourceInfo& r : resources) out->Sample(name, {{"resource", r.name}}, value(r));
  };
  per_resource("offload_resource_capacity", "Units of the resource this node has (config [resources]).",
               [](const ResourceInfo& r) { return r.capacity; });
  per_resource("offload_resource_in_use", "Units of the resource held by running jobs on this node.",
               [](const ResourceInfo& r) { return r.in_use; });
  per_resource("offload_resource_queued_demand", "Units of the resource the jobs queued on this node will ask for.",
               [](const ResourceInfo& r) { return r.queued_demand; });

  // Tenants (with [auth]): what fair share and the quotas work from.
  std::sort(tenant_counts.begin(), tenant_counts.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  out->Family("offload_tenant_jobs_queued", MetricType::kGauge,
              "Jobs of the tenant waiting in this node's scheduler (with [auth]).");
  for (const TenantCounts& t : tenant_counts) out->Sample("offload_tenant_jobs_queued", {{"tenant", t.name}}, t.queued);
  out->Family("offload_tenant_resource_in_use", MetricType::kGauge,
              "Units of the resource held by the tenant's running jobs on this node (with [auth]).");
  for (const TenantCounts& t : tenant_counts) {
    for (std::size_t r = 0; r < resources.size(); ++r) {
      out->Sample("offload_tenant_resource_in_use", {{"tenant", t.name}, {"resource", resources[r].name}}, t.in_use[r]);
    }
  }
  out->Family("offload_tenant_resource_seconds_total", MetricType::kCounter,
              "Unit-seconds of the resource the tenant's ended executions held on this node: its share of the "
              "resource's time is the rate of this over the rate of the sum (with [auth]).");
  for (const TenantCounts& t : tenant_counts) {
    for (std::size_t r = 0; r < resources.size(); ++r) {
      out->Sample("offload_tenant_resource_seconds_total", {{"tenant", t.name}, {"resource", resources[r].name}},
                  t.seconds[r]);
    }
  }

  // Workers: only the tasks run by persistent worker processes.
  std::vector<const TaskCounts*> pooled;
  for (const TaskCounts& t : tasks) {
    if (t.workers) pooled.push_back(&t);
  }
  out->Family("offload_worker_processes", MetricType::kGauge,
              "Worker processes of a task by state: starting (or waiting to be restarted), idle, busy.");
  for (const TaskCounts* t : pooled) {
    out->Sample("offload_worker_processes", {{"task", t->name}, {"state", "starting"}},
                std::int64_t{t->workers->starting});
    out->Sample("offload_worker_processes", {{"task", t->name}, {"state", "idle"}}, std::int64_t{t->workers->idle});
    out->Sample("offload_worker_processes", {{"task", t->name}, {"state", "busy"}}, std::int64_t{t->workers->busy});
  }
  out->Family("offload_worker_processes_configured", MetricType::kGauge, "Worker processes the task keeps (config).");
  for (const TaskCounts* t : pooled) {
    out->Sample("offload_worker_processes_configured", {{"task", t->name}}, std::int64_t{t->workers->configured});
  }
  out->Family("offload_worker_starts_total", MetricType::kCounter, "Worker processes spawned.");
  for (const TaskCounts* t : pooled)
    out->Sample("offload_worker_starts_total", {{"task", t->name}}, t->workers->started);
  out->Family("offload_worker_restarts_total", MetricType::kCounter,
              "Worker processes replaced after an unexpected exit.");
  for (const TaskCounts* t : pooled) {
    out->Sample("offload_worker_restarts_total", {{"task", t->name}}, t->workers->restarts);
  }
  out->Family("offload_worker_crash_looping", MetricType::kGauge,
              "1 while the task's workers fail to start or die job after job (GET /healthz says why), else 0.");
  for (const TaskCounts* t : pooled) {
    out->Sample("offload_worker_crash_looping", {{"task", t->name}}, std::int64_t{t->workers->trouble.empty() ? 0 : 1});
  }

  const StoreWriteStats store = store_queue_->write_stats();
  out->Family("offload_store_write_batch_size", MetricType::kHistogram,
              "Writes per store transaction (group commit: one sync for the batch).");
  out->Samples("offload_store_write_batch_size", {}, store.batch_size);
  out->Family("offload_store_write_seconds", MetricType::kHistogram,
              "Seconds a store transaction took, its sync included.");
  out->Samples("offload_store_write_seconds", {}, store.batch_seconds);
  out->Family("offload_store_write_failures_total", MetricType::kCounter,
              "Store transactions refused (their writes are then applied one by one).");
  out->Sample("offload_store_write_failures_total", {}, store.failed_batches);
  out->Family("offload_store_unstored_finals", MetricType::kGauge,
              "Finished jobs whose final state the store refused; no new job starts while any wait.");
  out->Sample("offload_store_unstored_finals", {}, static_cast<std::uint64_t>(unstored));

  out->Family("offload_jobs_active", MetricType::kGauge,
              "Jobs held in this node's memory: queued, running, or with their final write in flight.");
  out->Sample("offload_jobs_active", {}, static_cast<std::uint64_t>(active));
  out->Family("offload_draining", MetricType::kGauge, "1 while the server shuts down, else 0.");
  out->Sample("offload_draining", {}, std::int64_t{draining ? 1 : 0});
  out->Family("offload_event_subscribers", MetricType::kGauge,
              "Event streams open on this node (GET /v1/events and /v1/jobs/{id}/events).");
  out->Sample("offload_event_subscribers", {}, static_cast<std::uint64_t>(events_->subscribers()));
  out->Family("offload_event_subscribers_dropped_total", MetricType::kCounter,
              "Event streams ended because their client fell behind the server's buffer of events.");
  out->Sample("offload_event_subscribers_dropped_total", {}, events_->dropped());
}

}  // namespace offload
