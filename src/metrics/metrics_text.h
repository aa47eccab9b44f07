// MetricsText: writes the Prometheus text exposition format (version 0.0.4), the
// body of GET /metrics. Each subsystem writes its own families into one MetricsText;
// this class knows the format — HELP and TYPE lines, label escaping, histogram
// series, number formatting — and nothing of what is measured.
//
// Not thread-safe: one per scrape.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "metrics/histogram.h"

namespace offload {

enum class MetricType { kCounter, kGauge, kHistogram };

struct MetricLabel {
  std::string_view name;
  std::string_view value;
};
using MetricLabels = std::initializer_list<MetricLabel>;

class MetricsText {
 public:
  // The Content-Type of the body.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts family `name` (a counter's name ends in _total): its HELP and TYPE lines.
  // Its samples follow, before the next family starts. A family is written once.
  void Family(std::string_view name, MetricType type, std::string_view help);
  // A sample of a counter or gauge family. `name` is the family's.
  void Sample(std::string_view name, MetricLabels labels, double value);
  void Sample(std::string_view name, MetricLabels labels, std::int64_t value);
  void Sample(std::string_view name, MetricLabels labels, std::uint64_t value);
  // The series of one histogram of family `name`: its cumulative _bucket series (le
  // added to `labels`), _sum and _count.
  void Samples(std::string_view name, MetricLabels labels, const Histogram& histogram);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  // name{labels[,le="..."]} then a space; the value follows.
  void BeginSample(std::string_view name, std::string_view suffix, MetricLabels labels,
                   std::string_view le = std::string_view());

  std::string out_;
};

}  // namespace offload
