#include "util/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace offload {

UnixMillis NowMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

const WallClock& SystemClock() {
  class System final : public WallClock {
   public:
    UnixMillis Now() const override { return NowMillis(); }
  };
  static const System clock;
  return clock;
}

std::string FormatRfc3339(UnixMillis ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace offload
