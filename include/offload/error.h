// Error values crossing module boundaries, the public API's (offload::Server) among
// them. Codes are chosen so that a caller can act on them (Abseil's status codes are
// the model); src/http/problem.cc maps them to HTTP statuses in exactly one place.
#pragma once

#include <boost/system/result.hpp>
#include <string>
#include <string_view>

namespace offload {

enum class ErrorCode {
  kMalformed,             // The request could not be parsed (bad JSON, bad query).
  kInvalidArgument,       // Parsed, but a field is wrong or names something unknown.
  kNotFound,              // No such job.
  kConflict,              // The job is in the wrong state for this operation.
  kQueueFull,             // The task's queue holds max_queued jobs.
  kQuotaExceeded,         // The tenant is at one of its quotas (its max_queued jobs queued).
  kTooLarge,              // A body over max_body (or an upload over max_input).
  kUnsupportedMediaType,  // A body or file of a content type the endpoint or task does not take.
  kResponseTooLarge,      // The answer asked for would pass a response budget (max_list_bytes).
  kUnavailable,           // Draining for shutdown, or the store cannot take writes.
  kInsufficientStorage,   // The disk cannot take an upload or a file (ENOSPC, a quota).
  kInternal,              // A bug or an unexpected failure.
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string detail;  // For a person: what is wrong and what to do about it.
};

inline Error MakeError(ErrorCode code, std::string detail) { return Error{code, std::move(detail)}; }

std::string_view ErrorCodeName(ErrorCode code);

// Lets boost::system::result<T, Error>::value() throw when it holds an error; code
// that checks has_value() first never reaches it.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <typename T>
using ErrorOr = boost::system::result<T, Error>;
// Success, or why not, for an operation with no value to return: `return {};` on
// success, `if (!status) ... status.error()` to check.
using Status = ErrorOr<void>;

}  // namespace offload
