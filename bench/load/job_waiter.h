// WaitForJobs: long-polls GET /v1/jobs/{id}?wait=30 for every id until each one has
// finished, is unknown (404) or the deadline passes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "closed_loop.h"
#include "job_codec.h"

namespace offload::bench {

struct WaitOutcome {
  // jobs[i]: the final view of ids[i]; nullopt when it was lost or is unfinished.
  std::vector<std::optional<JobView>> jobs;
  std::int64_t lost = 0;        // 404: the server forgot an accepted job.
  std::int64_t unfinished = 0;  // Not final when the deadline passed.
};

// Runs on the calling thread.
WaitOutcome WaitForJobs(const Target& target, const std::vector<std::string>& ids, int connections,
                        Clock::time_point deadline);

}  // namespace offload::bench
