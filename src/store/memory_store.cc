#include "store/memory_store.h"

namespace offload {

ErrorOr<bool> MemoryStore::Insert(const JobRecord& job) {
  std::lock_guard lock(mu_);
  if (!seq_of_.emplace(job.id, job.seq).second) {
    return MakeError(ErrorCode::kConflict, "job " + job.id + " exists");
  }
  by_seq_.emplace(job.seq, job);
  if (IsFinished(job.status)) finished_.emplace_back(job.finished_at, job.seq);
  return true;
}

ErrorOr<bool> MemoryStore::Update(const JobRecord& job) {
  std::lock_guard lock(mu_);
  auto it = seq_of_.find(job.id);
  if (it == seq_of_.end()) return MakeError(ErrorCode::kNotFound, "no job " + job.id);
  JobRecord& stored = by_seq_.at(it->second);
  if (!IsFinished(stored.status) && IsFinished(job.status)) {
    finished_.emplace_back(job.finished_at, job.seq);
  }
  stored = job;
  return true;
}

ErrorOr<std::optional<JobRecord>> MemoryStore::Get(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = seq_of_.find(id);
  if (it == seq_of_.end()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(by_seq_.at(it->second));
}

ErrorOr<JobPage> MemoryStore::List(const JobQuery& query) {
  std::lock_guard lock(mu_);
  JobPage page;
  auto it = by_seq_.lower_bound(query.before_seq);
  while (it != by_seq_.begin()) {
    --it;
    const JobRecord& job = it->second;
    if (query.status && job.status != *query.status) continue;
    if (query.task && job.task != *query.task) continue;
    if (page.jobs.size() == query.limit) {
      page.next_before_seq = page.jobs.back().seq;
      break;
    }
    page.jobs.push_back(job);
  }
  return page;
}

ErrorOr<std::size_t> MemoryStore::RemoveFinishedBefore(UnixMillis cutoff) {
  std::lock_guard lock(mu_);
  std::size_t removed = 0;
  while (!finished_.empty() && finished_.front().first < cutoff) {
    auto node = by_seq_.find(finished_.front().second);
    finished_.pop_front();
    if (node == by_seq_.end()) continue;
    seq_of_.erase(node->second.id);
    by_seq_.erase(node);
    ++removed;
  }
  return removed;
}

}  // namespace offload
