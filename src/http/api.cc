#include "http/api.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include "http/byte_range.h"
#include "http/event_stream.h"
#include "http/job_json.h"
#include "http/problem.h"
#include "http/static_assets.h"
#include "metrics/process_metrics.h"
#include "offload/error_types.h"
#include "util/json_reader.h"
#include "util/json_writer.h"
#include "util/mutex.h"

namespace offload {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// `body` is JSON text already.
HttpResponse JsonResponse(http::status status, std::string body) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

HttpResponse JsonResponse(http::status status, const json::value& body) {
  return JsonResponse(status, WriteJson(body));
}

HttpResponse ErrorResponse(const Error& e) { return ProblemResponse(ProblemFromError(e)); }

HttpResponse JobResponse(http::status status, const JobSnapshot& job) {
  std::string body;
  AppendJobJson(&body, job);
  HttpResponse res = JsonResponse(status, std::move(body));
  if (status == http::status::accepted) res.set(http::field::location, "/v1/jobs/" + job.record.id);
  return res;
}

// A strong validator of a result kept in a file: its checksum.
std::string ETagOf(const OutputFile& file) { return "\"" + file.sha256 + "\""; }

// Whether an If-None-Match list ("*", or quoted tags) names `etag` (weak comparison,
// RFC 9110 13.1.2).
bool MatchesETag(std::string_view list, const std::string& etag) {
  return list.find('*') != std::string_view::npos || list.find(etag) != std::string_view::npos;
}

// Sets the body of a succeeded job's result: the value, the shared bytes, or the file
// streamed from disk. Fails when the file cannot be opened (it was removed or the
// disk is gone).
Status SetResultBody(HttpResponse* res, const JobRecord& j, const FileStore& files) {
  if (j.result->file) {
    const std::string path = files.ResultPath(j.id);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      spdlog::error("job {}: cannot open its result file {}: {}", j.id, path, std::strerror(err));
      // Gone for good (removed by hand) or the disk is in trouble (retry).
      return MakeError(err == ENOENT ? ErrorCode::kInternal : ErrorCode::kUnavailable,
                       "the result of job " + j.id + " cannot be read: " + std::strerror(err));
    }
    res->body().Stream(std::make_shared<const OpenFile>(fd), 0, j.result->file->size);
  } else if (j.result->is_json()) {
    // Serialized per response: a JSON result is a tree, not bytes to share.
    res->body() = WriteJson(j.result->json);
  } else {
    // Every response sending this result references the job's one copy of it.
    res->body().Share(std::shared_ptr<const std::string>(j.result, &j.result->bytes));
  }
  return {};
}

// The result alone: what GET (or HEAD) /v1/jobs/{id}/result and POST /v1/tasks/{name}/run
// send. With `get` (the request of GET or HEAD /result), a binary result is served by
// range (Range, If-Range: 206 or 416), a file result carries an ETag (If-None-Match:
// 304), and HEAD gets the header alone.
HttpResponse ResultResponse(const JobSnapshot& job, const FileStore& files, const HttpRequestHeader* get = nullptr) {
  const JobRecord& j = job.record;
  switch (j.status) {
    case JobStatus::kSucceeded: {
      HttpResponse res{http::status::ok, 11};
      res.set(http::field::content_type, j.result->content_type);
      // A task's bytes opened in a browser (an HTML or SVG result) run no script on
      // this origin, where the dashboard and the API are.
      if (!j.result->is_json()) res.set("Content-Security-Policy", "sandbox");
      std::string etag;
      if (j.result->file && !j.result->file->sha256.empty()) {
        etag = ETagOf(*j.result->file);
        res.set(http::field::etag, etag);
      }
      if (get && !etag.empty() && MatchesETag((*get)[http::field::if_none_match], etag)) {
        HttpResponse not_modified{http::status::not_modified, 11};
        not_modified.set(http::field::etag, etag);
        return not_modified;
      }
      if (auto set = SetResultBody(&res, j, files); !set) return ErrorResponse(set.error());
      if (get && !j.result->is_json()) {
        res.set(http::field::accept_ranges, "bytes");
        const std::string_view if_range = (*get)[http::field::if_range];
        const bool range_applies = if_range.empty() || (!etag.empty() && if_range == etag);
        const std::uint64_t size = res.body().size();
        const ByteRange range =
            range_applies ? ParseByteRange((*get)[http::field::range], size) : ByteRange{ByteRange::Kind::kWhole};
        if (range.kind == ByteRange::Kind::kUnsatisfiable) {
          HttpResponse refused = ProblemResponse(
              MakeProblem(http::status::range_not_satisfiable, "range-not-satisfiable", "Range not satisfiable",
                          "the result of job " + j.id + " is " + std::to_string(size) +
                              " bytes; the range asked for starts past it"));
          refused.set(http::field::content_range, "bytes */" + std::to_string(size));
          return refused;
        }
        if (range.kind == ByteRange::Kind::kPart) {
          res.result(http::status::partial_content);
          res.set(http::field::content_range, "bytes " + std::to_string(range.first) + "-" +
                                                  std::to_string(range.last) + "/" + std::to_string(size));
          res.body().Slice(range.first, range.length());
        }
      }
      return res;
    }
    case JobStatus::kQueued:
    case JobStatus::kRunning: {
      Problem p = MakeProblem(http::status::conflict, "not-finished", "The job has not finished",
                              "job " + j.id + " is " + std::string(JobStatusName(j.status)) +
                                  "; wait with GET /v1/jobs/" + j.id + "?wait=30");
      p.retry_after_s = 1;
      return ProblemResponse(p);
    }
    case JobStatus::kFailed:
    case JobStatus::kCanceled:
      break;
  }
  return ProblemResponse(
      ProblemFromJobError(j.error.value_or(JobError{error_type::kUnknown, "the job did not succeed"})));
}

// Parses a wait given in seconds ("5", "0.25"). Returns false when malformed.
bool ParseSeconds(std::string_view text, Millis* out) {
  double s = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), s);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(s >= 0) || !std::isfinite(s)) {
    return false;
  }
  *out = Millis(static_cast<std::int64_t>(std::min(s, 1e9) * 1000));
  return true;
}

