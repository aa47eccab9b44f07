// Wall-clock helpers. Job timestamps are milliseconds since the Unix epoch (UTC);
// 0 means "not yet" and is rendered as JSON null.
#pragma once

#include <cstdint>
#include <string>

namespace offload {

using UnixMillis = std::int64_t;

// Thread-safe.
UnixMillis NowMillis();

// Where a component reads the time of day, so that a test can set it: the job
// service stamps jobs and expires them by it. Implementations are thread-safe.
class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual UnixMillis Now() const = 0;
};

// NowMillis(), as a WallClock. Lives for the whole program.
const WallClock& SystemClock();

// "2026-11-22T04:15:57.123Z". REQUIRES: ms > 0.
std::string FormatRfc3339(UnixMillis ms);

}  // namespace offload
