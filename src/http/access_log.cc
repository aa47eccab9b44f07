#include "http/access_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/url.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>

#include "util/clock.h"
#include "util/json_writer.h"

namespace offload {

namespace {

std::string RandomPrefix() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

bool IsTokenParam(std::string_view key) { return key == "access_token" || key == "token" || key == "api_key"; }

}  // namespace

std::string RedactQueryTokens(std::string_view target) {
  const std::size_t query = target.find('?');
  if (query == std::string_view::npos) return std::string(target);
  auto parsed = boost::urls::parse_origin_form(target);
  // A target that is not a path and a query (the API refuses it, 400) cannot be read
  // parameter by parameter: its whole query is left out, a token in it with the rest.
  if (!parsed) return std::string(target.substr(0, query + 1)) + "REDACTED";
  boost::urls::url url(*parsed);
  bool found = false;
  for (auto it = url.params().begin(); it != url.params().end(); ++it) {
    if (!IsTokenParam((*it).key)) continue;
    found = true;
    it = url.params().replace(it, {(*it).key, "REDACTED"});
  }
  return found ? std::string(url.buffer()) : std::string(target);
}

ErrorOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& where, const std::string& format) {
  const bool json = format != "common";
  if (where == "stderr") return std::unique_ptr<AccessLog>(new AccessLog(STDERR_FILENO, false, json));
  const int fd = ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "access_log: cannot open " + where + " for appending: " + std::strerror(errno));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(fd, true, json));
}

AccessLog::AccessLog(int fd, bool owned, bool json) : fd_(fd), owned_(owned), json_(json), id_prefix_(RandomPrefix()) {}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

std::string AccessLog::NewRequestId() {
  return fmt::format("{}-{}", id_prefix_, next_id_.fetch_add(1, std::memory_order_relaxed) + 1);
}

std::string_view AccessLog::Acceptable(std::string_view sent) {
  if (sent.empty() || sent.size() > 128) return {};
  for (char c : sent) {
    if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') return {};
  }
  return sent;
}

void AccessLog::Write(const AccessEntry& e) const {
  const UnixMillis now = SystemClock().Now();
  std::string line;
  line.reserve(256);
  if (json_) {
    line += "{\"time\":\"";
    line += FormatRfc3339(now);
    line += "\",\"remote\":";
    AppendJsonString(&line, e.remote);
    line += ",\"method\":";
    AppendJsonString(&line, e.method);
    line += ",\"target\":";
    AppendJsonString(&line, RedactQueryTokens(e.target));
    fmt::format_to(std::back_inserter(line), ",\"status\":{},\"bytes\":", e.status);
    if (e.bytes) {
      fmt::format_to(std::back_inserter(line), "{}", *e.bytes);
    } else {
      line += "null";
    }
    fmt::format_to(std::back_inserter(line), ",\"duration_ms\":{:.3f},\"request_id\":", e.duration_ms);
    AppendJsonString(&line, e.request_id);
    line += ",\"user_agent\":";
    AppendJsonString(&line, e.user_agent);
    line += "}\n";
  } else {
    // host ident authuser [date] "request" status bytes, then the id and milliseconds.
    const std::time_t secs = static_cast<std::time_t>(now / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char date[40];
    std::strftime(date, sizeof date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    // The target as sent may hold bytes a log reader should not see raw: a quote or a
    // control character is escaped as nginx does (\xHH).
    std::string target;
    for (unsigned char c : RedactQueryTokens(e.target)) {
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
        fmt::format_to(std::back_inserter(target), "\\x{:02X}", c);
      } else {
        target += static_cast<char>(c);
      }
    }
    fmt::format_to(std::back_inserter(line), "{} - - [{}] \"{} {} HTTP/{}.{}\" {} ", e.remote, date, e.method, target,
                   e.version / 10, e.version % 10, e.status);
    if (e.bytes) {
      fmt::format_to(std::back_inserter(line), "{}", *e.bytes);
    } else {
      line += '-';
    }
    fmt::format_to(std::back_inserter(line), " {} {:.3f}\n", e.request_id.empty() ? "-" : e.request_id, e.duration_ms);
  }
  // One write: whole lines, in any order across threads. A short write (a full disk)
  // loses the rest of the line rather than stall the I/O thread.
  const ssize_t n = ::write(fd_, line.data(), line.size());
  (void)n;
}

}  // namespace offload
