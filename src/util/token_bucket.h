// TokenBucket: a request rate with bursts ("100/s": 100 a second on average, up to
// 100 at once after a quiet second). Used for the request limits of a connection and
// of a tenant.
//
// Not thread-safe: its owner serializes calls (a session's thread, a mutex).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>

namespace offload {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // `per_second` > 0; the burst is a second's worth, at least one.
  explicit TokenBucket(double per_second, Clock::time_point now = Clock::now())
      : rate_(per_second), burst_(std::max(1.0, per_second)), tokens_(burst_), last_(now) {}

  // Takes one token at `now`. When there is none, returns false and sets
  // *retry_after_s to the whole seconds until there is (at least 1).
  bool Take(Clock::time_point now, int* retry_after_s) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    if (elapsed > 0) {
      tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
      last_ = now;
    }
    if (tokens_ >= 1) {
      tokens_ -= 1;
      return true;
    }
    *retry_after_s = std::max(1, static_cast<int>(std::ceil((1 - tokens_) / rate_)));
    return false;
  }

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace offload
