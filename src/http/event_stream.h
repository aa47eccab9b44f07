// JobEventStream: the body of GET /v1/jobs/{id}/events and GET /v1/events, as
// Server-Sent Events (docs/api.md). It reads a subscription of the job event log
// (service/job_event_log.h) and, for one job, adds what the log does not carry: the
// job object at the start and at the end (its result, its error), and its progress,
// sampled while it runs.
//
// Messages: "status" (a status change, with an id to resume from), "job" (the job
// object), "progress", "reset" (events were lost: read the list again); comments as
// keep-alives. A stream that falls behind the log ends; a client resumes it with
// Last-Event-ID.
//
// Threads: used on its session's executor only, where the callbacks it gives the
// service are posted.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/exchange.h"
#include "service/job_event_log.h"
#include "service/job_service.h"

namespace offload {

class JobEventStream final : public BodySource, public std::enable_shared_from_this<JobEventStream> {
 public:
  // The header of every event stream.
  static HttpResponse Header();
  // Of job `now` (as it was once `sub` began: nothing between is missed).
  static std::shared_ptr<JobEventStream> OfJob(JobService* service, boost::asio::any_io_executor executor,
                                               std::shared_ptr<JobEventLog::Subscription> sub, JobSnapshot now);
  // Of every job `sub` matches. `reset`: the client asked to resume from where the log
  // cannot read on; its first message says so.
  static std::shared_ptr<JobEventStream> OfAll(boost::asio::any_io_executor executor,
                                               std::shared_ptr<JobEventLog::Subscription> sub, bool reset);

  void Start(std::function<void()> wake) override;
  Next Pull(std::string* out) override;
  void Stop() override;

 private:
  JobEventStream(JobService* service, boost::asio::any_io_executor executor,
                 std::shared_ptr<JobEventLog::Subscription> sub);
  void Tick();
  // The log has events for this stream: it reads them kCoalesce later.
  void OnLogEvent();
  // The job's last snapshot, once it is final (or the error of reading it).
  void OnFinal(ErrorOr<JobSnapshot> job);

  JobService* const service_;  // Null for a stream of every job.
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer flush_timer_;
  bool flush_pending_ = false;
  std::shared_ptr<JobEventLog::Subscription> sub_;
  std::function<void()> wake_;
  bool stopped_ = false;
  bool head_sent_ = false;
  bool reset_ = false;
  std::vector<KeptEventPtr> batch_;  // Read from the log, to write; empty between Pulls.
  std::chrono::steady_clock::time_point last_write_;

  // Of one job's stream.
  std::string job_id_;
  std::optional<JobSnapshot> first_;           // Sent first, unless the stream resumes.
  std::optional<ErrorOr<JobSnapshot>> final_;  // Sent last.
  JobService::WaitTicket ticket_ = 0;
  bool sampling_ = false;  // A Get for the progress is in flight.
  double sent_progress_ = -1;
  std::optional<double> progress_;  // To send.
};

}  // namespace offload
