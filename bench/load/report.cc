#include "report.h"

#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace offload::bench {

namespace json = boost::json;

namespace {

// Three significant decimals below 1, fewer above: latencies in ms and rates in /s
// both read well.
double Round(double v) {
  const double a = std::fabs(v);
  const double scale = a >= 1000 ? 1 : a >= 10 ? 100 : 1000;
  return std::round(v * scale) / scale;
}

}  // namespace

void AddLatencies(json::object* report, const std::string& prefix, const LatencyHistogram& h, bool with_p90) {
  (*report)[prefix + "_mean_ms"] = Round(h.MeanMs());
  (*report)[prefix + "_p50_ms"] = Round(h.PercentileMs(0.50));
  if (with_p90) (*report)[prefix + "_p90_ms"] = Round(h.PercentileMs(0.90));
  (*report)[prefix + "_p99_ms"] = Round(h.PercentileMs(0.99));
  (*report)[prefix + "_max_ms"] = Round(h.MaxMs());
}

void PrintReport(const std::string& title, const json::object& report, bool as_json) {
  if (as_json) {
    json::object out = report;
    out["command"] = title;
    std::cout << json::serialize(out) << std::endl;
    return;
  }
  std::cout << title << "\n";
  for (const auto& [key, value] : report) {
    std::string text;
    if (value.is_double()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.10g", Round(value.get_double()));
      text = buf;
    } else if (value.is_string()) {
      text = std::string(value.get_string());
    } else {
      text = json::serialize(value);
    }
    std::printf("  %-24s %s\n", std::string(key).c_str(), text.c_str());
  }
  std::fflush(stdout);
}

}  // namespace offload::bench
