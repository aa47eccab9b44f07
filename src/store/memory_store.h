// MemoryStore: jobs in RAM, lost at exit. For tests and throwaway use.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include "store/store.h"

namespace offload {

// Thread-safe: every method takes mu_ for its whole (short, allocation-only) body.
class MemoryStore final : public Store {
 public:
  ErrorOr<bool> Insert(const JobRecord& job) override;
  ErrorOr<bool> Update(const JobRecord& job) override;
  ErrorOr<std::optional<JobRecord>> Get(const std::string& id) override;
  ErrorOr<JobPage> List(const JobQuery& query) override;
  ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) override;

 private:
  std::mutex mu_;
  std::map<std::uint64_t, JobRecord> by_seq_;             // guarded by mu_
  std::unordered_map<std::string, std::uint64_t> seq_of_;  // guarded by mu_
  // (finished_at, seq) in the order jobs finished: retention pops from the front.
  std::deque<std::pair<UnixMillis, std::uint64_t>> finished_;  // guarded by mu_
};

}  // namespace offload
