#include "http/api.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include "http/job_json.h"
#include "http/problem.h"
#include "offload/error_types.h"
#include "util/json_writer.h"

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

HttpResponse ProblemResponse(const Problem& p) {
  HttpResponse res{p.status, 11};
  res.set(http::field::content_type, "application/problem+json");
  if (p.retry_after_s > 0) res.set(http::field::retry_after, std::to_string(p.retry_after_s));
  res.body() = ProblemBody(p);
  return res;
}

HttpResponse ErrorResponse(const Error& e) { return ProblemResponse(ProblemFromError(e)); }

HttpResponse JobResponse(http::status status, const JobSnapshot& job) {
  std::string body;
  AppendJobJson(&body, job);
  HttpResponse res = JsonResponse(status, std::move(body));
  if (status == http::status::accepted) res.set(http::field::location, "/v1/jobs/" + job.record.id);
  return res;
}

// The result alone: what GET /v1/jobs/{id}/result and POST /v1/tasks/{name}/run send.
HttpResponse ResultResponse(const JobSnapshot& job) {
  const JobRecord& j = job.record;
  switch (j.status) {
    case JobStatus::kSucceeded: {
      HttpResponse res{http::status::ok, 11};
      res.set(http::field::content_type, j.result->content_type);
      if (j.result->is_json()) {
        // Serialized per response: a JSON result is a tree, not bytes to share.
        res.body() = WriteJson(j.result->json);
      } else {
        // Every response sending this result references the job's one copy of it.
        res.body().Share(std::shared_ptr<const std::string>(j.result, &j.result->bytes));
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
  std::string_view type = sent.substr(0, sent.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  if (boost::beast::iequals(type, kJson)) return std::nullopt;
  HttpResponse res = ProblemResponse(UnsupportedMediaTypeProblem(sent, kJson));
  // RFC 9110 15.5.16: Accept in a 415 says which types would have been taken.
  res.set(http::field::accept, kJson);
  return res;
}

HttpResponse MethodNotAllowed(std::string_view allow) {
  HttpResponse res = ProblemResponse(MakeProblem(http::status::method_not_allowed, "method-not-allowed",
                                                 "Method not allowed", "this resource answers " + std::string(allow)));
  res.set(http::field::allow, allow);
  return res;
}

}  // namespace

void Api::Handle(HttpRequest&& req, std::shared_ptr<Exchange> ex) {
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
  if (seg.size() < 2 || seg[0] != "v1") {
    return ex->Respond(ErrorResponse(MakeError(ErrorCode::kNotFound, "no resource at " + std::string(url.path()))));
  }
  if (seg[1] == "jobs" && seg.size() == 2) {
    if (method == http::verb::post) {
      if (auto refused = CheckBodyType(req)) return ex->Respond(std::move(*refused));
      return SubmitJob(req, std::move(ex));
    }
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET, POST"));
    JobQuery q;
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
  if (seg[1] == "jobs" && seg.size() == 3) {
    if (method == http::verb::get) {
      Millis wait{0};
      if (auto w = param("wait"); w && !ParseSeconds(*w, &wait)) {
        return ex->Respond(ErrorResponse(MakeError(ErrorCode::kMalformed, "wait must be a number of seconds")));
      }
      return GetJob(seg[2], std::min(wait, config_.max_wait), std::move(ex));
    }
    if (method == http::verb::delete_) return CancelJob(seg[2], std::move(ex));
    return ex->Respond(MethodNotAllowed("GET, DELETE"));
  }
  if (seg[1] == "jobs" && seg.size() == 4 && seg[3] == "result") {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    return GetResult(seg[2], std::move(ex));
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
    return RunTask(seg[2], std::move(req), std::move(ex));
  }
  if (seg[1] == "resources" && seg.size() == 2) {
    if (method != http::verb::get) return ex->Respond(MethodNotAllowed("GET"));
    json::array res;
    for (const auto& r : service_->Resources()) res.push_back(ResourceToJson(r));
    return ex->Respond(JsonResponse(http::status::ok, json::object{{"resources", std::move(res)}}));
  }
  ex->Respond(ErrorResponse(MakeError(ErrorCode::kNotFound, "no resource at " + std::string(url.path()))));
}

void Api::SubmitJob(const HttpRequest& req, std::shared_ptr<Exchange> ex) {
  auto parsed = ParseSubmitRequest(req.body());
  if (!parsed) return ex->Respond(ErrorResponse(parsed.error()));
  if (auto key = req["Idempotency-Key"]; !key.empty()) {
    if (key.size() > 255) {
      return ex->Respond(
          ErrorResponse(MakeError(ErrorCode::kInvalidArgument, "Idempotency-Key must be at most 255 characters")));
    }
    parsed->idempotency_key = std::string(key);
  }
  const Millis wait = std::min(PreferredWait(req[http::field::prefer]), config_.max_wait);
  service_->Submit(std::move(*parsed), [this, ex, wait](ErrorOr<JobSnapshot> job) {
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

void Api::GetJob(const std::string& id, Millis wait, std::shared_ptr<Exchange> ex) {
  auto answer = [ex](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    ex->Respond(JobResponse(http::status::ok, *job));
  };
  if (wait.count() == 0) return service_->Get(id, answer);
  AwaitJob(ex, id, wait, false, answer);
}

void Api::GetResult(const std::string& id, std::shared_ptr<Exchange> ex) {
  service_->Get(id, [ex](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    ex->Respond(ResultResponse(*job));
  });
}

void Api::CancelJob(const std::string& id, std::shared_ptr<Exchange> ex) {
  service_->Cancel(id, [ex](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    ex->Respond(JobResponse(http::status::ok, *job));
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

void Api::RunTask(const std::string& task, HttpRequest&& req, std::shared_ptr<Exchange> ex) {
  auto submit = ParseRunRequest(task, req.body());
  if (!submit) return ex->Respond(ErrorResponse(submit.error()));
  service_->Submit(std::move(*submit), [this, ex](ErrorOr<JobSnapshot> job) {
    if (!job) return ex->Respond(ErrorResponse(job.error()));
    if (IsFinished(job->record.status)) return ex->Respond(ResultResponse(*job));
    asio::post(ex->executor(), [this, ex, id = job->record.id] {
      AwaitJob(ex, id, config_.run_timeout, true, [this, ex, id](ErrorOr<JobSnapshot> now) {
        if (!now) return ex->Respond(ErrorResponse(now.error()));
        if (IsFinished(now->record.status)) return ex->Respond(ResultResponse(*now));
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
  state->ticket = service_->AwaitFinish(id, [state, exec, then](JobSnapshot snap) {
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

}  // namespace offload
