#include "util/error.h"

#include <stdexcept>
#include <string>

namespace offload {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kQueueFull:
      return "queue_full";
    case ErrorCode::kQuotaExceeded:
      return "quota_exceeded";
    case ErrorCode::kTooLarge:
      return "too_large";
    case ErrorCode::kUnsupportedMediaType:
      return "unsupported_media_type";
    case ErrorCode::kResponseTooLarge:
      return "response_too_large";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInsufficientStorage:
      return "insufficient_storage";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error(std::string(ErrorCodeName(e.code)) + ": " + e.detail);
}

}  // namespace offload
