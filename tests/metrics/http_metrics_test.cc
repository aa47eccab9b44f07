#include "http/http_metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace offload {
namespace {

namespace http = boost::beast::http;

std::string_view Route(std::string_view target) { return HttpMetrics::kRoutes[HttpMetrics::RouteOf(target)]; }

TEST(HttpMetricsTest, TargetsMapToTheirRouteTemplateNeverToAnId) {
  EXPECT_EQ(Route("/v1/jobs"), "/v1/jobs");
  EXPECT_EQ(Route("/v1/jobs?status=failed&limit=5"), "/v1/jobs");
  EXPECT_EQ(Route("/v1/jobs/job-abc"), "/v1/jobs/{id}");
  EXPECT_EQ(Route("/v1/jobs/job-abc?wait=5"), "/v1/jobs/{id}");
  EXPECT_EQ(Route("/v1/jobs/job-abc/result"), "/v1/jobs/{id}/result");
  EXPECT_EQ(Route("/v1/jobs/job-abc/events"), "/v1/jobs/{id}/events");
  EXPECT_EQ(Route("/v1/events?task=x"), "/v1/events");
  EXPECT_EQ(Route("/v1/tasks"), "/v1/tasks");
  EXPECT_EQ(Route("/v1/tasks/render/run"), "/v1/tasks/{name}/run");
  EXPECT_EQ(Route("/v1/resources"), "/v1/resources");
  EXPECT_EQ(Route("/healthz"), "/healthz");
  EXPECT_EQ(Route("/metrics"), "/metrics");
  EXPECT_EQ(Route("/v1/jobs/abc/retry"), "/v1/jobs/{id}/retry");
  EXPECT_EQ(Route("/v1/jobs/cancel"), "/v1/jobs/cancel");
  EXPECT_EQ(Route("/ui"), "/ui");
  EXPECT_EQ(Route("/ui/app.js"), "/ui");
  EXPECT_EQ(Route("/docs"), "/docs");
  EXPECT_EQ(Route("/docs/rapidoc-min.js"), "/docs");
  EXPECT_EQ(Route("/openapi.json"), "/openapi.json");
  for (std::string_view other : {"", "/", "/v1", "/v2/jobs", "/v1/jobs/a/b/c", "/v1/jobs/a/other", "/metrics/x",
                                 "/ui/a/b", "/v1/tasks/x", "http://host/v1/jobs", "/a/b/c/d/e/f/g"}) {
    EXPECT_EQ(Route(other), "other") << other;
  }
}

TEST(HttpMetricsTest, ShardsAreSummedInOneSeriesPerRouteMethodAndCode) {
  HttpMetrics m(2);
  const int jobs = HttpMetrics::RouteOf("/v1/jobs");
  m.CountRequest(0, jobs, http::verb::post, 202, 0.001);
  m.CountRequest(1, jobs, http::verb::post, 202, 0.002);
  m.CountRequest(1, jobs, http::verb::post, 429, 0.0001);
  m.ConnectionOpened(0);
  m.ConnectionOpened(1);
  m.ConnectionClosed(0);
  MetricsText out;
  m.Write(&out);
  const std::string& text = out.text();
  EXPECT_NE(text.find("offload_http_requests_total{route=\"/v1/jobs\",method=\"POST\",code=\"202\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("offload_http_requests_total{route=\"/v1/jobs\",method=\"POST\",code=\"429\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("offload_http_request_duration_seconds_count{route=\"/v1/jobs\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("offload_http_connections_open 1\n"), std::string::npos);
  EXPECT_NE(text.find("offload_http_connections_total 2\n"), std::string::npos);
}

}  // namespace
}  // namespace offload
