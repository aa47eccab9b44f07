#include "http/accept_backoff.h"

#include <algorithm>

namespace offload {

std::chrono::milliseconds AcceptBackoff::OnFailure(const std::string& error) {
  ++failed_;
  last_error_ = error;
  delay_ = delay_.count() == 0 ? kFirstDelay : std::min(delay_ * 2, kMaxDelay);
  return delay_;
}

std::optional<std::string> AcceptBackoff::TakeLogLine(Clock::time_point now) {
  if (refused_ == 0 && failed_ == 0) return std::nullopt;
  if (last_log_ && now - *last_log_ < kLogPeriod) return std::nullopt;
  std::string line;
  if (refused_ > 0) {
    line = std::to_string(refused_) + " connection(s) refused at max_connections";
  }
  if (failed_ > 0) {
    if (!line.empty()) line += "; ";
    line += std::to_string(failed_) + " accept(s) failed (last: " + last_error_ + "), retrying with back-off up to " +
            std::to_string(kMaxDelay.count()) + " ms";
  }
  if (last_log_) {
    line += " in the last " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *last_log_).count()) + " s";
  }
  refused_ = 0;
  failed_ = 0;
  last_log_ = now;
  return line;
}

}  // namespace offload