// The wait=N preference of a Prefer header (RFC 7240), e.g. "respond-async, wait=10".
Millis PreferredWait(std::string_view prefer) {
  Millis wait{0};
  while (!prefer.empty()) {
    auto comma = prefer.find_first_of(",;");
    std::string_view token = prefer.substr(0, comma);
    prefer = comma == std::string_view::npos ? std::string_view() : prefer.substr(comma + 1);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token.size() > 5 && (token.substr(0, 5) == "wait=" || token.substr(0, 5) == "WAIT=")) {
      ParseSeconds(token.substr(5), &wait);
    }
  }
  return wait;
}

// The check of a request body's media type, the one place that knows which body each
// endpoint takes: today a non-empty body must be JSON everywhere. Without it a web
// page could post a job as text/plain, a type browsers send cross-origin without a
// preflight. Parameters (charset=utf-8) are ignored; application/*+json is refused,
// since no endpoint takes another JSON vocabulary.
std::optional<HttpResponse> CheckBodyType(const HttpRequest& req) {
  if (req.body().empty()) return std::nullopt;
  constexpr std::string_view kJson = "application/json";
  const std::string_view sent = req[http::field::content_type];
  if (boost::beast::iequals(MediaTypeOf(sent), kJson)) return std::nullopt;
  HttpResponse res = ProblemResponse(UnsupportedMediaTypeProblem(sent, kJson));
  // RFC 9110 15.5.16: Accept in a 415 says which types would have been taken.
  res.set(http::field::accept, kJson);
  return res;
}

// The Idempotency-Key, into `key` (left alone without one); a refusal if it is too long.
std::optional<HttpResponse> ReadIdempotencyKey(const HttpRequestHeader& req, std::string* key) {
  const std::string_view given = req["Idempotency-Key"];
  if (given.empty()) return std::nullopt;
  if (given.size() > 255) {
    return ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "Idempotency-Key must be at most 255 characters"));
  }
  *key = std::string(given);
  return std::nullopt;
}

// Where an event stream resumes: the Last-Event-ID header an EventSource sends when
// it reconnects, or ?last_event_id= for a first connection that resumes.
std::string LastEventId(const HttpRequest& req, const std::optional<std::string>& param) {
  if (auto it = req.find("Last-Event-ID"); it != req.end()) return std::string(it->value());
  return param.value_or("");
}

HttpResponse MethodNotAllowed(std::string_view allow) {
  HttpResponse res = ProblemResponse(MakeProblem(http::status::method_not_allowed, "method-not-allowed",
                                                 "Method not allowed", "this resource answers " + std::string(allow)));
  res.set(http::field::allow, allow);
  return res;
}

}  // namespace

namespace {

// The names a token would have in a query (RFC 6750 2.3 names access_token): with
// [auth], a request that puts one there is refused before anything reads it, since a
// query ends up in logs, proxies and browser history.
bool HasQueryToken(const boost::urls::url_view& url) {
  for (const auto& p : url.params()) {
    if (p.key == "access_token" || p.key == "token" || p.key == "api_key") return true;
  }
  return false;
}

// The scope a request needs with [auth]; unset for what anyone may take: /healthz
// (probes carry no token), the redirect to /ui, and the dashboard's and the
// documentation UI's files, which are the same in every copy of offload and show
// nothing until the page is given a token.
std::optional<Scope> ScopeOf(http::verb method, const std::vector<std::string>& seg, std::string_view path,
                             const AuthConfig& auth) {
  if (seg.empty() || (seg.size() == 1 && (seg[0].empty() || seg[0] == "healthz"))) return std::nullopt;
  if (seg.size() == 1 && seg[0] == "metrics") return auth.metrics_scope == "read" ? Scope::kRead : Scope::kAdmin;
  if (path == "/openapi.json") return Scope::kAdmin;
  if (StaticAssets::Owns(path)) return std::nullopt;
  if (seg.size() < 2 || seg[0] != "v1") return Scope::kRead;
  if (seg[1] == "jobs") {
    if (seg.size() == 2) return method == http::verb::post ? Scope::kSubmit : Scope::kRead;
    if (seg.size() == 3 && seg[2] == "cancel" && method == http::verb::post) return Scope::kCancel;
    if (seg.size() == 3 && method == http::verb::delete_) return Scope::kCancel;
    if (seg.size() == 4 && seg[3] == "retry") return Scope::kSubmit;
  }
  if (seg[1] == "tasks" && seg.size() == 4 && seg[3] == "run") return Scope::kSubmit;
  return Scope::kRead;
}

// A subscription that holds `hold` (a stream's slot of its tenant) until it ends.
std::shared_ptr<JobEventLog::Subscription> HeldSubscription(std::unique_ptr<JobEventLog::Subscription> sub,
                                                            TenantLimits::Hold hold) {
  return std::shared_ptr<JobEventLog::Subscription>(
      sub.release(), [hold = std::move(hold)](JobEventLog::Subscription* s) { delete s; });
}

// An exchange that holds a wait's slot of its tenant (max_waits) until it is answered:
// the slot is free by the time the client reads the answer and asks again.
class WaitingExchange final : public Exchange {
 public:
  WaitingExchange(std::shared_ptr<Exchange> inner, TenantLimits::Hold hold)
      : inner_(std::move(inner)), hold_(std::move(hold)) {}

  boost::asio::any_io_executor executor() override { return inner_->executor(); }
  void Respond(HttpResponse response) override {
    Release();
    inner_->Respond(std::move(response));
  }
  void RespondStream(HttpResponse header, std::shared_ptr<BodySource> source) override {
    Release();
    inner_->RespondStream(std::move(header), std::move(source));
  }
  void OnClientGone(std::function<void()> fn) override { inner_->OnClientGone(std::move(fn)); }

 private:
  void Release() {
    TenantLimits::Hold released;
    MutexLock lock(&mu_);
    released = std::move(hold_);
  }

