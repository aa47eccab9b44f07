// Histogram: counts of observed values by bucket, for the Prometheus exposition
// (metrics_text.h). Buckets are upper bounds, inclusive, as Prometheus's `le`; one
// more bucket above the last bound takes the rest (+Inf).
//
// Not thread-safe: its owner keeps it under its own lock (JobService's mutex, one
// lock per HTTP I/O thread), so an observation costs a search of a few bounds and
// two additions, with no atomic operation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace offload {

class Histogram {
 public:
  // `bounds` ascending, with static storage: every histogram of a family shares them.
  explicit Histogram(std::span<const double> bounds) : bounds_(bounds), counts_(bounds.size() + 1, 0) {}

  void Observe(double value);
  // Adds `other`'s observations. REQUIRES: the same bounds.
  void Merge(const Histogram& other);

  std::span<const double> bounds() const { return bounds_; }
  // Per bucket, not cumulative: counts()[i] observations were <= bounds()[i] and above
  // the bound before; the last is those above every bound.
  const std::vector<std::uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  std::uint64_t count() const { return count_; }

 private:
  std::span<const double> bounds_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace offload
