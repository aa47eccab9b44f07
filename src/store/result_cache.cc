#include "store/result_cache.h"

#include <algorithm>

namespace offload {

std::shared_ptr<const Output> ResultCache::Find(const std::string& id) {
  MutexLock lock(&mu_);
  auto it = results_.find(id);
  if (it == results_.end()) return nullptr;
  auto live = it->second.lock();
  if (!live) results_.erase(it);
  return live;
}

void ResultCache::Remember(const std::string& id, const std::shared_ptr<const Output>& result,
                           std::size_t stored_bytes) {
  if (!result || stored_bytes < kMinBytes) return;
  MutexLock lock(&mu_);
  results_[id] = result;
  if (results_.size() < prune_at_) return;
  std::erase_if(results_, [](const auto& entry) { return entry.second.expired(); });
  prune_at_ = std::max<std::size_t>(1024, 2 * results_.size());
}

std::size_t ResultCache::SizeForTest() {
  MutexLock lock(&mu_);
  return results_.size();
}

}  // namespace offload
