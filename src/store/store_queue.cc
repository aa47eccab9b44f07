#include "store/store_queue.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace offload {
namespace {

// A batch larger than this is split: it bounds the latency of the first write in it.
constexpr std::size_t kMaxBatch = 4096;

}  // namespace

StoreQueue::StoreQueue(Store* store) : store_(store), threaded_(store->blocking()) {
  if (threaded_) {
    readers_ = std::make_unique<ThreadPool>(2, /*nice_increment=*/0);
    writer_ = std::thread([this] { WriterLoop(); });
  }
}

StoreQueue::~StoreQueue() {
  if (!threaded_) {
    Drain();
    return;
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  writer_.join();
  readers_.reset();
}

void StoreQueue::Write(StoreOp op, WriteDone done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Pending{std::move(op), std::move(done)});
    ++queued_;
  }
  if (threaded_) work_cv_.notify_one();
}

void StoreQueue::Drain() {
  if (threaded_) return;
  {
    std::unique_lock lock(mu_);
    // Called from a callback of this thread's own Drain: the outer loop applies it.
    if (draining_ && drainer_ == std::this_thread::get_id()) return;
    // Another thread is draining: wait for it, so that when Drain returns the
    // caller's writes are applied (it may read them back at once).
    flushed_cv_.wait(lock, [this] { return !draining_; });
    draining_ = true;
    drainer_ = std::this_thread::get_id();
  }
  std::vector<Pending> batch;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) {
        draining_ = false;
        drainer_ = {};
        flushed_cv_.notify_all();
        return;
      }
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ApplyBatch(&batch);
  }
}

void StoreQueue::Read(std::function<void()> fn) {
  if (!threaded_) return fn();
  readers_->Submit(std::move(fn));
}

void StoreQueue::Flush() {
  if (!threaded_) return Drain();
  std::unique_lock lock(mu_);
  const std::uint64_t target = queued_;
  flushed_cv_.wait(lock, [&] { return applied_ >= target; });
}

void StoreQueue::WriterLoop() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping_, and everything is applied.
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ApplyBatch(&batch);
  }
}

void StoreQueue::ApplyBatch(std::vector<Pending>* batch) {
  std::vector<StoreOp> ops;
  ops.reserve(batch->size());
  for (const Pending& p : *batch) ops.push_back(p.op);
  auto finish = [](Pending& p, ErrorOr<bool> r) {
    if (p.done) p.done(std::move(r));
    else if (!r) spdlog::error("store: write of job {} failed: {}", p.op.job.id, r.error().detail);
  };
  ErrorOr<bool> result = store_->Apply(ops);
  if (result || result.error().code == ErrorCode::kUnavailable) {
    if (!result) spdlog::error("store: a batch of {} writes failed: {}", batch->size(), result.error().detail);
    for (Pending& p : *batch) finish(p, result);
  } else {
    // One op was wrong (a duplicate id, say): apply them one by one so that only
    // that one fails.
    for (Pending& p : *batch) finish(p, store_->Apply({p.op}));
  }
  const std::size_t n = batch->size();
  batch->clear();
  {
    std::lock_guard lock(mu_);
    applied_ += n;
  }
  flushed_cv_.notify_all();
}

}  // namespace offload
