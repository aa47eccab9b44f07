// Where a succeeded job's result is kept: in memory (and in the store's row) or in
// a file under files_dir. Executors report what the task produced — a value, bytes,
// or a file it wrote — and PlaceResult makes it what the service keeps.
#pragma once

#include <cstdint>
#include <string>

#include "config/defaults.h"
#include "files/file_store.h"
#include "offload/result.h"

namespace offload {

struct ResultPlacementLimits {
  // Binary results larger than this go to a file.
  std::uint64_t max_memory_result = kDefaultMaxMemoryResult;
  // The task's max_result: a result file larger fails the job with result_too_large.
  std::uint64_t max_result = UINT64_MAX;
};

// True when PlaceResult has work to do for `outcome` (file I/O, to be done off the
// thread that reported it): a file not yet taken in, or large bytes.
bool NeedsPlacement(const Result& outcome, const ResultPlacementLimits& limits);

// Returns the outcome the service keeps for job `id`:
//  - a file the task wrote becomes the job's result file (moved, hashed, synced);
//    under a JSON content type it is parsed instead and kept as a value;
//  - bytes over max_memory_result are written to the job's result file;
//  - anything else, and failures, unchanged.
// A result over max_result fails with result_too_large; a disk that cannot take the
// file with result_not_stored.
Result PlaceResult(FileStore& files, const std::string& id, Result outcome, const ResultPlacementLimits& limits);

}  // namespace offload
