// Store: where jobs live at rest. The interface is synchronous and small on purpose:
// JobService decides on which thread it is called (never an I/O thread once a store
// can block), and one conformance suite (tests/store/store_test.cc) runs against
// every implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/job_record.h"
#include "util/error.h"

namespace offload {

struct JobQuery {
  std::optional<JobStatus> status;
  std::optional<std::string> task;
  std::size_t limit = 50;
  // Only jobs submitted before this seq (exclusive): the cursor of the previous page.
  std::uint64_t before_seq = UINT64_MAX;
};

struct JobPage {
  std::vector<JobRecord> jobs;  // Newest first.
  // Set when more jobs may match: pass it as before_seq for the next page.
  std::optional<std::uint64_t> next_before_seq;
};

// Implementations are thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Adds a new job. Fails with kConflict if the id exists.
  [[nodiscard]] virtual ErrorOr<bool> Insert(const JobRecord& job) = 0;
  // Replaces the stored record of job.id. Fails with kNotFound if there is none.
  [[nodiscard]] virtual ErrorOr<bool> Update(const JobRecord& job) = 0;
  [[nodiscard]] virtual ErrorOr<std::optional<JobRecord>> Get(const std::string& id) = 0;
  [[nodiscard]] virtual ErrorOr<JobPage> List(const JobQuery& query) = 0;
  // Deletes finished jobs whose finished_at is before `cutoff`; returns how many.
  [[nodiscard]] virtual ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) = 0;
};

// Opens the store named by the config's `store` key ("memory").
ErrorOr<std::unique_ptr<Store>> OpenStore(const std::string& spec);

}  // namespace offload
