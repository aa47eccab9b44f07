// JobService's part in the event streams (service/job_event_log.h): what it publishes
// of a job, and, in a cluster, the events that come from and go to the other nodes.
#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>

#include "cluster/cluster_node.h"
#include "service/active_job.h"
#include "service/job_service.h"
#include "util/json_writer.h"

namespace offload {

namespace {

// How long a node sends its events on after another node asked for them, and how
// often a node with subscribers asks.
constexpr std::chrono::milliseconds kEventsWantedFor{15'000};
constexpr std::chrono::milliseconds kAskForEventsEvery{5'000};

}  // namespace

void JobService::NoteStatusLocked(const JobRecord& rec) {
  // A job canceled here that another node held may be of a task this node lacks.
  if (auto task = tasks_.find(rec.task); task != tasks_.end()) task->second->metrics.Count(rec);
  if (!events_->wanted()) return;
  JobEvent event{rec.id, rec.task, "status", {}, rec.tenant};
  std::string& d = event.data;
  d.reserve(160);
  d += "{\"id\":";
  AppendJsonString(&d, rec.id);
  d += ",\"task\":";
  AppendJsonString(&d, rec.task);
  if (!rec.tenant.empty()) {
    d += ",\"tenant\":";
    AppendJsonString(&d, rec.tenant);
  }
  d += ",\"status\":\"";
  d += JobStatusName(rec.status);
  d += "\",\"attempt\":";
  d += std::to_string(rec.attempts);
  d += ",\"at\":\"";
  d += FormatRfc3339(clock_.Now());
  d += '"';
  if (rec.error && (rec.status == JobStatus::kFailed || rec.status == JobStatus::kCanceled)) {
    d += ",\"error\":{\"type\":";
    AppendJsonString(&d, rec.error->type);
    d += ",\"message\":";
    // The message as far as a line of a dashboard shows: the job has it whole.
    AppendJsonString(&d, rec.error->message.substr(0, 200));
    d += '}';
  }
  if (clustered_) {
    d += ",\"node\":";
    AppendJsonString(&d, node_id_);
  }
  d += '}';
  if (!clustered_) {
    events_->Publish(std::move(event));
    return;
  }
  std::string line = event.data;
  if (events_->Publish(std::move(event))) cluster_->AnnounceEvent(std::move(line));
}

std::unique_ptr<JobEventLog::Subscription> JobService::SubscribeEvents(JobEventFilter filter,
                                                                       std::string_view last_event_id) {
  auto sub = events_->Subscribe(std::move(filter), last_event_id);
  if (clustered_) cluster_->WantEvents();
  return sub;
}

void JobService::OnEventsFromElsewhere(const std::vector<std::string>& events) {
  for (const std::string& line : events) {
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec);
    const boost::json::object* o = ec ? nullptr : v.if_object();
    const boost::json::value* id_value = o ? o->if_contains("id") : nullptr;
    const boost::json::value* task_value = o ? o->if_contains("task") : nullptr;
    const boost::json::string* id = id_value ? id_value->if_string() : nullptr;
    const boost::json::string* task = task_value ? task_value->if_string() : nullptr;
    if (!id || !task) {
      spdlog::debug("cluster: an event that is not a job's status was ignored");
      continue;
    }
    const boost::json::value* tenant_value = o->if_contains("tenant");
    const boost::json::string* tenant = tenant_value ? tenant_value->if_string() : nullptr;
    events_->PublishFromElsewhere(
        JobEvent{std::string(*id), std::string(*task), "status", line, tenant ? std::string(*tenant) : ""});
  }
}

void JobService::AskForEventsIfWatched() {
  if (!events_->has_subscribers()) return;
  const auto now = std::chrono::steady_clock::now();
  {
    MutexLock lock(&mu_);
    if (now - last_asked_for_events_ < kAskForEventsEvery) return;
    last_asked_for_events_ = now;
  }
  cluster_->WantEvents();
}

void JobService::OnEventsWanted() { events_->WantedElsewhere(kEventsWantedFor); }

}  // namespace offload
