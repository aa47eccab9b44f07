// Report: the figures of one run, printed for a person or, with --json, as one JSON
// object that bench/run.sh collects.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "histogram.h"

namespace offload::bench {

// Adds latency_{mean,p50,p90,p99,max}_ms of `h` under `prefix` (e.g. "latency").
void AddLatencies(boost::json::object* report, const std::string& prefix, const LatencyHistogram& h, bool with_p90);

// Human form: one "name  value" line per field, in insertion order.
void PrintReport(const std::string& title, const boost::json::object& report, bool as_json);

}  // namespace offload::bench
