// HttpMetrics: what GET /metrics shows of the HTTP front — requests by route, method
// and status code, their latency by route, connections opened, open and refused.
//
// Thread-safe. One shard per I/O thread: a session records into the shard of the
// thread it lives on, under that shard's mutex, which only that thread and a scrape
// ever take, so recording a request never waits on another I/O thread.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metrics/histogram.h"
#include "metrics/metrics_text.h"
#include "util/mutex.h"

namespace offload {

class HttpMetrics {
 public:
  // The route templates, the `route` label: an id never becomes a label value.
  static constexpr std::string_view kRoutes[] = {
      "/v1/jobs",
      "/v1/jobs/{id}",
      "/v1/jobs/{id}/result",
      "/v1/jobs/{id}/events",
      "/v1/events",
      "/v1/tasks",
      "/v1/tasks/{name}/run",
      "/v1/resources",
      "/healthz",
      "/metrics",
      "/v1/jobs/{id}/retry",
      "/v1/jobs/cancel",
      "/ui",
      "/openapi.json",
      "/docs",
      "other",
  };
  static constexpr int kRouteCount = static_cast<int>(std::size(kRoutes));
  // The index in kRoutes of the route of request target `target` (a path, maybe
  // with a query); that of "other" for a path no route serves.
  static int RouteOf(std::string_view target);

  // `shards`: the I/O threads. Records into shard `shard % shards`.
  explicit HttpMetrics(unsigned shards);

  // A response is ready: `route` from RouteOf, `seconds` since the request's header was read.
  void CountRequest(unsigned shard, int route, boost::beast::http::verb method, unsigned code, double seconds);
  void ConnectionOpened(unsigned shard);
  void ConnectionClosed(unsigned shard);
  // Refused at max_connections (a fixed 503, no session).
  void ConnectionRefused(unsigned shard);

  void Write(MetricsText* out) const;

 private:
  struct Shard {
    Shard();
    mutable Mutex mu;
    // Key: route << 24 | method << 12 | code.
    std::unordered_map<std::uint32_t, std::uint64_t> requests GUARDED_BY(mu);
    std::vector<Histogram> latency GUARDED_BY(mu);  // By route.
    std::uint64_t opened GUARDED_BY(mu) = 0;
    std::uint64_t closed GUARDED_BY(mu) = 0;
    std::uint64_t refused GUARDED_BY(mu) = 0;
  };
  Shard& shard(unsigned i) const { return *shards_[i % shards_.size()]; }

  std::vector<std::unique_ptr<Shard>> shards_;  // Constant after construction.
};

}  // namespace offload
