// AccessLog: one line per answered request (config access_log, access_log_format),
// as JSON or in the NCSA common log format, each with its request id.
//
// Thread-safe, without a lock: each line is formatted on the I/O thread that answered
// the request and written with one write(2) to a file opened O_APPEND (or to
// stderr), which keeps lines whole and lets logrotate's copytruncate work.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/error.h"

namespace offload {

struct AccessEntry {
  std::string_view remote;  // The client's address.
  std::string_view method;
  std::string_view target;
  unsigned version = 11;  // 10 or 11.
  unsigned status = 0;
  std::optional<std::uint64_t> bytes;  // Of the body; nullopt for a stream.
  double duration_ms = 0;              // From the header read to the response ready.
  std::string_view request_id;
  std::string_view user_agent;
};

// `target` with the value of each query parameter a token could be in (access_token,
// token, api_key) written REDACTED: with [auth] such a request is refused, and the
// token it carried is never written down. The query of a target that does not parse
// as a path and a query is REDACTED whole.
std::string RedactQueryTokens(std::string_view target);

class AccessLog {
 public:
  // `where`: "stderr" or a file's path; `format`: "json" or "common".
  static ErrorOr<std::unique_ptr<AccessLog>> Open(const std::string& where, const std::string& format);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void Write(const AccessEntry& entry) const;

  // A request id for a request that brought none: this process's prefix and a count.
  std::string NewRequestId();
  // `sent` (an X-Request-Id) when it is one to keep: 1 to 128 visible ASCII
  // characters, none a quote or a backslash; else empty.
  static std::string_view Acceptable(std::string_view sent);

 private:
  AccessLog(int fd, bool owned, bool json);

  const int fd_;
  const bool owned_;  // fd_ is a file this log opened.
  const bool json_;
  const std::string id_prefix_;
  std::atomic<std::uint64_t> next_id_{0};
};

}  // namespace offload
