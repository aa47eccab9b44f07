#include "store/threaded_store_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "util/thread_pool.h"

namespace offload {

ThreadedStoreQueue::ThreadedStoreQueue(Store* store)
    : store_(store), readers_(std::make_unique<ThreadPool>(2, /*nice_increment=*/0)) {
  const std::size_t n = std::max<std::size_t>(1, store->writers());
  for (std::size_t i = 0; i < n; ++i) writers_.push_back(std::make_unique<Writer>());
  for (auto& w : writers_) w->thread = std::thread([this, w = w.get()] { WriterLoop(w); });
}

ThreadedStoreQueue::~ThreadedStoreQueue() {
  {
    // Every write queued, and those that their callbacks queue (maybe to another
    // writer) meanwhile.
    MutexLock lock(&outstanding_mu_);
    while (outstanding_ > 0) drained_cv_.Wait(&outstanding_mu_);
  }
  for (auto& w : writers_) {
    {
      MutexLock lock(&w->mu);
      w->stopping = true;
    }
    w->work_cv.SignalAll();
  }
  for (auto& w : writers_) w->thread.join();
  readers_.reset();  // Runs the reads queued, then joins.
}

void ThreadedStoreQueue::Write(StoreOp op, WriteDone done) {
  Writer& w = *writers_[writers_.size() == 1 ? 0 : std::hash<std::string>{}(op.job.id) % writers_.size()];
  {
    MutexLock lock(&outstanding_mu_);
    ++outstanding_;
  }
  {
    MutexLock lock(&w.mu);
    w.queue.push_back(Pending{std::move(op), std::move(done)});
    ++w.queued;
  }
  w.work_cv.Signal();
}

void ThreadedStoreQueue::Read(std::function<void()> fn) { readers_->Submit(std::move(fn)); }

StoreWriteStats ThreadedStoreQueue::write_stats() const {
  MutexLock lock(&stats_mu_);
  return stats_;
}

void ThreadedStoreQueue::WaitForWrites() {
  for (auto& w : writers_) {
    MutexLock lock(&w->mu);
    const std::uint64_t target = w->queued;
    while (w->finished < target) w->finished_cv.Wait(&w->mu);
  }
}

void ThreadedStoreQueue::WriterLoop(Writer* w) {
  std::vector<Pending> batch;
  for (;;) {
    {
      MutexLock lock(&w->mu);
      while (!w->stopping && w->queue.empty()) w->work_cv.Wait(&w->mu);
      if (w->queue.empty()) return;  // Stopping, and everything is applied.
      while (!w->queue.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(w->queue.front()));
        w->queue.pop_front();
      }
    }
    ApplyBatch(w, &batch);
    bool idle;
    {
      MutexLock lock(&w->mu);
      idle = w->queue.empty();
    }
    if (idle) store_->OnIdle();
  }
}

std::vector<Status> ThreadedStoreQueue::ApplyOneByOne(Writer* w, const std::vector<StoreOp>& ops, const Error& why) {
  // A full disk fails batch after batch: one line per 10 s says so.
  const auto now = std::chrono::steady_clock::now();
  if (now - w->last_batch_warning >= std::chrono::seconds(10)) {
    w->last_batch_warning = now;
    spdlog::warn("store: a batch of {} writes failed ({}); applying them one by one", ops.size(), why.detail);
  }
  std::vector<Status> results;
  results.reserve(ops.size());
  for (const StoreOp& op : ops) results.push_back(store_->Apply({op}));
  return results;
}

std::vector<Status> ThreadedStoreQueue::ApplyAroundQuotas(Writer* w, const std::vector<StoreOp>& ops) {
  std::unordered_set<std::string> counted;  // The jobs of inserts under a quota.
  for (const StoreOp& op : ops) {
    if (op.kind == StoreOp::Kind::kInsert && op.tenant_max_queued > 0) counted.insert(op.job.id);
  }
  std::vector<Status> results(ops.size());
  std::vector<StoreOp> rest;
  std::vector<std::size_t> rest_of;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (counted.count(ops[i].job.id)) continue;
    rest.push_back(ops[i]);
    rest_of.push_back(i);
  }
  // The rest first: its starts of the tenant's jobs make room for its inserts.
  if (!rest.empty()) {
    const Status together = store_->Apply(rest);
    const std::vector<Status> each = together || rest.size() == 1 ? std::vector<Status>(rest.size(), together)
                                                                  : ApplyOneByOne(w, rest, together.error());
    for (std::size_t k = 0; k < rest.size(); ++k) results[rest_of[k]] = each[k];
  }
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (counted.count(ops[i].job.id)) results[i] = store_->Apply({ops[i]});
  }
  return results;
}

void ThreadedStoreQueue::ApplyBatch(Writer* w, std::vector<Pending>* batch) {
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
    // (Writes under different claims of a job stay apart: each is fenced by its own.)
    if (!fresh && op.kind == StoreOp::Kind::kUpdate && ops[it->second].claimant == op.claimant) {
      ops[it->second].job = std::move(op.job);
    } else {
      it->second = ops.size();  // A second insert of an id stays apart: it must fail.
      ops.push_back(std::move(op));
    }
    op_of[i] = it->second;
  }
  auto finish = [&ops](Pending& p, std::size_t op, const Status& r) {
    if (p.done)
      p.done(r);
    else if (!r)
      spdlog::error("store: write of job {} failed: {}", ops[op].job.id, r.error().detail);
  };
  const auto began = std::chrono::steady_clock::now();
  Status result = store_->Apply(ops);
  {
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - began;
    MutexLock lock(&stats_mu_);
    stats_.batch_size.Observe(static_cast<double>(ops.size()));
    stats_.batch_seconds.Observe(took.count());
    if (!result) ++stats_.failed_batches;
  }
  if (result || ops.size() == 1) {
    for (std::size_t i = 0; i < batch->size(); ++i) finish((*batch)[i], op_of[i], result);
  } else {
    const std::vector<Status> results = result.error().code == ErrorCode::kQuotaExceeded
                                            ? ApplyAroundQuotas(w, ops)
                                            : ApplyOneByOne(w, ops, result.error());
    for (std::size_t i = 0; i < batch->size(); ++i) finish((*batch)[i], op_of[i], results[op_of[i]]);
  }
  const std::size_t n = batch->size();
  batch->clear();
  {
    MutexLock lock(&w->mu);
    w->finished += n;
  }
  w->finished_cv.SignalAll();
  MutexLock lock(&outstanding_mu_);
  outstanding_ -= n;
  if (outstanding_ == 0) drained_cv_.SignalAll();
}

}  // namespace offload
