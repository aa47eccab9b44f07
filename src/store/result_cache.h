// ResultCache: the large results that some reader still holds, by job id, so that a
// second reader of the same job shares the first one's copy instead of reading (and
// holding) its own. 500 clients downloading one 5 MB result then hold 5 MB, not
// 2.5 GB. Entries are weak: a result lives exactly as long as a response (or the
// job) holds it, and the cache never keeps one alive by itself.
//
// Thread-safe; one short mutex. Dead entries are pruned when the map has doubled
// since the last prune, so the cost per call stays O(1) amortized.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "offload/result.h"
#include "util/mutex.h"

namespace offload {

class ResultCache {
 public:
  // Results smaller than this are cheaper to read again than to track.
  static constexpr std::size_t kMinBytes = 64 * 1024;

  // The result of job `id` if a reader still holds it; null otherwise.
  std::shared_ptr<const Output> Find(const std::string& id);
  // Remembers `result` as job `id`'s when its stored form is at least kMinBytes.
  void Remember(const std::string& id, const std::shared_ptr<const Output>& result, std::size_t stored_bytes);
  // Entries, live or dead.
  std::size_t SizeForTest();

 private:
  Mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const Output>> results_ GUARDED_BY(mu_);
  std::size_t prune_at_ GUARDED_BY(mu_) = 1024;
};

}  // namespace offload