  const std::shared_ptr<Exchange> inner_;
  Mutex mu_;  // Respond may come from any thread (a second call is ignored by inner_).
  TenantLimits::Hold hold_ GUARDED_BY(mu_);
};

// A tenant at a cap of its limits: a slot frees as soon as one of its requests ends.
Problem AtCap(Problem p) {
  p.retry_after_s = 1;
  return p;
}

constexpr const char* kRealm = "Bearer realm=\"offload\"";

// What a non-admin asking for another tenant's job gets: the answer to an id that
// does not exist.
Error NoSuchJob(const std::string& id) { return MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""); }

// What a node of role "worker" answers to anything but /healthz.
Error WorkerOnly() {
  return MakeError(ErrorCode::kNotFound,
                   "this node has role \"worker\": it runs jobs and serves only /healthz; send API requests to a "
                   "node with role \"all\" or \"api\" (docs/cluster.md)");
}

}  // namespace

std::variant<Caller, Problem> Api::Authorize(const HttpRequestHeader& req, const boost::urls::url_view& url,
                                             std::optional<Scope> needed) const {
  std::shared_ptr<const Authenticator> auth;
  {
    MutexLock lock(&auth_mu_);
    auth = auth_;
  }
  if (!auth) return Caller{"", /*sees_all=*/true};
  if (HasQueryToken(url)) {
    return MakeProblem(http::status::bad_request, "token-in-query", "A token in the query",
                       "a token goes in the Authorization header (Authorization: Bearer TOKEN), never in the "
                       "query, which logs and proxies keep; this request was not read further");
  }
  if (!needed) return Caller{};
  const std::string_view authorization = req[http::field::authorization];
  const Principal* who = auth->Authenticate(authorization);
  if (!who) {
    const bool sent = !authorization.empty();
    Problem p = MakeProblem(http::status::unauthorized, "unauthorized", "A token is needed",
                            sent ? "the Authorization header names no token this server knows (revoked, mistyped, "
                                   "or not a Bearer token)"
                                 : "this server takes requests with a token: send Authorization: Bearer TOKEN");
    p.www_authenticate = sent ? std::string(kRealm) + ", error=\"invalid_token\"" : kRealm;
    return p;
  }
  if (!who->scopes.Has(*needed)) {
    const std::string scope(ScopeName(*needed));
    Problem p = MakeProblem(
        http::status::forbidden, "insufficient-scope", "The token lacks a scope",
        "this request needs a token with scope \"" + scope + "\"; token \"" + who->tenant + "\" does not have it");
    p.www_authenticate = std::string(kRealm) + ", error=\"insufficient_scope\", scope=\"" + scope + "\"";
    return p;
  }
  return Caller{who->tenant, who->admin()};
}

std::optional<Problem> Api::HoldWait(const std::string& tenant, TenantLimits::Hold* hold) const {
  if (!limits_ || tenant.empty() || (*hold = limits_->HoldWait(tenant))) return std::nullopt;
  return AtCap(MakeProblem(http::status::too_many_requests, "too-many-waits", "Too many waiting requests",
                           "token \"" + tenant + "\" has " + std::to_string(limits_->options().max_waits) +
                               " requests waiting for jobs on this server (max_waits); poll without waiting, or "
                               "retry once one of them is answered"));
}

std::optional<Problem> Api::HoldStream(const std::string& tenant, TenantLimits::Hold* hold) const {
  if (!limits_ || tenant.empty() || (*hold = limits_->HoldStream(tenant))) return std::nullopt;
  return AtCap(MakeProblem(http::status::too_many_requests, "too-many-streams", "Too many event streams",
                           "token \"" + tenant + "\" has " + std::to_string(limits_->options().max_streams) +
                               " event streams open on this server (max_streams); one stream of /v1/events "
                               "serves every job"));
}

void Api::GetOwn(const Caller& caller, const std::string& id, const std::shared_ptr<Exchange>& ex,
                 std::function<void(JobSnapshot)> then) {
  service_->Get(id, [ex, id, caller, then = std::move(then)](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    if (!caller.Sees(job->record)) return ex->Respond(ErrorResponse(NoSuchJob(id)));
    then(std::move(*job));
  });
}

std::variant<Caller, HttpResponse> Api::Screen(const HttpRequestHeader& req) const {
  if (!auth_on_) return Caller{"", /*sees_all=*/true};
  std::variant<Caller, Problem> admitted = Admit(req);
  const Problem* refused = std::get_if<Problem>(&admitted);
  if (!refused) return std::get<Caller>(std::move(admitted));
  HttpResponse res = ProblemResponse(*refused);
  if (origins_.Check(req) == std::nullopt && origins_.IsCorsRequest(req)) {
    OriginPolicy::AddCorsHeaders(res, std::string(req[http::field::origin]));
  }
  return res;
}

std::variant<Caller, Problem> Api::Admit(const HttpRequestHeader& req) const {
  // As in Handle, the origin first: a foreign page's request is 403 whether or not it
  // has a token. And a CORS preflight carries no token (browsers never send one): Handle
  // answers it, or an allowed origin's page could never send the request that has one.
  // Handle answers those two, and a malformed target, before it looks at the caller.
  if (auto refused = origins_.Check(req)) return std::move(*refused);
  if (req.method() == http::verb::options && origins_.IsCorsRequest(req)) return Caller{};
  auto parsed = boost::urls::parse_origin_form(req.target());
  if (!parsed) return Caller{};
  std::vector<std::string> seg;
  for (auto s : parsed->segments()) seg.push_back(s);
  const std::optional<Scope> scope = ScopeOf(req.method(), seg, parsed->path(), config_.auth);
  auto admitted = Authorize(req, *parsed, scope);
  if (std::holds_alternative<Problem>(admitted)) return admitted;
  const Caller& caller = std::get<Caller>(admitted);
  if (!limits_ || caller.tenant.empty()) return admitted;
  if (int retry_after = 0; !limits_->TakeRequest(caller.tenant, &retry_after)) {
    Problem p = MakeProblem(http::status::too_many_requests, "rate-limited", "Too many requests",
                            "token \"" + caller.tenant + "\" is past its request_rate ([auth]); retry in " +
                                std::to_string(retry_after) + " s");
    p.retry_after_s = retry_after;
    return p;
  }
  // Every request that makes a job is a submit: POST /v1/jobs, /run, a retry.
  if (int retry_after = 0; scope == Scope::kSubmit && req.method() == http::verb::post) {
    if (double rate = 0; !limits_->TakeSubmit(caller.tenant, &retry_after, &rate)) {
      Problem p = MakeProblem(http::status::too_many_requests, "quota-submit-rate",
                              "The tenant submits faster than its quota allows",
                              "tenant \"" + caller.tenant + "\" is past its submit_rate quota of " + FormatRate(rate) +
                                  "; retry in " + std::to_string(retry_after) + " s");
      p.retry_after_s = retry_after;
      return p;
    }
  }
  return admitted;
}

