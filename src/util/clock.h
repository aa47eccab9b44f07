// Wall-clock helpers. Job timestamps are milliseconds since the Unix epoch (UTC);
// 0 means "not yet" and is rendered as JSON null.
#pragma once

#include <cstdint>
#include <string>

namespace offload {

using UnixMillis = std::int64_t;

// Thread-safe.
UnixMillis NowMillis();

// "2026-11-22T04:15:57.123Z". REQUIRES: ms > 0.
std::string FormatRfc3339(UnixMillis ms);

}  // namespace offload
