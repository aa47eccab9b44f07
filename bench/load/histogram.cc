#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace offload::bench {

int LatencyHistogram::IndexOf(std::uint64_t v) {
  if (v < kSub) return static_cast<int>(v);
  const int shift = (63 - std::countl_zero(v)) - kSubBits;  // >= 0
  const std::uint64_t sub = v >> shift;                     // in [kSub, 2 * kSub)
  return (shift + 1) * kSub + static_cast<int>(sub - kSub);
}

double LatencyHistogram::MidpointOf(int index) {
  if (index < kSub) return index;
  const int shift = index / kSub - 1;
  const double low = static_cast<double>((static_cast<std::uint64_t>(index % kSub) + kSub) << shift);
  return low + static_cast<double>((std::uint64_t{1} << shift) - 1) / 2.0;
}

void LatencyHistogram::Record(std::int64_t ns) {
  if (ns < 0) ns = 0;
  ++counts_[IndexOf(static_cast<std::uint64_t>(ns))];
  ++count_;
  max_ns_ = std::max(max_ns_, ns);
  sum_ns_ += ns;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ns_ = std::max(max_ns_, other.max_ns_);
  sum_ns_ += other.sum_ns_;
}

double LatencyHistogram::MeanMs() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_ns_ / count_) / 1e6; }

double LatencyHistogram::PercentileMs(double q) const {
  if (count_ == 0) return 0.0;
  const auto rank =
      static_cast<std::uint64_t>(std::max(1.0, std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(MidpointOf(i), static_cast<double>(max_ns_)) / 1e6;
  }
  return MaxMs();
}

}  // namespace offload::bench
