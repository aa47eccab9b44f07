#include "http/origin_policy.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

namespace offload {

namespace http = boost::beast::http;
namespace ip = boost::asio::ip;

namespace {

// The host of a listen address or Host value, without its port; an IPv6 literal keeps
// its brackets ("[::1]"). A value whose "port" is not digits comes back whole, so that
// it matches no host.
std::string_view WithoutPort(std::string_view hostport) {
  std::size_t end = hostport.size();
  if (!hostport.empty() && hostport.front() == '[') {
    end = hostport.find(']');
    if (end == std::string_view::npos) return hostport;
    ++end;
  } else {
    end = std::min(hostport.rfind(':'), hostport.size());
  }
  if (end == hostport.size()) return hostport;
  if (hostport[end] != ':') return hostport;
  std::string_view port = hostport.substr(end + 1);
  const bool digits = std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  return digits ? hostport.substr(0, end) : hostport;
}

bool ListensOnLoopback(std::string_view listen) {
  std::string_view host = WithoutPort(listen);
  // As HttpServer::Listen reads it: no host or "localhost" is 127.0.0.1.
  if (host.empty() || host == "localhost") return true;
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  ip::address a = ip::make_address(std::string(host), ec);
  return !ec && a.is_loopback();
}

// Kept small on purpose: a browser caches the answer for Max-Age seconds.
constexpr const char* kAllowMethods = "GET, POST, DELETE";
constexpr const char* kAllowHeaders =
    "Authorization, Content-Type, Idempotency-Key, Prefer, X-Request-Id, Last-Event-ID, Range, If-Range, "
    "If-None-Match";
// Response headers a page may read besides the CORS-safelisted ones.
constexpr const char* kExposeHeaders =
    "Location, Retry-After, X-Request-Id, ETag, Content-Range, Accept-Ranges, WWW-Authenticate";

}  // namespace

void OriginPolicy::AddCorsHeaders(HttpResponse& res, const std::string& origin) {
  res.set(http::field::access_control_allow_origin, origin);
  res.set(http::field::access_control_expose_headers, kExposeHeaders);
  res.set(http::field::vary, "Origin");
}

namespace {

// Forwards to the session's exchange, adding CORS headers to the response.
// Thread-safe as the exchange it wraps; `origin_` is constant.
class CorsExchange final : public Exchange {
 public:
  CorsExchange(std::shared_ptr<Exchange> inner, std::string origin)
      : inner_(std::move(inner)), origin_(std::move(origin)) {}

  boost::asio::any_io_executor executor() override { return inner_->executor(); }
  void Respond(HttpResponse response) override {
    OriginPolicy::AddCorsHeaders(response, origin_);
    inner_->Respond(std::move(response));
  }
  void RespondStream(HttpResponse header, std::shared_ptr<BodySource> source) override {
    OriginPolicy::AddCorsHeaders(header, origin_);
    inner_->RespondStream(std::move(header), std::move(source));
  }
  void OnClientGone(std::function<void()> fn) override { inner_->OnClientGone(std::move(fn)); }

 private:
  const std::shared_ptr<Exchange> inner_;
  const std::string origin_;
};

}  // namespace

bool IsLoopbackHost(std::string_view host_header) {
  // ASCII case only (host names are ASCII on the wire), and no std::locale: this runs
  // for every request.
  std::string host(WithoutPort(host_header));
  for (char& c : host) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  if (host == "localhost") return true;
  // RFC 6761: *.localhost resolves to loopback and never to anything else.
  constexpr std::string_view kSuffix = ".localhost";
  if (host.size() > kSuffix.size() && host.ends_with(kSuffix)) return true;
  boost::system::error_code ec;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    ip::address_v6 a = ip::make_address_v6(host.substr(1, host.size() - 2), ec);
    return !ec && a.is_loopback();
  }
  // Dotted quads only: inet_pton refuses the short forms ("127.1") some resolvers take.
  ip::address_v4 a = ip::make_address_v4(host, ec);
  return !ec && a.is_loopback();
}

OriginPolicy::OriginPolicy(std::string_view listen, std::vector<std::string> allowed_origins, bool tls)
    : own_scheme_(tls ? "https://" : "http://"),
      loopback_(ListensOnLoopback(listen)),
      any_origin_(std::find(allowed_origins.begin(), allowed_origins.end(), "*") != allowed_origins.end()),
      allowed_(std::move(allowed_origins)) {}

std::optional<Problem> OriginPolicy::Check(const HttpRequestHeader& req) const {
  const std::string_view host = req[http::field::host];
  // No Host at all: HTTP/1.0 may omit it (and HTTP/1.1 without one is refused as
  // malformed by the session); a browser always sends one.
  if (loopback_ && !host.empty() && !IsLoopbackHost(host)) return MisdirectedHostProblem(host);
  if (req.find(http::field::origin) != req.end() && !IsCorsRequest(req)) {
    return OriginNotAllowedProblem(req[http::field::origin]);
  }
  return std::nullopt;
}

bool OriginPolicy::IsCorsRequest(const HttpRequestHeader& req) const {
  if (req.find(http::field::origin) == req.end()) return false;
  const std::string_view origin = req[http::field::origin];
  if (any_origin_) return true;
  for (const auto& a : allowed_) {
    if (boost::beast::iequals(a, origin)) return true;
  }
  // The server's own origin: a page it served itself (the dashboard) or a client
  // that sends Origin although not a browser.
  const std::string_view host = req[http::field::host];
  return !host.empty() && boost::beast::iequals(origin, own_scheme_ + std::string(host));
}

HttpResponse OriginPolicy::Preflight(const HttpRequest& req) {
  HttpResponse res{http::status::no_content, req.version()};
  AddCorsHeaders(res, std::string(req[http::field::origin]));
  res.set(http::field::access_control_allow_methods, kAllowMethods);
  res.set(http::field::access_control_allow_headers, kAllowHeaders);
  res.set(http::field::access_control_max_age, "600");
  return res;
}

std::shared_ptr<Exchange> OriginPolicy::WithCorsHeaders(std::shared_ptr<Exchange> ex, std::string origin) {
  return std::make_shared<CorsExchange>(std::move(ex), std::move(origin));
}

}  // namespace offload
