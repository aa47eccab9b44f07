#include "http/http_metrics.h"

#include <array>
#include <map>

namespace offload {

namespace http = boost::beast::http;

namespace {

// From a cached GET (tens of microseconds) to a long poll (?wait=30).
constexpr std::array<double, 14> kRequestSeconds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                    0.025,  0.05,    0.1,    0.25,  1,      5,     30};

enum Route {
  kJobs,
  kJob,
  kJobResult,
  kJobEvents,
  kEvents,
  kTasks,
  kTaskRun,
  kResources,
  kHealthz,
  kMetrics,
  kJobRetry,
  kJobsCancel,
  kUi,
  kOpenApi,
  kDocs,
  kOther
};
// In the order of HttpMetrics::kRoutes.
static_assert(kOther == HttpMetrics::kRouteCount - 1);

// The next segment of `path` (which starts with '/'), removed from it.
std::string_view TakeSegment(std::string_view* path) {
  if (path->empty() || path->front() != '/') return {};
  path->remove_prefix(1);
  const std::size_t end = path->find('/');
  std::string_view seg = path->substr(0, end);
  path->remove_prefix(end == std::string_view::npos ? path->size() : end);
  return seg;
}

}  // namespace

int HttpMetrics::RouteOf(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view segs[5];
  int n = 0;
  while (!path.empty() && n < 5) segs[n++] = TakeSegment(&path);
  if (!path.empty()) return kOther;
  if (n == 1 && segs[0] == "healthz") return kHealthz;
  if (n == 1 && segs[0] == "metrics") return kMetrics;
  if (n >= 1 && segs[0] == "ui") return n <= 2 ? kUi : kOther;
  if (n >= 1 && segs[0] == "docs") return n <= 2 ? kDocs : kOther;
  if (n == 1 && segs[0] == "openapi.json") return kOpenApi;
  if (n < 2 || segs[0] != "v1") return kOther;
  if (segs[1] == "jobs") {
    if (n == 2) return kJobs;
    if (n == 3) return segs[2] == "cancel" ? kJobsCancel : kJob;
    if (n == 4 && segs[3] == "result") return kJobResult;
    if (n == 4 && segs[3] == "events") return kJobEvents;
    if (n == 4 && segs[3] == "retry") return kJobRetry;
    return kOther;
  }
  if (n == 2 && segs[1] == "events") return kEvents;
  if (n == 2 && segs[1] == "tasks") return kTasks;
  if (n == 4 && segs[1] == "tasks" && segs[3] == "run") return kTaskRun;
  if (n == 2 && segs[1] == "resources") return kResources;
  return kOther;
}

HttpMetrics::Shard::Shard() {
  MutexLock lock(&mu);
  latency.assign(kRouteCount, Histogram(kRequestSeconds));
}

HttpMetrics::HttpMetrics(unsigned shards) {
  for (unsigned i = 0; i < std::max(shards, 1u); ++i) shards_.push_back(std::make_unique<Shard>());
}

void HttpMetrics::CountRequest(unsigned shard_index, int route, http::verb method, unsigned code, double seconds) {
  const std::uint32_t key =
      static_cast<std::uint32_t>(route) << 24 | static_cast<std::uint32_t>(method) << 12 | std::min(code, 999u);
  Shard& s = shard(shard_index);
  MutexLock lock(&s.mu);
  ++s.requests[key];
  s.latency[static_cast<std::size_t>(route)].Observe(seconds);
}

void HttpMetrics::ConnectionOpened(unsigned i) {
  Shard& s = shard(i);
  MutexLock lock(&s.mu);
  ++s.opened;
}

void HttpMetrics::ConnectionClosed(unsigned i) {
  Shard& s = shard(i);
  MutexLock lock(&s.mu);
  ++s.closed;
}

void HttpMetrics::ConnectionRefused(unsigned i) {
  Shard& s = shard(i);
  MutexLock lock(&s.mu);
  ++s.refused;
}

void HttpMetrics::Write(MetricsText* out) const {
  // Summed over the shards; ordered, so that a scrape reads the same series in the same order.
  std::map<std::uint32_t, std::uint64_t> requests;
  std::vector<Histogram> latency(kRouteCount, Histogram(kRequestSeconds));
  std::uint64_t opened = 0, closed = 0, refused = 0;
  for (const auto& s : shards_) {
    MutexLock lock(&s->mu);
    for (const auto& [key, n] : s->requests) requests[key] += n;
    for (int r = 0; r < kRouteCount; ++r) latency[r].Merge(s->latency[r]);
    opened += s->opened;
    closed += s->closed;
    refused += s->refused;
  }
  out->Family("offload_http_requests_total", MetricType::kCounter,
              "HTTP requests answered, by route template, method and status code.");
  for (const auto& [key, n] : requests) {
    const auto method = static_cast<http::verb>((key >> 12) & 0xfff);
    const std::string code = std::to_string(key & 0xfff);
    const std::string_view method_name = method == http::verb::unknown ? "other" : http::to_string(method);
    out->Sample("offload_http_requests_total", {{"route", kRoutes[key >> 24]}, {"method", method_name}, {"code", code}},
                n);
  }
  out->Family("offload_http_request_duration_seconds", MetricType::kHistogram,
              "Seconds from a request's header read to its response ready (a wait the client asked for included).");
  for (int r = 0; r < kRouteCount; ++r) {
    if (latency[r].count() > 0)
      out->Samples("offload_http_request_duration_seconds", {{"route", kRoutes[r]}}, latency[r]);
  }
  out->Family("offload_http_connections_open", MetricType::kGauge, "HTTP connections open now.");
  out->Sample("offload_http_connections_open", {}, static_cast<std::int64_t>(opened - closed));
  out->Family("offload_http_connections_total", MetricType::kCounter, "HTTP connections accepted.");
  out->Sample("offload_http_connections_total", {}, opened);
  out->Family("offload_http_connections_refused_total", MetricType::kCounter,
              "HTTP connections refused with a 503 at max_connections.");
  out->Sample("offload_http_connections_refused_total", {}, refused);
}

}  // namespace offload