void Api::Handle(HttpRequest&& req, const Caller& caller, std::shared_ptr<Exchange> ex) {
  // Before anything else: a request from a foreign page or for a foreign host name
  // changes nothing and learns nothing.
  if (auto refused = origins_.Check(req)) return ex->Respond(ProblemResponse(*refused));
  if (origins_.IsCorsRequest(req)) {
    if (req.method() == http::verb::options) return ex->Respond(OriginPolicy::Preflight(req));
    ex = OriginPolicy::WithCorsHeaders(std::move(ex), std::string(req[http::field::origin]));
  }
  auto parsed = boost::urls::parse_origin_form(req.target());
  if (!parsed) {
    return ex->Respond(ErrorResponse(MakeError(ErrorCode::kMalformed, "the request target is not a valid path")));
  }
  const boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) seg.push_back(s);
  const http::verb method = req.method();
  auto param = [&](const char* name) -> std::optional<std::string> {
    auto it = url.params().find(name);
    if (it == url.params().end()) return std::nullopt;
    return std::string((*it).value);
  };
  if (seg.size() == 1 && seg[0] == "healthz") {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    if (service_->draining()) {
      return ex->Respond(JsonResponse(http::status::service_unavailable, json::object{{"status", "draining"}}));
    }
    // Degraded answers 200: the server must not be restarted for it (a liveness probe
    // that did so would lose the finished jobs it holds until the store takes them).
    const StoreHealth store = service_->store_health();
    if (store.unstored_finals > 0) {
      return ex->Respond(JsonResponse(
          http::status::ok,
          json::object{{"status", "degraded"},
                       {"detail", "the store refuses writes (" + store.last_error + "); " +
                                      std::to_string(store.unstored_finals) +
                                      " finished jobs wait in memory to be recorded and no new job starts"}}));
    }
    for (const TaskInfo& t : service_->Tasks()) {
      if (t.workers && !t.workers->trouble.empty()) {
        return ex->Respond(JsonResponse(
            http::status::ok,
            json::object{{"status", "degraded"}, {"detail", "task " + t.name + ": " + t.workers->trouble}}));
      }
    }
    return ex->Respond(JsonResponse(http::status::ok, json::object{{"status", "ok"}}));
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    MetricsText text;
    service_->WriteMetrics(&text);
    http_metrics_->Write(&text);
    WriteProcessMetrics(&text);
    HttpResponse res{http::status::ok, 11};
    res.set(http::field::content_type, MetricsText::kContentType);
    res.set(http::field::cache_control, "no-store");
    res.body() = text.Take();
    return ex->Respond(std::move(res));
  }
  if (config_.role == "worker") return ex->Respond(ErrorResponse(WorkerOnly()));
  if (StaticAssets::Owns(url.path())) {
    if (method != http::verb::get && method != http::verb::head) return ex->Respond(MethodNotAllowed("GET, HEAD"));
    if (auto res = assets_.Serve(url.path(), req)) return ex->Respond(std::move(*res));
    std::string detail = "no resource at " + std::string(url.path());
    if (url.path().substr(0, 5) == "/docs") {
      detail +=
          ": the documentation UI is fetched from npm by scripts/fetch-docs-ui.sh (scripts/install-deps.sh runs "
          "it) and compiled in; the OpenAPI document itself is at /openapi.json";
    }
    return ex->Respond(ErrorResponse(MakeError(ErrorCode::kNotFound, detail)));
  }
  if (seg.empty() || (seg.size() == 1 && seg[0].empty())) {
    // The door for a person with a browser: the dashboard.
    HttpResponse res{http::status::found, 11};
    res.set(http::field::location, "/ui");
    return ex->Respond(std::move(res));
  }
  if (seg.size() < 2 || seg[0] != "v1") {
    return ex->Respond(ErrorResponse(MakeError(ErrorCode::kNotFound, "no resource at " + std::string(url.path()))));
  }
  if (seg[1] == "jobs" && seg.size() == 2) {
    if (method == http::verb::post) {
      if (auto refused = CheckBodyType(req)) return ex->Respond(std::move(*refused));
      return SubmitJob(caller, req, std::move(ex));
    }
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET, POST"));
    JobQuery q;
    q.tenant = caller.Filter();
    if (auto s = param("status"); s && !s->empty()) {
      JobStatus st;
      if (!ParseJobStatus(*s, &st)) {
        return ex->Respond(ErrorResponse(
            MakeError(ErrorCode::kInvalidArgument, "status must be queued, running, succeeded, failed or canceled")));
      }
      q.status = st;
    }
    if (auto t = param("task"); t && !t->empty()) q.task = *t;
    if (auto l = param("limit")) {
      int n = 0;
      auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), n);
      if (ec != std::errc() || p != l->data() + l->size() || n < 1 || n > 1000) {
        return ex->Respond(
            ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "limit must be an integer from 1 to 1000")));
      }
      q.limit = static_cast<std::size_t>(n);
    }
    if (auto c = param("cursor"); c && !c->empty()) {
      auto [p, ec] = std::from_chars(c->data(), c->data() + c->size(), q.before_seq);
      if (ec != std::errc() || p != c->data() + c->size()) {
        return ex->Respond(
            ErrorResponse(MakeError(ErrorCode::kMalformed, "cursor must be the next_cursor of a previous page")));
      }
    }
    if (auto inc = param("include"); inc && !inc->empty()) {
      if (*inc != "result") {
        return ex->Respond(ErrorResponse(
            MakeError(ErrorCode::kInvalidArgument, "include must be \"result\" (the jobs' JSON results)")));
      }
      q.include_result = true;
      q.max_result_bytes = static_cast<std::size_t>(config_.max_list_bytes);
    }
    return ListJobs(q, std::move(ex));
  }
  if (seg[1] == "jobs" && seg.size() == 3 && seg[2] == "cancel" && method == http::verb::post) {
    if (auto refused = CheckBodyType(req)) return ex->Respond(std::move(*refused));
    return CancelMatching(caller, req.body(), std::move(ex));
  }
  if (seg[1] == "jobs" && seg.size() == 4 && seg[3] == "retry") {
    if (method != http::verb::post) return ex->Respond(MethodNotAllowed("POST"));
    // Submitted as any job is, Idempotency-Key and Prefer: wait included.
    return GetOwn(caller, seg[2], ex, [this, ex, head = std::move(req.base())](JobSnapshot old) {
      ErrorOr<SubmitRequest> again = JobService::RetryOf(old.record);
      if (!again) {
        return ex->Respond(ProblemResponse(
            MakeProblem(http::status::conflict, "not-retryable", "The job cannot be retried", again.error().detail)));
      }
      SubmitParsed(std::move(*again), head, ex);
    });
  }
  if (seg[1] == "jobs" && seg.size() == 3) {
    if (method == http::verb::get) {
      Millis wait{0};
      if (auto w = param("wait"); w && !ParseSeconds(*w, &wait)) {
        return ex->Respond(ErrorResponse(MakeError(ErrorCode::kMalformed, "wait must be a number of seconds")));
      }
      bool with_input = false;
      if (auto inc = param("include"); inc && !inc->empty()) {
        if (*inc != "input") {
          return ex->Respond(
              ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "include must be \"input\" (the job's input)")));
        }
        with_input = true;
      }
      return GetJob(caller, seg[2], std::min(wait, config_.max_wait), with_input, std::move(ex));
    }
    if (method == http::verb::delete_) return CancelJob(caller, seg[2], std::move(ex));
    return ex->Respond(MethodNotAllowed("GET, DELETE"));
  }
  if (seg[1] == "jobs" && seg.size() == 4 && seg[3] == "events") {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    return StreamJobEvents(caller, seg[2], LastEventId(req, param("last_event_id")), std::move(ex));
  }
  if (seg[1] == "events" && seg.size() == 2) {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    bool latest = false;
    if (auto l = param("latest"); l && !l->empty()) {
      if (*l != "1" && *l != "true" && *l != "0" && *l != "false") {
        return ex->Respond(ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "latest must be true or false")));
      }
      latest = *l == "1" || *l == "true";
    }
    TenantLimits::Hold hold;
    if (auto refused = HoldStream(caller.tenant, &hold)) return ex->Respond(ProblemResponse(*refused));
    const std::string last = LastEventId(req, param("last_event_id"));
    auto sub = HeldSubscription(
        service_->SubscribeEvents(JobEventFilter{"", param("task").value_or(""), latest, caller.Filter()}, last),
        std::move(hold));
    const bool reset = !last.empty() && !sub->resumed();
    auto executor = ex->executor();
    return ex->RespondStream(JobEventStream::Header(), JobEventStream::OfAll(executor, std::move(sub), reset));
  }
  if (seg[1] == "jobs" && seg.size() == 4 && seg[3] == "result") {
    if (method != http::verb::get && method != http::verb::head) return ex->Respond(MethodNotAllowed("GET, HEAD"));
    return GetResult(caller, seg[2], std::move(req.base()), std::move(ex));
  }
  if (seg[1] == "tasks" && seg.size() == 2) {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    json::array tasks;
    for (const auto& t : service_->Tasks()) tasks.push_back(TaskToJson(t));
    return ex->Respond(JsonResponse(http::status::ok, json::object{{"tasks", std::move(tasks)}}));
  }
  if (seg[1] == "tasks" && seg.size() == 4 && seg[3] == "run") {
    if (method != http::verb::post) return ex->Respond(MethodNotAllowed("POST"));
    if (auto refused = CheckBodyType(req)) return ex->Respond(std::move(*refused));
    return RunTask(caller, seg[2], std::move(req), std::move(ex));
  }
  if (seg[1] == "resources" && seg.size() == 2) {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    json::array res;
    for (const auto& r : service_->Resources()) res.push_back(ResourceToJson(r));
    return ex->Respond(JsonResponse(http::status::ok, json::object{{"resources", std::move(res)}}));
  }
  ex->Respond(ErrorResponse(MakeError(ErrorCode::kNotFound, "no resource at " + std::string(url.path()))));
}

