// RFC 9457 problem details: the one place where internal errors become HTTP.
#pragma once

#include <boost/beast/http/status.hpp>
#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "http/exchange.h"
#include "offload/result.h"
#include "util/error.h"

namespace offload {

struct Problem {
  boost::beast::http::status status;
  std::string type;       // "urn:offload:problem:NAME"; docs/api.md lists them.
  std::string title;      // Short, the same for every problem of this type.
  std::string detail;     // What happened here and what to do.
  int retry_after_s = 0;  // Sent as Retry-After when > 0.
  // A failed job's error, sent whole as the extension member "error".
  std::optional<JobError> job_error;
  // Sent as Accept when not empty: with a 415, the types that would be taken (RFC 9110 15.5.16).
  std::string accept = {};
  // Sent as WWW-Authenticate when not empty: with a 401 or 403 (RFC 6750 3).
  std::string www_authenticate = {};
};

Problem ProblemFromError(const Error& error);
// The problem a failed job's /result answers with: 422 for input the task rejected,
// 504 for a timeout, 500 for every other failure.
Problem ProblemFromJobError(const JobError& error);
Problem MakeProblem(boost::beast::http::status status, const std::string& name, std::string title, std::string detail);

// 415 for a request body whose Content-Type (`sent`, "" when there was none) is not
// `expected`.
Problem UnsupportedMediaTypeProblem(std::string_view sent, std::string_view expected);
// 403 for a request from a web page whose Origin is neither allowed_origins nor the
// server's own.
Problem OriginNotAllowedProblem(std::string_view origin);
// 421 for a Host that does not name this server while it listens on loopback.
Problem MisdirectedHostProblem(std::string_view host);

// {"type", "message"} and "detail" when it has one: a job's "error" member.
boost::json::object JobErrorToJson(const JobError& error);

// {"type", "title", "status", "detail"} serialized, and "error" when set.
std::string ProblemBody(const Problem& p);

// The response of `p`: its status, body and the headers it names (Retry-After,
// Accept, WWW-Authenticate).
HttpResponse ProblemResponse(const Problem& p);

}  // namespace offload
