#include "store/store_queue.h"

#include <spdlog/spdlog.h>

#include <string>
#include <unordered_map>
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
  if (!threaded_) {
    std::lock_guard lock(mu_);
    one_op_.clear();
    one_op_.push_back(std::move(op));
    Status result = store_->Apply(one_op_);
    if (!result && !done) {
      spdlog::error("store: write of job {} failed: {}", one_op_[0].job.id, result.error().detail);
    }
    if (done) applied_calls_.push_back(Applied{std::move(done), std::move(result)});
    ++queued_;
    ++applied_;
    return;
  }
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Pending{std::move(op), std::move(done)});
    ++queued_;
  }
  work_cv_.notify_one();
}

void StoreQueue::Drain() {
  if (threaded_) return;
  {
    std::lock_guard lock(mu_);
    if (draining_) return;  // The thread draining runs the callbacks queued meanwhile.
    draining_ = true;
  }
  std::deque<Applied> calls;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (applied_calls_.empty()) {
        draining_ = false;
        return;
      }
      calls.swap(applied_calls_);
    }
    for (Applied& c : calls) c.done(std::move(c.result));
    calls.clear();
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
  // Every write carries the job's whole record, and a batch is applied in one
  // transaction: of several writes of one job in a batch only the last state needs
  // writing, at the place of the first (an insert stays an insert). A job that starts
  // and ends while the previous batch syncs is written once, not twice.
  std::vector<StoreOp> ops;
  ops.reserve(batch->size());
  std::vector<std::size_t> op_of(batch->size());
  std::unordered_map<std::string, std::size_t> op_of_id;
  op_of_id.reserve(batch->size());
  for (std::size_t i = 0; i < batch->size(); ++i) {
    StoreOp& op = (*batch)[i].op;
    auto [it, fresh] = op_of_id.try_emplace(op.job.id, ops.size());
    if (!fresh && op.kind == StoreOp::Kind::kUpdate) {
      ops[it->second].job = std::move(op.job);
    } else {
      it->second = ops.size();  // A second insert of an id stays apart: it must fail.
      ops.push_back(std::move(op));
    }
    op_of[i] = it->second;
  }
  auto finish = [&ops](Pending& p, std::size_t op, const Status& r) {
    if (p.done) p.done(r);
    else if (!r) spdlog::error("store: write of job {} failed: {}", ops[op].job.id, r.error().detail);
  };
  Status result = store_->Apply(ops);
  if (result || ops.size() == 1) {
    for (std::size_t i = 0; i < batch->size(); ++i) finish((*batch)[i], op_of[i], result);
  } else {
    // One op was wrong (a duplicate id, say), or did not fit (a large result on a
    // nearly full disk): apply them one by one so that only the ops at fault fail,
    // and a submit is not refused for another job's result.
    // A full disk fails batch after batch: one line per 10 s says so.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_batch_warning_ >= std::chrono::seconds(10)) {
      last_batch_warning_ = now;
      spdlog::warn("store: a batch of {} writes failed ({}); applying them one by one", ops.size(),
                   result.error().detail);
    }
    std::vector<Status> results;
    results.reserve(ops.size());
    for (const StoreOp& op : ops) results.push_back(store_->Apply({op}));
    for (std::size_t i = 0; i < batch->size(); ++i) finish((*batch)[i], op_of[i], results[op_of[i]]);
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
