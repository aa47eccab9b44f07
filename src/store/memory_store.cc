#include "store/memory_store.h"

#include <memory>
#include <string_view>
#include <unordered_set>

namespace offload {

Status MemoryStore::Apply(const std::vector<StoreOp>& ops) {
  MutexLock lock(&mu_);
  // Check every op first so that a failing batch changes nothing. Ids inserted by
  // this batch are tracked only when the batch inserts more than one job.
  std::unordered_set<std::string_view> inserted;
  for (const StoreOp& op : ops) {
    const bool exists = node_of_.count(op.job.id) > 0 || inserted.count(op.job.id) > 0;
    if (op.kind == StoreOp::Kind::kInsert && ops.size() > 1) inserted.insert(op.job.id);
    if (op.kind == StoreOp::Kind::kInsert && exists) {
      return MakeError(ErrorCode::kConflict, "job " + op.job.id + " exists");
    }
    if (op.kind == StoreOp::Kind::kUpdate && !exists) {
      return MakeError(ErrorCode::kNotFound, "no job " + op.job.id);
    }
  }
  for (const StoreOp& op : ops) {
    const JobRecord& job = op.job;
    if (op.kind == StoreOp::Kind::kInsert) {
      // New jobs have the largest seq but one in a rare race: the hint makes the
      // usual case constant time.
      auto node = by_seq_.emplace_hint(by_seq_.end(), job.seq, job);
      node_of_.emplace(job.id, node);
      if (IsFinished(job.status)) finished_.emplace(job.finished_at, job.seq);
      continue;
    }
    JobRecord& stored = node_of_.find(job.id)->second->second;
    if (IsFinished(stored.status)) finished_.erase({stored.finished_at, stored.seq});
    if (IsFinished(job.status)) finished_.emplace(job.finished_at, job.seq);
    stored = job;
  }
  return {};
}

ErrorOr<std::optional<JobRecord>> MemoryStore::Get(const std::string& id) {
  MutexLock lock(&mu_);
  auto it = node_of_.find(id);
  if (it == node_of_.end()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(it->second->second);
}

ErrorOr<JobPage> MemoryStore::List(const JobQuery& query) {
  MutexLock lock(&mu_);
  JobPage page;
  auto it = by_seq_.lower_bound(query.before_seq);
  while (it != by_seq_.begin()) {
    --it;
    const JobRecord& job = it->second;
    if (query.status && job.status != *query.status) continue;
    if (query.task && job.task != *query.task) continue;
    if (query.tenant && job.tenant != *query.tenant) continue;
    if (page.jobs.size() == query.limit) {
      page.next_before_seq = page.jobs.back().seq;
      break;
    }
    page.jobs.push_back(job);
    JobRecord& out = page.jobs.back();
    // Results are shared, so leaving them out saves no memory here; it is done for
    // the same answer as every store (see JobQuery::include_result).
    if (out.result && (!query.include_result || !out.result->is_json())) {
      auto stub = std::make_shared<Output>();
      stub->content_type = out.result->content_type;
      out.result = std::move(stub);
    }
  }
  return page;
}

ErrorOr<std::size_t> MemoryStore::RemoveFinishedBefore(UnixMillis cutoff) {
  MutexLock lock(&mu_);
  std::size_t removed = 0;
  while (!finished_.empty() && finished_.begin()->first < cutoff) {
    auto node = by_seq_.find(finished_.begin()->second);
    finished_.erase(finished_.begin());
    if (node == by_seq_.end()) continue;
    node_of_.erase(node->second.id);
    by_seq_.erase(node);
    ++removed;
  }
  return removed;
}

ErrorOr<std::vector<std::string>> MemoryStore::FinishedWithFilesBefore(UnixMillis cutoff) {
  MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (auto it = finished_.begin(); it != finished_.end() && it->first < cutoff; ++it) {
    auto node = by_seq_.find(it->second);
    if (node == by_seq_.end()) continue;
    const JobRecord& job = node->second;
    if (!job.files.empty() || (job.result && job.result->file)) out.push_back(job.id);
  }
  return out;
}

ErrorOr<std::vector<JobRecord>> MemoryStore::LoadUnfinished() {
  MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  for (const auto& [seq, job] : by_seq_) {
    if (!IsFinished(job.status)) out.push_back(job);
  }
  return out;
}

ErrorOr<std::uint64_t> MemoryStore::MaxSeq() {
  MutexLock lock(&mu_);
  return by_seq_.empty() ? 0 : by_seq_.rbegin()->first;
}

ErrorOr<std::vector<IdempotencyEntry>> MemoryStore::LoadIdempotencyKeys(UnixMillis since) {
  MutexLock lock(&mu_);
  std::vector<IdempotencyEntry> out;
  for (const auto& [seq, job] : by_seq_) {
    if (!job.idempotency_key.empty() && job.created_at >= since) {
      out.push_back(
          IdempotencyEntry{job.task, job.tenant, job.idempotency_key, job.id, job.request_hash, job.created_at});
    }
  }
  return out;
}

}  // namespace offload