void Api::SubmitJob(const Caller& caller, const HttpRequest& req, std::shared_ptr<Exchange> ex) {
  auto parsed = ParseSubmitRequest(req.body());
  if (!parsed) return ex->Respond(ErrorResponse(parsed.error()));
  parsed->tenant = caller.tenant;
  SubmitParsed(std::move(*parsed), req.base(), std::move(ex));
}

void Api::SubmitParsed(SubmitRequest submit, const HttpRequestHeader& req, std::shared_ptr<Exchange> ex) {
  if (auto refused = ReadIdempotencyKey(req, &submit.idempotency_key)) return ex->Respond(std::move(*refused));
  const Millis wait = std::min(PreferredWait(req[http::field::prefer]), config_.max_wait);
  // Held from before the submit, so that a tenant at its cap gets 429 with nothing stored.
  if (wait.count() > 0) {
    TenantLimits::Hold hold;
    if (auto refused = HoldWait(submit.tenant, &hold)) return ex->Respond(ProblemResponse(*refused));
    if (hold) ex = std::make_shared<WaitingExchange>(std::move(ex), std::move(hold));
  }
  service_->Submit(std::move(submit), [this, ex, wait](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    if (job->replayed) return ex->Respond(JobResponse(http::status::ok, *job));
    if (wait.count() == 0 || IsFinished(job->record.status)) {
      return ex->Respond(JobResponse(IsFinished(job->record.status) ? http::status::ok : http::status::accepted, *job));
    }
    // The job is stored: whatever happens next, the client can find it by id.
    asio::post(ex->executor(), [this, ex, wait, id = job->record.id] {
      AwaitJob(ex, id, wait, false, [ex](ErrorOr<JobSnapshot> now) {
        if (!now) return ex->Respond(ErrorResponse(now.error()));
        ex->Respond(JobResponse(IsFinished(now->record.status) ? http::status::ok : http::status::accepted, *now));
      });
    });
  });
}

