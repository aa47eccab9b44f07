#include "http/problem.h"

#include <boost/json.hpp>

#include "offload/error_types.h"
#include "util/json_writer.h"

namespace offload {

namespace http = boost::beast::http;

Problem MakeProblem(http::status status, const std::string& name, std::string title, std::string detail) {
  return Problem{status, "urn:offload:problem:" + name, std::move(title), std::move(detail), 0, std::nullopt};
}

Problem ProblemFromError(const Error& e) {
  switch (e.code) {
    case ErrorCode::kMalformed:
      return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request", e.detail);
    case ErrorCode::kInvalidArgument:
      return MakeProblem(http::status::unprocessable_entity, "invalid-request",
                         "The request names something unknown or invalid", e.detail);
    case ErrorCode::kNotFound:
      return MakeProblem(http::status::not_found, "not-found", "Not found", e.detail);
    case ErrorCode::kConflict:
      return MakeProblem(http::status::conflict, "conflict", "The job is not in a state that allows this", e.detail);
    case ErrorCode::kQueueFull: {
      Problem p = MakeProblem(http::status::too_many_requests, "queue-full", "The task's queue is full", e.detail);
      p.retry_after_s = 1;
      return p;
    }
    case ErrorCode::kQuotaExceeded: {
      // The one quota the service counts; the submit rate is the API's (Api::Screen).
      Problem p = MakeProblem(http::status::too_many_requests, "quota-max-queued",
                              "The tenant has as many jobs queued as its quota allows", e.detail);
      p.retry_after_s = 1;
      return p;
    }
    case ErrorCode::kTooLarge:
      return MakeProblem(http::status::payload_too_large, "body-too-large", "Request body too large", e.detail);
    case ErrorCode::kUnsupportedMediaType:
      return MakeProblem(http::status::unsupported_media_type, "unsupported-media-type", "Unsupported media type",
                         e.detail);
    case ErrorCode::kResponseTooLarge:
      // Not 413: that one speaks of the request's body. The request is well formed
      // but asks for more than one answer may carry, as a limit over 1000 would.
      return MakeProblem(http::status::unprocessable_entity, "response-too-large", "The answer would be too large",
                         e.detail);
    case ErrorCode::kUnavailable: {
      Problem p = MakeProblem(http::status::service_unavailable, "unavailable",
                              "The server cannot take this request now", e.detail);
      p.retry_after_s = 5;
      return p;
    }
    case ErrorCode::kInsufficientStorage: {
      // 507 (RFC 4918): nothing of the request was kept, and it may succeed once
      // retention or an operator has freed room.
      Problem p = MakeProblem(http::status::insufficient_storage, "insufficient-storage",
                              "Not enough room to store the request", e.detail);
      p.retry_after_s = 30;
      return p;
    }
    case ErrorCode::kInternal:
      break;
  }
  return MakeProblem(http::status::internal_server_error, "internal", "Internal error", e.detail);
}

Problem UnsupportedMediaTypeProblem(std::string_view sent, std::string_view expected) {
  return MakeProblem(http::status::unsupported_media_type, "unsupported-media-type", "Unsupported media type",
                     "the body must be sent with Content-Type: " + std::string(expected) + ", not " +
                         (sent.empty() ? std::string("without a Content-Type") : "\"" + std::string(sent) + "\""));
}

Problem OriginNotAllowedProblem(std::string_view origin) {
  return MakeProblem(http::status::forbidden, "origin-not-allowed", "Origin not allowed",
                     "requests from web pages of origin \"" + std::string(origin) +
                         "\" are refused; add it to allowed_origins in the server's config to let "
                         "them in");
}

Problem MisdirectedHostProblem(std::string_view host) {
  return MakeProblem(http::status::misdirected_request, "misdirected-request", "Misdirected request",
                     "this server listens on a loopback address and answers only requests for "
                     "localhost, 127.0.0.1 or [::1], not for Host \"" +
                         std::string(host) + "\" (a name that points here may be a DNS rebinding attack)");
}

Problem ProblemFromJobError(const JobError& e) {
  Problem p = [&] {
    const std::string detail = e.type + ": " + e.message;
    if (e.type == error_type::kInvalidInput) {
      return MakeProblem(http::status::unprocessable_entity, "job-failed", "The job failed", detail);
    }
    if (e.type == error_type::kTimeout) {
      return MakeProblem(http::status::gateway_timeout, "job-timeout", "The job timed out", detail);
    }
    if (e.type == error_type::kCanceled || e.type == error_type::kShutdown ||
        e.type == error_type::kClientDisconnected || e.type == error_type::kRunTimeout) {
      return MakeProblem(http::status::conflict, "job-canceled", "The job was canceled", detail);
    }
    return MakeProblem(http::status::internal_server_error, "job-failed", "The job failed", detail);
  }();
  p.job_error = e;
  return p;
}

boost::json::object JobErrorToJson(const JobError& e) {
  boost::json::object error{{"type", e.type}, {"message", e.message}};
  if (!e.detail.empty()) error["detail"] = e.detail;
  return error;
}

// The detail may quote what the client sent (a job id from the path, a field name):
// the writer keeps the body valid UTF-8 whatever those bytes were.
std::string ProblemBody(const Problem& p) {
  boost::json::object body{
      {"type", p.type}, {"title", p.title}, {"status", static_cast<int>(p.status)}, {"detail", p.detail}};
  if (p.job_error) body["error"] = JobErrorToJson(*p.job_error);
  return WriteJson(body);
}

HttpResponse ProblemResponse(const Problem& p) {
  namespace http = boost::beast::http;
  HttpResponse res{p.status, 11};
  res.set(http::field::content_type, "application/problem+json");
  if (p.retry_after_s > 0) res.set(http::field::retry_after, std::to_string(p.retry_after_s));
  if (!p.accept.empty()) res.set(http::field::accept, p.accept);
  if (!p.www_authenticate.empty()) res.set(http::field::www_authenticate, p.www_authenticate);
  res.body() = ProblemBody(p);
  return res;
}

}  // namespace offload
