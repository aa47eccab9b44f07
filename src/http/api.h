// Api: the HTTP API v1 (docs/api.md). Routes a request to JobService and renders the
// answer. Never blocks: waits are timers on the session's executor and callbacks
// from the service.
#pragma once

#include <atomic>
#include <boost/url/url_view.hpp>
#include <memory>
#include <optional>
#include <variant>

#include "auth/authenticator.h"
#include "auth/tenant_limits.h"
#include "config/config.h"
#include "http/exchange.h"
#include "http/http_metrics.h"
#include "http/origin_policy.h"
#include "http/problem.h"
#include "http/static_assets.h"
#include "http/upload.h"
#include "service/job_service.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

// What Api::PlanUpload decides for a request whose header has been read.
struct UploadPlan {
  // Set: the body is streamed into it, at most `limit` bytes; else it is read into
  // memory as every other body (within max_body).
  std::unique_ptr<Upload> upload;
  std::uint64_t limit = 0;
  // Set: answered at once, before any of the body is read (an unknown task, a type
  // the task does not take, a Content-Length over its max_input).
  std::optional<Problem> refusal;
};

// Who a request acts for, once its token is checked: the tenant its jobs get, and
// whose jobs it sees.
struct Caller {
  std::string tenant;     // Stamped on what it submits; empty without [auth].
  bool sees_all = false;  // An admin's token, or no [auth].
  bool Sees(const JobRecord& job) const { return sees_all || job.tenant == tenant; }
  // The tenant filter of what it lists and streams.
  std::optional<std::string> Filter() const { return sees_all ? std::nullopt : std::optional<std::string>(tenant); }
};

// Thread-safe: its one mutable member, the authenticator, is swapped under auth_mu_.
class Api {
 public:
  // GET /metrics shows `http_metrics` (the HttpServer's, which records into it) with
  // the service's series; it must outlive the Api. `auth`: the tokens of [auth];
  // nullptr without it.
  Api(JobService* service, const ServerConfig& config, const HttpMetrics* http_metrics,
      std::shared_ptr<const Authenticator> auth = nullptr)
      : service_(service),
        config_(config),
        origins_(config.listen, config.allowed_origins, !config.tls_cert.empty()),
        http_metrics_(http_metrics),
        limits_(auth ? TenantLimits::Create({config.auth.max_streams, config.auth.max_waits, config.auth.request_rate})
                     : nullptr),
        auth_on_(auth != nullptr),
        auth_(std::move(auth)) {}

  // Takes the tokens of a reloaded tokens file: requests read after it see them.
  // REQUIRES: the Api was made with an authenticator (auth stays on or off).
  void SetAuthenticator(std::shared_ptr<const Authenticator> auth) LOCKS_EXCLUDED(auth_mu_) {
    MutexLock lock(&auth_mu_);
    auth_ = std::move(auth);
  }
  // Takes the tenants' quotas (the submit_rate of each; the service keeps the rest).
  void SetTenantPolicies(const std::map<std::string, TenantPolicy>& policies) {
    if (!limits_) return;
    std::map<std::string, double> rates;
    for (const auto& [name, policy] : policies) {
      if (policy.submit_rate > 0) rates[name] = policy.submit_rate;
    }
    limits_->SetSubmitRates(rates);
  }

  // Called once a request's header is read, before its body: the caller the request
  // acts for, which Handle and PlanUpload take; or, with [auth], the answer that
  // refuses a request without a token it needs, with one in its query, or past its
  // tenant's request_rate or submit_rate, so that nobody without a token makes the
  // server read a body (with CORS headers for an allowed page, which may then read
  // why). Takes the tenant's request (request_rate) when it lets it in. The token is
  // checked here only: once per request.
  std::variant<Caller, HttpResponse> Screen(const HttpRequestHeader& header) const;

  // Answers `req` of `caller` (what Screen let in) through `ex` exactly once,
  // possibly later and from another thread.
  void Handle(HttpRequest&& req, const Caller& caller, std::shared_ptr<Exchange> ex);

  // Called once a request's header is read and screened, before its body: a non-JSON
  // body for POST /v1/jobs?task=NAME or POST /v1/tasks/NAME/run is a file upload, of
  // `caller`'s tenant. Cheap for every other request (it looks at the method and
  // Content-Type only).
  UploadPlan PlanUpload(const HttpRequest& header, const Caller& caller);
  // Answers an upload PlanUpload started, once its body is received, exactly once.
  void HandleUpload(std::unique_ptr<Upload> upload, HttpRequestHeader header, std::shared_ptr<Exchange> ex);