void Api::GetJob(const Caller& caller, const std::string& id, Millis wait, bool with_input,
                 std::shared_ptr<Exchange> ex) {
  if (wait.count() > 0) {
    TenantLimits::Hold hold;
    if (auto refused = HoldWait(caller.tenant, &hold)) return ex->Respond(ProblemResponse(*refused));
    if (hold) ex = std::make_shared<WaitingExchange>(std::move(ex), std::move(hold));
  }
  auto answer = [ex, with_input](const JobSnapshot& job) {
    if (!with_input) return ex->Respond(JobResponse(http::status::ok, job));
    std::string body;
    AppendJobJson(&body, job, /*include_result=*/true, /*include_input=*/true);
    ex->Respond(JsonResponse(http::status::ok, std::move(body)));
  };
  if (wait.count() == 0) return GetOwn(caller, id, ex, answer);
  auto await = [this, ex, id, wait, answer] {
    AwaitJob(ex, id, wait, false, [ex, answer](ErrorOr<JobSnapshot> job) {
      if (!job) return ex->Respond(ErrorResponse(job.error()));
      answer(*job);
    });
  };
  if (caller.sees_all) return await();
  // Another tenant's job answers at once, as an unknown id does, not when it ends.
  GetOwn(caller, id, ex, [ex, await](const JobSnapshot&) { asio::post(ex->executor(), await); });
}

void Api::StreamJobEvents(const Caller& caller, const std::string& id, const std::string& last_event_id,
                          std::shared_ptr<Exchange> ex) {
  TenantLimits::Hold hold;
  if (auto refused = HoldStream(caller.tenant, &hold)) return ex->Respond(ProblemResponse(*refused));
  // Subscribed before the job is read: what changes after the read is in the log.
  auto sub = HeldSubscription(service_->SubscribeEvents(JobEventFilter{id, ""}, last_event_id), std::move(hold));
  GetOwn(caller, id, ex, [this, ex, sub](JobSnapshot job) {
    ex->RespondStream(JobEventStream::Header(), JobEventStream::OfJob(service_, ex->executor(), sub, std::move(job)));
  });
}

void Api::GetResult(const Caller& caller, const std::string& id, HttpRequestHeader req, std::shared_ptr<Exchange> ex) {
  GetOwn(caller, id, ex, [this, ex, req = std::move(req)](const JobSnapshot& job) {
    ex->Respond(ResultResponse(job, service_->files(), &req));
  });
}

void Api::CancelJob(const Caller& caller, const std::string& id, std::shared_ptr<Exchange> ex) {
  auto cancel = [this, ex, id] {
    service_->Cancel(id, [ex](ErrorOr<JobSnapshot> job) {
      if (!job) return ex->Respond(ErrorResponse(job.error()));
      ex->Respond(JobResponse(http::status::ok, *job));
    });
  };
  if (caller.sees_all) return cancel();
  GetOwn(caller, id, ex, [cancel](const JobSnapshot&) { cancel(); });
}

void Api::CancelMatching(const Caller& caller, const std::string& body, std::shared_ptr<Exchange> ex) {
  std::string task;
  std::optional<JobStatus> status;
  bool all = false;
  {
    ErrorOr<json::value> parsed = ParseJson(body.empty() ? std::string_view("{}") : std::string_view(body));
    if (!parsed || !parsed->is_object()) {
      return ex->Respond(ErrorResponse(
          MakeError(ErrorCode::kMalformed,
                    "the body must be a JSON object such as {\"task\": \"render\", \"status\": \"queued\"}")));
    }
    for (const auto& [key, value] : parsed->as_object()) {
      if (key == "task" && value.is_string()) {
        task = std::string(value.as_string());
      } else if (key == "all" && value.is_bool()) {
        all = value.as_bool();
      } else if (key == "status" && value.is_string()) {
        JobStatus st;
        if (!ParseJobStatus(value.as_string(), &st) || IsFinished(st)) {
          return ex->Respond(
              ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "status must be \"queued\" or \"running\"")));
        }
        status = st;
      } else {
        return ex->Respond(ErrorResponse(MakeError(
            ErrorCode::kInvalidArgument, "unknown or mistyped field \"" + std::string(key) +
                                             "\" (expected \"task\" and \"status\", strings, or \"all\": true)")));
      }
    }
  }
  // Every job of every task takes saying so: an empty body is more likely a mistake.
  if (task.empty() && !status && !all) {
    return ex->Respond(ErrorResponse(MakeError(ErrorCode::kInvalidArgument,
                                               "name a \"task\" or a \"status\", or send {\"all\": true} to "
                                               "cancel every queued and running job")));
  }
  if (!task.empty() && !service_->FindTask(task)) {
    return ex->Respond(ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "no task named \"" + task + "\"")));
  }
  service_->CancelMatching(task, status, caller.Filter(), [ex](ErrorOr<std::size_t> canceled) {
    if (!canceled) return ex->Respond(ErrorResponse(canceled.error()));
    ex->Respond(JsonResponse(http::status::ok, json::object{{"canceled", *canceled}}));
  });
}

