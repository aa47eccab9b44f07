// ManualClock: a WallClock that moves only when the test says, so that retention
// and expiry are tested without waiting or polling.
#pragma once

#include <atomic>
#include <chrono>

#include "util/clock.h"

namespace offload {

// Thread-safe.
class ManualClock final : public WallClock {
 public:
  // Starts at the real time, so that stamps look like ones a server writes.
  ManualClock() : now_(NowMillis()) {}
  UnixMillis Now() const override { return now_.load(); }
  void Advance(std::chrono::milliseconds by) { now_ += by.count(); }

 private:
  std::atomic<UnixMillis> now_;
};

}  // namespace offload
