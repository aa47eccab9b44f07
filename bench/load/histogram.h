// LatencyHistogram: a fixed-size log-linear histogram of durations in nanoseconds.
//
// 128 sub-buckets per power of two keep every reported percentile within 1% of the
// true value while the memory stays fixed (about 60 KiB) however long a run lasts,
// so recording never allocates and a 10-minute run costs what a 1-second run does.
// The maximum is kept exactly.
//
// Not thread-safe: each load thread records into its own and Merge()s at the end.
#pragma once

#include <array>
#include <cstdint>

namespace offload::bench {

class LatencyHistogram {
 public:
  void Record(std::int64_t ns);
  void Merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  // Milliseconds. 0 when empty.
  double MaxMs() const { return static_cast<double>(max_ns_) / 1e6; }
  double MeanMs() const;
  // The value below which a fraction q (0..1) of the samples fall, in milliseconds.
  double PercentileMs(double q) const;

 private:
  static constexpr int kSubBits = 7;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;

  static int IndexOf(std::uint64_t v);
  static double MidpointOf(int index);

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::int64_t max_ns_ = 0;
  long double sum_ns_ = 0;
};

}  // namespace offload::bench