void Api::ListJobs(const JobQuery& query, std::shared_ptr<Exchange> ex) {
  const bool include = query.include_result;
  // Without results a job is a few hundred bytes and limit caps the page: only
  // results can make a page large.
  const std::size_t budget =
      include ? static_cast<std::size_t>(config_.max_list_bytes) : std::numeric_limits<std::size_t>::max();
  auto too_large = [budget, limit = query.limit] {
    return ErrorResponse(
        MakeError(ErrorCode::kResponseTooLarge, "the jobs of this page (limit=" + std::to_string(limit) +
                                                    ") with their results are over "
                                                    "max_list_bytes (" +
                                                    std::to_string(budget) +
                                                    " bytes): ask for fewer with a lower limit, "
                                                    "or list without include=result and fetch each job's result_url"));
  };
  service_->List(query, [ex, budget, include, too_large](ErrorOr<std::vector<JobSnapshot>> jobs,
                                                         std::optional<std::uint64_t> next) {
    if (!jobs) {
      if (jobs.error().code == ErrorCode::kResponseTooLarge) return ex->Respond(too_large());
      return ex->Respond(ErrorResponse(jobs.error()));
    }
    // Serialized job by job, so that the answer is measured as it grows and never
    // built past the budget (plus one job).
    std::string body = "{\"jobs\":[";
    for (std::size_t i = 0; i < jobs->size(); ++i) {
      if (i > 0) body += ',';
      AppendJobJson(&body, (*jobs)[i], include);
      if (body.size() > budget) return ex->Respond(too_large());
    }
    body += "],\"next_cursor\":";
    if (next)
      AppendJsonString(&body, std::to_string(*next));
    else
      body += "null";
    body += '}';
    ex->Respond(JsonResponse(http::status::ok, std::move(body)));
  });
}

void Api::RunTask(const Caller& caller, const std::string& task, HttpRequest&& req, std::shared_ptr<Exchange> ex) {
  auto submit = ParseRunRequest(task, req.body());
  if (!submit) return ex->Respond(ErrorResponse(submit.error()));
  submit->tenant = caller.tenant;
  RunParsed(std::move(*submit), std::move(ex));
}

void Api::RunParsed(SubmitRequest submit, std::shared_ptr<Exchange> ex) {
  TenantLimits::Hold hold;
  if (auto refused = HoldWait(submit.tenant, &hold)) return ex->Respond(ProblemResponse(*refused));
  if (hold) ex = std::make_shared<WaitingExchange>(std::move(ex), std::move(hold));
  service_->Submit(std::move(submit), [this, ex](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    if (IsFinished(job->record.status)) return ex->Respond(ResultResponse(*job, service_->files()));
    asio::post(ex->executor(), [this, ex, id = job->record.id] {
      AwaitJob(ex, id, config_.run_timeout, true, [this, ex, id](ErrorOr<JobSnapshot> now) {
        if (!now) return ex->Respond(ErrorResponse(now.error()));
        if (IsFinished(now->record.status)) return ex->Respond(ResultResponse(*now, service_->files()));
        // Nobody will ask for this result: stop the work.
        if (service_->draining()) {
          service_->Cancel(id, CancelCause::kShutdown, [](const ErrorOr<JobSnapshot>&) {});
          return ex->Respond(ErrorResponse(MakeError(
              ErrorCode::kUnavailable, "the server is shutting down; job " + id + " did not finish and was canceled")));
        }
        service_->Cancel(id, CancelCause::kRunTimeout, [](const ErrorOr<JobSnapshot>&) {});
        ex->Respond(ProblemResponse(MakeProblem(
            http::status::gateway_timeout, "run-timeout", "The job did not finish in time",
            "job " + id + " did not finish within run_timeout (" + std::to_string(config_.run_timeout.count()) +
                " ms) and was canceled; submit "
                "long jobs with POST /v1/jobs instead")));
      });
    });
  });
}

void Api::AwaitJob(const std::shared_ptr<Exchange>& ex, const std::string& id, Millis timeout,
                   bool cancel_if_client_gone, const Finished& then) {
  // All of this state is touched on ex's executor only.
  struct WaitState {
    explicit WaitState(const asio::any_io_executor& exec) : timer(exec) {}
    asio::steady_timer timer;
    bool done = false;
    JobService::WaitTicket ticket = 0;
  };
  auto state = std::make_shared<WaitState>(ex->executor());
  auto exec = ex->executor();
  state->ticket = service_->AwaitFinish(id, [state, exec, then](ErrorOr<JobSnapshot> snap) {
    asio::post(exec, [state, then, snap = std::move(snap)]() mutable {
      if (state->done) return;
      state->done = true;
      state->timer.cancel();
      then(std::move(snap));
    });
  });
  if (state->ticket == 0) return service_->Get(id, then);  // Finished, or unknown.

  state->timer.expires_after(timeout);
  state->timer.async_wait([this, state, id, then](const boost::system::error_code& ec) {
    if (ec || state->done) return;
    // If the waiter fired meanwhile, its posted handler answers instead.
    if (!service_->CancelAwait(id, state->ticket)) return;
    state->done = true;
    service_->Get(id, then);
  });
  if (cancel_if_client_gone) {
    ex->OnClientGone([this, state, id] {
      if (state->done) return;
      state->done = true;
      state->timer.cancel();
      service_->CancelAwait(id, state->ticket);
      service_->Cancel(id, CancelCause::kClientGone, [](const ErrorOr<JobSnapshot>&) {});
    });
  }
}

namespace {

// The job fields of POST /v1/jobs?task=NAME&priority=N&timeout=S, which an upload
// gives in its query since its body is a file.
ErrorOr<UploadTarget> UploadTargetOf(const boost::urls::url_view& url) {
  UploadTarget t;
  auto param = [&](const char* name) -> std::optional<std::string> {
    auto it = url.params().find(name);
    if (it == url.params().end()) return std::nullopt;
    return std::string((*it).value);
  };
  for (const auto& p : url.params()) {
    if (p.key != "task" && p.key != "priority" && p.key != "timeout") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "unknown query parameter \"" + std::string(p.key) + "\" (expected task, priority, timeout)");
    }
  }
  if (auto task = param("task"); task && !task->empty()) {
    t.task = *task;
  } else {
    return MakeError(ErrorCode::kInvalidArgument,
                     "a file upload names its task in the query: POST /v1/jobs?task=NAME (or POST "
                     "/v1/tasks/NAME/run)");
  }
  if (auto p = param("priority")) {
    auto [end, ec] = std::from_chars(p->data(), p->data() + p->size(), t.priority);
    if (ec != std::errc() || end != p->data() + p->size()) {
      return MakeError(ErrorCode::kInvalidArgument, "priority must be a 32-bit integer");
    }
  }
  if (auto s = param("timeout")) {
    if (!ParseSeconds(*s, &t.timeout) || t.timeout.count() <= 0) {
      return MakeError(ErrorCode::kInvalidArgument, "timeout must be a positive number of seconds");
    }
  }
  return t;
}

}  // namespace

