// AcceptBackoff: what the accept loop does when it cannot take a connection.
//
// At the open-file limit accept() fails with EMFILE at once, and the connection
// stays in the listen backlog, so a loop that accepts again at once spins: one
// core and millions of log lines a second, with every client timing out. Instead
// a failed accept waits before the next try, 10 ms doubling to 1 s, reset by the
// first success: at most ~1 try a second while the limit holds, and a freed fd is
// used within a second. Connections refused at max_connections (accepted and
// closed at once) and failed accepts are counted, and one log line a period
// (10 s) reports the counts, so a flood costs one line, not one per connection.
//
// Not thread-safe: the acceptor's thread only. Pure (the caller passes the time),
// so it is tested without sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace offload {

class AcceptBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFirstDelay{10};
  static constexpr std::chrono::milliseconds kMaxDelay{1000};
  static constexpr std::chrono::seconds kLogPeriod{10};

  // accept() failed with `error`: returns how long to wait before the next try.
  std::chrono::milliseconds OnFailure(const std::string& error);
  // accept() succeeded: the next failure waits kFirstDelay again.
  void OnSuccess() { delay_ = std::chrono::milliseconds(0); }
  // A connection was accepted and closed at max_connections.
  void OnRefused() { ++refused_; }

  // The line to log now, if something was counted and none was logged within
  // kLogPeriod; the counts then start again from zero.
  std::optional<std::string> TakeLogLine(Clock::time_point now);

 private:
  std::chrono::milliseconds delay_{0};
  std::uint64_t refused_ = 0;
  std::uint64_t failed_ = 0;
  std::string last_error_;
  std::optional<Clock::time_point> last_log_;
};

}  // namespace offload
