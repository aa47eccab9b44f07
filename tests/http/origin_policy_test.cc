// OriginPolicy alone: which Host names and Origins pass, for loopback and other
// listen addresses. The integration test (tests/integration/security_test.cc) covers
// the same through the real server; this one reaches what a test server on
// 127.0.0.1 cannot (a server bound to another address).
#include "http/origin_policy.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

namespace offload {
namespace {

namespace http = boost::beast::http;

HttpRequest Request(std::string_view host, std::string_view origin = {}) {
  HttpRequest req{http::verb::post, "/v1/jobs", 11};
  if (!host.empty()) req.set(http::field::host, host);
  if (!origin.empty()) req.set(http::field::origin, origin);
  return req;
}

TEST(OriginPolicyTest, LoopbackHosts) {
  for (const char* host : {"localhost", "localhost:8080", "LOCALHOST", "app.localhost:3000", "127.0.0.1",
                           "127.0.0.1:8080", "127.255.0.9:1", "[::1]", "[::1]:8080", "[0:0:0:0:0:0:0:1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host :
       {"", "evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "127.1", "10.0.0.1", "0.0.0.0", "[::2]",
        "[::ffff:127.0.0.1]", "::1", "localhost:8080.evil.example", ".localhost"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(OriginPolicyTest, HostIsCheckedOnlyWhenListeningOnLoopback) {
  for (const char* listen : {"127.0.0.1:8080", "localhost:8080", ":8080", "[::1]:8080", "127.0.0.2:0"}) {
    OriginPolicy p(listen, {});
    EXPECT_TRUE(p.loopback()) << listen;
    auto refused = p.Check(Request("evil.example:8080"));
    ASSERT_TRUE(refused.has_value()) << listen;
    EXPECT_EQ(refused->status, http::status::misdirected_request);
    EXPECT_FALSE(p.Check(Request("localhost:8080")).has_value()) << listen;
    // HTTP/1.0 may leave Host out.
    EXPECT_FALSE(p.Check(Request("")).has_value()) << listen;
  }
  for (const char* listen : {"0.0.0.0:8080", "[::]:8080", "192.168.1.5:8080"}) {
    OriginPolicy p(listen, {});
    EXPECT_FALSE(p.loopback()) << listen;
    EXPECT_FALSE(p.Check(Request("jobs.example:8080")).has_value()) << listen;
    // Origins are checked everywhere.
    auto refused = p.Check(Request("jobs.example:8080", "http://evil.example"));
    ASSERT_TRUE(refused.has_value()) << listen;
    EXPECT_EQ(refused->status, http::status::forbidden);
    EXPECT_FALSE(p.Check(Request("jobs.example:8080", "http://jobs.example:8080")).has_value());
  }
}

TEST(OriginPolicyTest, OriginsAreAllowedByListSameOriginOrStar) {
  OriginPolicy none("127.0.0.1:8080", {});
  EXPECT_FALSE(none.Check(Request("127.0.0.1:8080")).has_value());
  EXPECT_FALSE(none.IsCorsRequest(Request("127.0.0.1:8080")));
  EXPECT_TRUE(none.Check(Request("127.0.0.1:8080", "http://app.example")).has_value());
  EXPECT_FALSE(none.Check(Request("127.0.0.1:8080", "http://127.0.0.1:8080")).has_value());
  EXPECT_TRUE(none.Check(Request("127.0.0.1:8080", "http://127.0.0.1:9999")).has_value());
  EXPECT_TRUE(none.Check(Request("127.0.0.1:8080", "null")).has_value());

  OriginPolicy listed("127.0.0.1:8080", {"http://app.example", "https://ui.example:8443"});
  EXPECT_FALSE(listed.Check(Request("localhost:8080", "http://app.example")).has_value());
  EXPECT_TRUE(listed.IsCorsRequest(Request("localhost:8080", "http://app.example")));
  EXPECT_FALSE(listed.Check(Request("localhost:8080", "HTTPS://UI.example:8443")).has_value());
  EXPECT_TRUE(listed.Check(Request("localhost:8080", "https://ui.example")).has_value());
  EXPECT_TRUE(listed.Check(Request("localhost:8080", "http://app.example.evil.example")).has_value());

  OriginPolicy star("127.0.0.1:8080", {"*"});
  EXPECT_FALSE(star.Check(Request("localhost:8080", "http://anything.example")).has_value());
  // Even then, only loopback names: "*" opens the API to pages, not to rebound hosts.
  EXPECT_TRUE(star.Check(Request("anything.example", "http://anything.example")).has_value());
}

TEST(OriginPolicyTest, PreflightSaysWhatMayBeSent) {
  HttpRequest req{http::verb::options, "/v1/jobs", 11};
  req.set(http::field::origin, "http://app.example");
  HttpResponse res = OriginPolicy::Preflight(req);
  EXPECT_EQ(res.result(), http::status::no_content);
  EXPECT_EQ(res[http::field::access_control_allow_origin], "http://app.example");
  EXPECT_EQ(res[http::field::vary], "Origin");
  EXPECT_NE(res[http::field::access_control_allow_methods].find("POST"), std::string::npos);
  EXPECT_NE(res[http::field::access_control_allow_headers].find("Content-Type"), std::string::npos);
}

}  // namespace
}  // namespace offload