UploadPlan Api::PlanUpload(const HttpRequest& header, const Caller& caller) {
  UploadPlan plan;
  if (header.method() != http::verb::post) return plan;
  const std::string_view content_type = header[http::field::content_type];
  const std::string_view type = MediaTypeOf(content_type);
  if (type.empty() || boost::beast::iequals(type, "application/json")) return plan;
  auto parsed = boost::urls::parse_origin_form(header.target());
  if (!parsed) return plan;  // Handle answers it.
  const boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) seg.push_back(s);
  // POST /v1/jobs without ?task= is a JSON submit sent with another type, which
  // Handle refuses with 415.
  const bool jobs = seg.size() == 2 && seg[0] == "v1" && seg[1] == "jobs" && url.params().contains("task");
  const bool run = seg.size() == 4 && seg[0] == "v1" && seg[1] == "tasks" && seg[3] == "run";
  if (!jobs && !run) return plan;  // Handle refuses the type with 415.
  // A refusal here is sent before the body is read, and the connection closed.
  auto refuse = [&plan](Problem p) {
    plan.refusal = std::move(p);
    return std::move(plan);
  };
  // Screen checked the origin with [auth] only.
  if (auto refused = origins_.Check(header)) return refuse(*refused);
  UploadTarget target;
  if (run) {
    if (!url.params().empty()) {
      return refuse(ProblemFromError(
          MakeError(ErrorCode::kInvalidArgument,
                    "POST /v1/tasks/NAME/run takes no query; use POST /v1/jobs?task=NAME&priority=N")));
    }
    target.task = seg[2];
    target.run = true;
  } else {
    auto t = UploadTargetOf(url);
    if (!t) return refuse(ProblemFromError(t.error()));
    target = std::move(*t);
  }
  target.tenant = caller.tenant;
  const TaskConfig* task = service_->FindTask(target.task);
  if (!task) {
    return refuse(ProblemFromError(MakeError(ErrorCode::kInvalidArgument,
                                             "task: no task named \"" + target.task + "\"; GET /v1/tasks lists them")));
  }
  if (task->accept.empty()) {
    // A task that takes no files takes no form either: a form is how a page of another
    // site would post to it without a preflight.
    Problem p = UnsupportedMediaTypeProblem(content_type, "application/json");
    p.detail = "task \"" + target.task + "\" takes JSON input only (application/json), not " + std::string(type) +
               "; a task that takes files lists their types in its accept";
    p.accept = "application/json";
    return refuse(std::move(p));
  }
  const bool form = IsMultipartFormData(content_type);
  if (!form && !AcceptsMediaType(task->accept, content_type)) {
    std::string accepted = "application/json, multipart/form-data";
    for (const std::string& a : task->accept) accepted += ", " + a;
    Problem p = UnsupportedMediaTypeProblem(content_type, accepted);
    p.detail = "task \"" + target.task + "\" does not take " + std::string(type) + " bodies; it takes " + accepted;
    p.accept = accepted;
    return refuse(std::move(p));
  }
  // A type first, then the size: 415 says more than 413 to a client that sent both wrong.
  const std::uint64_t limit = static_cast<std::uint64_t>(task->max_input);
  if (auto len = header.find(http::field::content_length); len != header.end()) {
    std::uint64_t n = 0;
    const std::string_view v = len->value();
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc() && end == v.data() + v.size() && n > limit) {
      return refuse(ProblemFromError(
          MakeError(ErrorCode::kTooLarge, "the upload is " + std::to_string(n) + " bytes, larger than task \"" +
                                              target.task + "\"'s max_input (" + std::to_string(limit) + " bytes)")));
    }
  }
  if (form) {
    auto boundary = MultipartBoundary(content_type);
    if (!boundary) return refuse(ProblemFromError(boundary.error()));
    plan.upload = Upload::Multipart(&service_->files(), std::move(target), std::move(*boundary), task->accept,
                                    static_cast<std::size_t>(config_.max_body));
  } else {
    auto upload = Upload::Binary(&service_->files(), std::move(target), std::string(content_type));
    if (!upload) {
      spdlog::warn("cannot receive an upload: {}", upload.error().detail);
      return refuse(ProblemFromError(MakeError(upload.error().code, "files_dir cannot take an upload now")));
    }
    plan.upload = std::move(*upload);
  }
  plan.limit = limit;
  return plan;
}

void Api::HandleUpload(std::unique_ptr<Upload> upload, HttpRequestHeader req, std::shared_ptr<Exchange> ex) {
  if (origins_.IsCorsRequest(req)) {
    ex = OriginPolicy::WithCorsHeaders(std::move(ex), std::string(req[http::field::origin]));
  }
  if (config_.role == "worker") return ex->Respond(ErrorResponse(WorkerOnly()));
  const UploadTarget& target = upload->target();
  SubmitRequest submit;
  submit.task = target.task;
  submit.priority = target.priority;
  submit.timeout = target.timeout;
  submit.tenant = target.tenant;
  if (const auto& text = upload->json_input(); text && !text->empty()) {
    ErrorOr<json::value> input = ParseJson(*text, "input");
    if (!input) {
      if (input.error().code == ErrorCode::kInvalidArgument) return ex->Respond(ErrorResponse(input.error()));
      return ex->Respond(ErrorResponse(
          MakeError(ErrorCode::kMalformed, "the \"input\" part is not valid JSON: " + input.error().detail)));
    }
    submit.input = std::move(*input);
  }
  submit.files = upload->TakeFiles();
  if (target.run) return RunParsed(std::move(submit), std::move(ex));
  SubmitParsed(std::move(submit), req, std::move(ex));
}

}  // namespace offload
