// Defaults that more than one layer states: the config structs (config.h) and the
// options structs of the parts they configure (exec/, http/). Each is written here
// once so that a change reaches all of them; config.h, --help and docs/config.md take
// the same value. Only constants: any layer may include this without depending on
// the config parser.
#pragma once

#include <chrono>
#include <cstdint>

namespace offload {

// Largest request body in bytes; a larger one gets 413 (`max_body`).
inline constexpr std::int64_t kDefaultMaxBody = 16 << 20;
// A connection with no request in progress is closed after this (`idle_timeout`).
inline constexpr std::chrono::milliseconds kDefaultIdleTimeout{60'000};
// First byte of a request to the end of its header; the longest a body may stall
// (`header_timeout`).
inline constexpr std::chrono::milliseconds kDefaultHeaderTimeout{10'000};
// A response write that makes no progress this long drops the connection
// (`write_timeout`).
inline constexpr std::chrono::milliseconds kDefaultWriteTimeout{10'000};

// Between SIGTERM and SIGKILL when a task's process is stopped (`kill_grace`).
inline constexpr std::chrono::milliseconds kDefaultKillGrace{5000};
// Output of a command or worker job beyond this many bytes fails it (`max_result`).
inline constexpr std::int64_t kDefaultMaxResult = 64 << 20;
// Binary results larger than this live in a file (ServerConfig::max_memory_result).
inline constexpr std::int64_t kDefaultMaxMemoryResult = 1 << 20;

}  // namespace offload
