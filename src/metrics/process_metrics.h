// The process_* series every Prometheus client library exports (CPU, memory, open
// files, start time), read from /proc/self at each scrape. Absent where /proc is.
#pragma once

#include "metrics/metrics_text.h"

namespace offload {

void WriteProcessMetrics(MetricsText* out);

}  // namespace offload
