#include "service/map_run.h"

#include <algorithm>
#include <string>
#include <utility>

#include "offload/error_types.h"

namespace offload {

MapRun::MapRun(std::size_t total, const MapSpec& spec, std::size_t parallelism)
    : total_(total), spec_(spec), parallelism_(std::max<std::size_t>(parallelism, 1)), results_(total) {}

void MapRun::CostFit::Add(std::size_t size, double ns) {
  const double x = static_cast<double>(size);
  n = n * kDecay + 1;
  k = k * kDecay + x;
  t = t * kDecay + ns;
  kk = kk * kDecay + x * x;
  kt = kt * kDecay + x * ns;
  largest = std::max(largest, size);
  // Sizes too alike leave the two costs indistinguishable: keep the last fixed cost.
  const double det = n * kk - k * k;
  if (det > 1e-6 * n * kk) {
    const double per = (n * kt - k * t) / det;
    if (per > 0) fixed_ns = std::clamp((t - per * k) / n, 0.0, t / n);
  }
}

std::pair<double, double> MapRun::CostFit::Estimate() const {
  // Per element: what is left of the average chunk once the fixed cost is taken out.
  const double per = std::max((t - fixed_ns * n) / k, 1e-3);
  return {per, fixed_ns};
}

std::size_t MapRun::ChunkSize(std::chrono::nanoseconds target_time) const {
  if (spec_.chunk > 0) return static_cast<std::size_t>(spec_.chunk);
  if (cost_.largest == 0) return 1;  // Measure first.
  const auto [per, fixed] = cost_.Estimate();
  const double target =
      std::max(std::chrono::duration<double, std::nano>(target_time).count(), kFixedCostShare * fixed);
  const double fit = std::max(target - fixed, per) / per;
  std::size_t size = fit >= static_cast<double>(kMaxChunk) ? kMaxChunk : static_cast<std::size_t>(fit);
  size = std::min(size, kMaxGrowth * cost_.largest);
  // At the tail, leave some for every slot rather than one long last chunk.
  const std::size_t share = std::max<std::size_t>(1, remaining() / (2 * parallelism_));
  return std::clamp<std::size_t>(std::min(size, share), 1, kMaxChunk);
}

std::chrono::nanoseconds MapRun::ChunkTime(std::size_t size) const {
  const auto [per, fixed] = cost_.Estimate();
  return std::chrono::nanoseconds(static_cast<std::int64_t>(fixed + per * static_cast<double>(size)));
}

MapRun::Chunk MapRun::TakeChunk(std::chrono::nanoseconds target) {
  Chunk chunk;
  const std::size_t size = ChunkSize(target);
  while (chunk.indices.size() < size && !again_.empty()) {
    chunk.indices.push_back(again_.front());
    again_.pop_front();
  }
  while (chunk.indices.size() < size && next_ < total_) chunk.indices.push_back(next_++);
  if (!failed_attempts_.empty()) {
    bool retried = false;
    for (std::size_t index : chunk.indices) {
      auto it = failed_attempts_.find(index);
      chunk.attempts.push_back(it == failed_attempts_.end() ? 1 : it->second + 1);
      retried = retried || chunk.attempts.back() != 1;
    }
    if (!retried) chunk.attempts.clear();  // Empty when every one is a first attempt.
  }
  running_ += chunk.indices.size();
  return chunk;
}

MapRun::Folded MapRun::Fold(const Chunk& chunk, ChunkOutcome outcome, std::chrono::milliseconds timeout, int retries,
                            bool may_retry) {
  Folded folded;
  running_ -= chunk.indices.size();
  BatchOutcome& batch = outcome.batch;
  const std::size_t ran = std::min(batch.ran(), chunk.indices.size());
  if (ran > 0) cost_.Add(ran, static_cast<double>(outcome.elapsed.count()));
  auto next_error = batch.errors.begin();
  for (std::size_t i = 0; i < chunk.indices.size() && !stopping_; ++i) {
    const std::size_t index = chunk.indices[i];
    if (i >= ran) {
      again_.push_back(index);  // The chunk stopped before it: it goes out again.
      continue;
    }
    while (next_error != batch.errors.end() && next_error->first < i) ++next_error;
    if (next_error == batch.errors.end() || next_error->first != i) {
      results_[index] = spec_.collect ? boost::json::value(boost::json::object{{"ok", std::move(batch.values[i])}})
                                      : std::move(batch.values[i]);
      ++done_;
      continue;
    }
    JobError failure = std::move(next_error->second);
    if (outcome.stop == StopReason::kTimeout && i + 1 == ran) {
      failure = JobError{error_type::kTimeout,
                         "the element ran longer than its timeout of " + std::to_string(timeout.count()) + " ms"};
    }
    const int failed_attempts = ++failed_attempts_[index];
    if (failure.type != error_type::kInvalidInput && may_retry && failed_attempts <= retries) {
      folded.retries.emplace_back(index, failed_attempts);
      continue;
    }
    ++done_;
    ++failed_;
    if (spec_.collect) {
      boost::json::object error{{"type", failure.type}, {"message", failure.message}};
      if (!failure.detail.empty()) error["detail"] = failure.detail;
      results_[index] = boost::json::object{{"error", std::move(error)}};
      continue;
    }
    folded.failure =
        JobError{failure.type,
                 "element " + std::to_string(index) + " of " + std::to_string(total_) + " failed: " + failure.message,
                 failure.detail};
    folded.failed_index = static_cast<std::int64_t>(index);
    Stop();
  }
  return folded;
}

void MapRun::Retry(std::size_t index) {
  if (!stopping_) again_.push_back(index);
}

void MapRun::Stop() {
  stopping_ = true;
  again_.clear();
}

}  // namespace offload
