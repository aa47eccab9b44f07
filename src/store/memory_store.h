// MemoryStore: jobs in RAM, lost at exit. For tests and throwaway use.
#pragma once

#include <map>
#include <set>
#include <unordered_map>

#include "store/store.h"
#include "util/mutex.h"

namespace offload {

// Thread-safe: every method takes mu_ for its whole (short, allocation-only) body.
class MemoryStore final : public Store {
 public:
  Status Apply(const std::vector<StoreOp>& ops) override;
  ErrorOr<std::optional<JobRecord>> Get(const std::string& id) override;
  ErrorOr<JobPage> List(const JobQuery& query) override;
  ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) override;
  ErrorOr<std::vector<std::string>> FinishedWithFilesBefore(UnixMillis cutoff) override;
  ErrorOr<std::vector<JobRecord>> LoadUnfinished() override;
  ErrorOr<std::uint64_t> MaxSeq() override;
  ErrorOr<std::vector<IdempotencyEntry>> LoadIdempotencyKeys(UnixMillis since) override;

 private:
  Mutex mu_;
  using BySeq = std::map<std::uint64_t, JobRecord>;
  BySeq by_seq_ GUARDED_BY(mu_);
  // id -> its node in by_seq_ (map iterators stay valid until their node is erased),
  // so an update finds its record by hash, without a tree walk.
  std::unordered_map<std::string, BySeq::iterator> node_of_ GUARDED_BY(mu_);
  // (finished_at, seq) of every finished job, oldest first: retention takes from the
  // front. Ordered by time, not by when the write came, because finishes are not
  // always written in the order of their times (a cancel stamps a running job early;
  // the wall clock may step back).
  std::set<std::pair<UnixMillis, std::uint64_t>> finished_ GUARDED_BY(mu_);
};

}  // namespace offload
