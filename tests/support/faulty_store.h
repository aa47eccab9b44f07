// FaultyStore: a Store that refuses writes when told to, as a full or failing disk
// would (LevelDB's SpecialEnv, Beast's fail_count), and passes everything else to a
// real store. Tests use it to prove that a refused write loses nothing.
//
// Thread-safe: the switches are atomics or under mu_, the wrapped store is
// thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload::testing {

class FaultyStore final : public Store {
 public:
  // `blocking` picks the StoreQueue the service makes: a ThreadedStoreQueue, with a
  // writer thread and batches (as for SQLite), or an InlineStoreQueue, which applies
  // writes at once (as for the memory store).
  FaultyStore(std::unique_ptr<Store> inner, bool blocking) : inner_(std::move(inner)), blocking_(blocking) {}

  // Every batch that writes a finished state (succeeded, failed, canceled) fails
  // while on; inserts and other updates still succeed, so that submits go on.
  void FailFinalWrites(bool on) { fail_finals_.store(on); }
  // Batches number `first` .. first + count - 1 (1-based, counting every Apply since
  // construction) fail, whatever they hold.
  void FailWrites(std::uint64_t first, std::uint64_t count) {
    fail_first_.store(first);
    fail_count_.store(count);
  }
  // Every batch with an insert of tenant `name` under its max_queued fails as
  // PostgreSQL's quota count fails it (TenantQueuedError); "" for none.
  void RefuseTenant(std::string name) {
    MutexLock lock(&mu_);
    refused_tenant_ = std::move(name);
  }
  std::uint64_t writes() const { return writes_.load(); }
  std::uint64_t refused() const { return refused_.load(); }
  Store& inner() { return *inner_; }

  Status Apply(const std::vector<StoreOp>& ops) override {
    const std::uint64_t n = ++writes_;
    bool fail = n >= fail_first_.load() && n - fail_first_.load() < fail_count_.load();
    if (!fail && fail_finals_.load()) {
      for (const StoreOp& op : ops) fail = fail || IsFinished(op.job.status);
    }
    if (fail) {
      ++refused_;
      return MakeError(ErrorCode::kUnavailable, "database or disk is full (injected by FaultyStore)");
    }
    {
      MutexLock lock(&mu_);
      for (const StoreOp& op : ops) {
        if (op.kind == StoreOp::Kind::kInsert && op.tenant_max_queued > 0 && !refused_tenant_.empty() &&
            op.job.tenant == refused_tenant_) {
          ++refused_;
          return TenantQueuedError(op.job.tenant, op.tenant_max_queued);
        }
      }
    }
    return inner_->Apply(ops);
  }
  ErrorOr<std::optional<JobRecord>> Get(const std::string& id) override { return inner_->Get(id); }
  ErrorOr<JobPage> List(const JobQuery& query) override { return inner_->List(query); }
  ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) override { return inner_->RemoveFinishedBefore(cutoff); }
  ErrorOr<std::vector<std::string>> FinishedWithFilesBefore(UnixMillis cutoff) override {
    return inner_->FinishedWithFilesBefore(cutoff);
  }
  ErrorOr<std::vector<JobRecord>> LoadUnfinished() override { return inner_->LoadUnfinished(); }
  ErrorOr<std::uint64_t> MaxSeq() override { return inner_->MaxSeq(); }
  ErrorOr<std::vector<IdempotencyEntry>> LoadIdempotencyKeys(UnixMillis since) override {
    return inner_->LoadIdempotencyKeys(since);
  }
  bool blocking() const override { return blocking_; }
  bool durable() const override { return inner_->durable(); }

 private:
  std::unique_ptr<Store> inner_;
  const bool blocking_;
  std::atomic<bool> fail_finals_{false};
  std::atomic<std::uint64_t> fail_first_{0};
  std::atomic<std::uint64_t> fail_count_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> refused_{0};
  Mutex mu_;
  std::string refused_tenant_ GUARDED_BY(mu_);
};

}  // namespace offload::testing
