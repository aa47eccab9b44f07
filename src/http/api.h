// Api: the HTTP API v1 (docs/api.md). Routes a request to JobService and renders the
// answer. Never blocks: waits are timers on the session's executor and callbacks
// from the service.
#pragma once

#include <memory>

#include "config/config.h"
#include "http/exchange.h"
#include "http/origin_policy.h"
#include "service/job_service.h"

namespace offload {

// Thread-safe: holds no mutable state of its own.
class Api {
 public:
  Api(JobService* service, const ServerConfig& config)
      : service_(service), config_(config), origins_(config.listen, config.allowed_origins) {}

  // Answers `req` through `ex` exactly once, possibly later and from another thread.
  void Handle(HttpRequest&& req, std::shared_ptr<Exchange> ex);

 private:
  using Finished = std::function<void(ErrorOr<JobSnapshot>)>;

  void SubmitJob(const HttpRequest& req, std::shared_ptr<Exchange> ex);
  void GetJob(const std::string& id, Millis wait, std::shared_ptr<Exchange> ex);
  void GetResult(const std::string& id, std::shared_ptr<Exchange> ex);
  void CancelJob(const std::string& id, std::shared_ptr<Exchange> ex);
  // With query.include_result, the answer stays within config_.max_list_bytes or is 422.
  void ListJobs(const JobQuery& query, std::shared_ptr<Exchange> ex);
  void RunTask(const std::string& task, HttpRequest&& req, std::shared_ptr<Exchange> ex);

  // Calls `then` on ex's executor when job `id` finishes or `timeout` passes,
  // whichever is first, with the job as it is then. With cancel_if_client_gone, a
  // client that disconnects first cancels the job and `then` is not called.
  void AwaitJob(const std::shared_ptr<Exchange>& ex, const std::string& id, Millis timeout, bool cancel_if_client_gone,
                const Finished& then);

  JobService* service_;
  const ServerConfig& config_;
  const OriginPolicy origins_;
};

}  // namespace offload
