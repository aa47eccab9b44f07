#include "metrics/histogram.h"

#include <algorithm>
#include <cassert>

namespace offload {

void Histogram::Observe(double value) {
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[static_cast<std::size_t>(bucket)];
  sum_ += value;
  ++count_;
}

void Histogram::Merge(const Histogram& other) {
  assert(other.bounds_.data() == bounds_.data() ||
         std::equal(bounds_.begin(), bounds_.end(), other.bounds_.begin(), other.bounds_.end()));
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  sum_ += other.sum_;
  count_ += other.count_;
}

}  // namespace offload