 private:
  // With [auth]: the caller of `req`, or what Screen refuses it for: the origin, the
  // token, the rates.
  std::variant<Caller, Problem> Admit(const HttpRequestHeader& req) const;
  using Finished = std::function<void(ErrorOr<JobSnapshot>)>;

  // With [auth]: the caller a request's token names, or the answer that refuses it
  // (400 for a token in the query, 401, 403 without `needed`). Without: the one
  // tenant, who sees everything. `needed` unset: a route anyone may take.
  std::variant<Caller, Problem> Authorize(const HttpRequestHeader& req, const boost::urls::url_view& url,
                                          std::optional<Scope> needed) const;

  // With [auth]: a wait's or a stream's slot of `tenant` into *hold, or the 429 of its
  // cap (max_waits, max_streams). Nothing without [auth], or for the empty tenant.
  std::optional<Problem> HoldWait(const std::string& tenant, TenantLimits::Hold* hold) const;
  std::optional<Problem> HoldStream(const std::string& tenant, TenantLimits::Hold* hold) const;

  // Calls `then` with job `id` if `caller` may see it; answers 404 as for an unknown
  // job if not (another tenant's job is not shown to exist).
  void GetOwn(const Caller& caller, const std::string& id, const std::shared_ptr<Exchange>& ex,
              std::function<void(JobSnapshot)> then);

  void SubmitJob(const Caller& caller, const HttpRequest& req, std::shared_ptr<Exchange> ex);
  // POST /v1/jobs once its body is parsed; `req` gives Idempotency-Key and Prefer.
  void SubmitParsed(SubmitRequest submit, const HttpRequestHeader& req, std::shared_ptr<Exchange> ex);
  // With `with_input`, the job object carries its input too (?include=input).
  void GetJob(const Caller& caller, const std::string& id, Millis wait, bool with_input, std::shared_ptr<Exchange> ex);
  // GET or HEAD; `req` gives Range, If-Range and If-None-Match.
  void GetResult(const Caller& caller, const std::string& id, HttpRequestHeader req, std::shared_ptr<Exchange> ex);
  void CancelJob(const Caller& caller, const std::string& id, std::shared_ptr<Exchange> ex);
  // POST /v1/jobs/cancel: `body` is {"task", "status"}, both optional.
  void CancelMatching(const Caller& caller, const std::string& body, std::shared_ptr<Exchange> ex);
  // GET /v1/jobs/{id}/events: 404 for an unknown job, else its event stream.
  void StreamJobEvents(const Caller& caller, const std::string& id, const std::string& last_event_id,
                       std::shared_ptr<Exchange> ex);
  // With query.include_result, the answer stays within config_.max_list_bytes or is 422.
  void ListJobs(const JobQuery& query, std::shared_ptr<Exchange> ex);
  void RunTask(const Caller& caller, const std::string& task, HttpRequest&& req, std::shared_ptr<Exchange> ex);
  // POST /v1/tasks/NAME/run once its body is parsed.
  void RunParsed(SubmitRequest submit, std::shared_ptr<Exchange> ex);

  // Calls `then` on ex's executor when job `id` finishes or `timeout` passes,
  // whichever is first, with the job as it is then. With cancel_if_client_gone, a
  // client that disconnects first cancels the job and `then` is not called.
  void AwaitJob(const std::shared_ptr<Exchange>& ex, const std::string& id, Millis timeout, bool cancel_if_client_gone,
                const Finished& then);

  JobService* service_;
  const ServerConfig& config_;
  const OriginPolicy origins_;
  const HttpMetrics* const http_metrics_;
  const StaticAssets assets_;
  const std::shared_ptr<TenantLimits> limits_;  // With [auth].
  const bool auth_on_;                          // [auth] is set; it stays so for the server's life.
  // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12 implements that with a
  // lock bit ThreadSanitizer does not see. Held for a pointer copy per request.
  mutable Mutex auth_mu_;
  std::shared_ptr<const Authenticator> auth_ GUARDED_BY(auth_mu_);
};

}  // namespace offload
