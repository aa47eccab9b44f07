#include "metrics/metrics_text.h"

#include <gtest/gtest.h>

#include <array>
#include <limits>

namespace offload {
namespace {

constexpr std::array<double, 3> kBounds = {0.5, 1, 2.5};

TEST(MetricsTextTest, FamilyWritesHelpAndTypeWithHelpEscaped) {
  MetricsText out;
  out.Family("offload_x_total", MetricType::kCounter, "Jobs\\done\nhere \"quoted\"");
  EXPECT_EQ(out.text(), "# HELP offload_x_total Jobs\\\\done\\nhere \"quoted\"\n# TYPE offload_x_total counter\n");
}

TEST(MetricsTextTest, LabelValuesEscapeBackslashQuoteAndNewline) {
  MetricsText out;
  out.Sample("m", {{"task", "a\"b\\c\nd"}, {"status", "ok"}}, std::uint64_t{7});
  EXPECT_EQ(out.text(), "m{task=\"a\\\"b\\\\c\\nd\",status=\"ok\"} 7\n");
}

TEST(MetricsTextTest, NumbersAreWhatPrometheusParses) {
  MetricsText out;
  out.Sample("a", {}, 0.25);
  out.Sample("b", {}, std::numeric_limits<double>::infinity());
  out.Sample("c", {}, std::numeric_limits<double>::quiet_NaN());
  out.Sample("d", {}, std::int64_t{-3});
  out.Sample("e", {}, 1e-5);
  EXPECT_EQ(out.text(), "a 0.25\nb +Inf\nc NaN\nd -3\ne 1e-05\n");
}

TEST(MetricsTextTest, HistogramBucketsAreCumulativeAndEndWithInf) {
  Histogram h(kBounds);
  for (double v : {0.1, 0.5, 0.7, 3.0, 10.0}) h.Observe(v);
  MetricsText out;
  out.Samples("d_seconds", {{"task", "t"}}, h);
  EXPECT_EQ(out.text(),
            "d_seconds_bucket{task=\"t\",le=\"0.5\"} 2\n"
            "d_seconds_bucket{task=\"t\",le=\"1\"} 3\n"
            "d_seconds_bucket{task=\"t\",le=\"2.5\"} 3\n"
            "d_seconds_bucket{task=\"t\",le=\"+Inf\"} 5\n"
            "d_seconds_sum{task=\"t\"} 14.3\n"
            "d_seconds_count{task=\"t\"} 5\n");
}

TEST(HistogramTest, MergeAddsBucketsSumAndCount) {
  Histogram a(kBounds), b(kBounds);
  a.Observe(0.2);
  b.Observe(2);
  b.Observe(9);
  a.Merge(b);
  EXPECT_EQ(a.counts(), (std::vector<std::uint64_t>{1, 0, 1, 1}));
  EXPECT_EQ(a.count(), 3u);
  EXPECT_DOUBLE_EQ(a.sum(), 11.2);
}

}  // namespace
}  // namespace offload
