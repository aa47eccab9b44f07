// The load tool's side of the job JSON: the submit body out, and the few fields of a
// job object it needs in, read without a full parse so that the client spends its
// share of the cores on sending requests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace offload::bench {

// The value of a top-level string field `"key":"..."` of a job object (ids, statuses
// and timestamps hold no escapes). nullopt when absent or not a string.
std::optional<std::string_view> StringField(std::string_view json, std::string_view key);

// "2025-01-02T03:04:05.678Z" -> Unix milliseconds. nullopt when malformed.
std::optional<std::int64_t> ParseRfc3339Millis(std::string_view text);

struct JobView {
  std::string id;
  std::string status;
  std::int64_t started_at_ms = 0;   // 0: null.
  std::int64_t finished_at_ms = 0;  // 0: null.
};

// nullopt when the body has no "id".
std::optional<JobView> ReadJob(std::string_view json);

bool IsFinalStatus(std::string_view status);

// {"task": TASK, "input": INPUT}. Empty, with `error` set, when INPUT is not JSON.
std::string SubmitBody(const std::string& task, const std::string& input, std::string* error);
// {"task": TASK, "map": [INPUT x count], "chunk": CHUNK} ("chunk" only when > 0), built
// by appending: 100,000 elements cost one allocation, not a JSON tree. Empty, with
// `error` set, when INPUT is not JSON.
std::string MapBody(const std::string& task, const std::string& input, std::int64_t count, std::int64_t chunk,
                    std::string* error);
// INPUT re-serialized compactly. Empty, with `error` set, when it is not JSON.
std::string CompactJson(const std::string& input, std::string* error);

}  // namespace offload::bench
