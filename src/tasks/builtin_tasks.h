// The built-in in-process tasks: noop, sleep, cpu, mandelbrot. They use only the public
// API (include/offload/), as the handlers of an embedding program would.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "offload/task_registry.h"

namespace offload {

inline constexpr std::int64_t kMaxBuiltinMs = 3'600'000;  // One hour.
inline constexpr std::int64_t kMaxImageSide = 8192;

void RegisterBuiltinTasks(TaskRegistry* registry);

// Reads input[field] as an integer in [min, max], or `fallback` when absent and a
// fallback is given. Returns a detail naming the field when it is wrong.
std::optional<std::string> ReadIntField(const boost::json::value& input, const char* field, std::int64_t min,
                                        std::int64_t max, std::optional<std::int64_t> fallback, std::int64_t* out);

}  // namespace offload
