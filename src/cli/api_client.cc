#include "cli/api_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>

namespace offload::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

std::string ApiResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (beast::iequals(n, name)) return v;
  }
  return "";
}

json::value ApiResponse::json() const {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  return ec ? json::value(nullptr) : v;
}

std::string ApiResponse::ProblemText() const {
  const json::value v = json();
  if (const json::object* o = v.if_object()) {
    std::string text;
    if (const auto* t = o->if_contains("title"); t && t->is_string()) text = std::string(t->as_string());
    if (const auto* d = o->if_contains("detail"); d && d->is_string()) {
      text += (text.empty() ? "" : ": ") + std::string(d->as_string());
    }
    if (!text.empty()) return text;
  }
  return "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body.substr(0, 300));
}

ErrorOr<ApiClient> ApiClient::Connect(const std::string& base_url, std::string token, const std::string& cacert) {
  auto parsed = boost::urls::parse_uri(base_url);
  const bool https = parsed && parsed->scheme() == "https";
  if (!parsed || (parsed->scheme() != "http" && !https) || parsed->host().empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--url must be http://HOST:PORT or https://HOST:PORT (got \"" + base_url + "\")");
  }
  std::string host = parsed->host_address();
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  std::string port = parsed->has_port() ? std::string(parsed->port()) : https ? "443" : "80";
  std::string prefix(parsed->path());
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  ApiClient client(base_url, std::move(host), std::move(port), std::move(prefix));
  if (!token.empty()) client.authorization_ = "Bearer " + token;
  if (https) {
    client.tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    client.tls_->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                             asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    client.tls_->set_verify_mode(asio::ssl::verify_peer);
    boost::system::error_code ec;
    if (cacert.empty()) {
      client.tls_->set_default_verify_paths(ec);
    } else {
      client.tls_->load_verify_file(cacert, ec);
    }
    if (ec) {
      return MakeError(ErrorCode::kInvalidArgument,
                       (cacert.empty() ? std::string("the system's CA certificates") : "--cacert " + cacert) +
                           " cannot be read: " + ec.message());
    }
  } else if (!cacert.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "--cacert is for https:// URLs");
  }
  return client;
}

ApiClient::ApiClient(std::string url, std::string host, std::string port, std::string prefix)
    : url_(std::move(url)),
      host_(std::move(host)),
      port_(std::move(port)),
      prefix_(std::move(prefix)),
      ioc_(std::make_unique<asio::io_context>()) {}

void ApiClient::Disconnect() {
  stream_.reset();
  tls_stream_.reset();
}

Status ApiClient::EnsureConnected(std::chrono::milliseconds timeout) {
  if (connected()) return {};
  buffer_.clear();
  beast::error_code ec;
  tcp::resolver resolver(*ioc_);
  auto endpoints = resolver.resolve(host_, port_, ec);
  if (!ec && !tls_) {
    stream_.emplace(*ioc_);
    stream_->expires_after(timeout);
    stream_->connect(endpoints, ec);
  } else if (!ec) {
    tls_stream_.emplace(*ioc_, *tls_);
    beast::tcp_stream& tcp = beast::get_lowest_layer(*tls_stream_);
    tcp.expires_after(timeout);
    tcp.connect(endpoints, ec);
    boost::system::error_code not_an_address;
    asio::ip::make_address(host_, not_an_address);
    // SNI names a host, never an address (RFC 6066 3).
    if (!ec && not_an_address) SSL_set_tlsext_host_name(tls_stream_->native_handle(), host_.c_str());
    tls_stream_->set_verify_callback(asio::ssl::host_name_verification(host_));
    if (!ec) tls_stream_->handshake(asio::ssl::stream_base::client, ec);
  }
  if (ec) {
    Disconnect();
    return MakeError(ErrorCode::kUnavailable, "cannot reach " + url_ + ": " + ec.message());
  }
  return {};
}

template <class Stream>
std::optional<ApiResponse> ApiClient::Exchange(Stream& stream, const http::request<http::string_body>& req, bool head,
                                               std::chrono::milliseconds timeout, bool* keep_alive,
                                               beast::error_code* ec) {
  beast::get_lowest_layer(stream).expires_after(timeout);
  http::write(stream, req, *ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  if (head) parser.skip(true);
  if (!*ec) http::read(stream, buffer_, parser, *ec);
  if (*ec) return std::nullopt;
  auto res = parser.release();
  ApiResponse out;
  out.status = res.result_int();
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  out.body = std::move(res.body());
  *keep_alive = res.keep_alive();
  return out;
}

ErrorOr<ApiResponse> ApiClient::Request(http::verb method, const std::string& target, std::string body,
                                        std::string_view content_type,
                                        const std::vector<std::pair<std::string, std::string>>& headers,
                                        std::chrono::milliseconds timeout) {
  // A kept-alive connection the server closed meanwhile fails at once: one more try on
  // a fresh one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = connected();
    if (Status s = EnsureConnected(timeout); !s) return s.error();
    http::request<http::string_body> req{method, prefix_ + target, 11};
    req.set(http::field::host, host_ + ":" + port_);
    req.set(http::field::user_agent, "offload-cli/0.1.0");
    if (!authorization_.empty()) req.set(http::field::authorization, authorization_);
    for (const auto& [n, v] : headers) req.set(n, v);
    if (!body.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
    bool keep_alive = false;
    beast::error_code ec;
    const bool head = method == http::verb::head;
    std::optional<ApiResponse> answer = tls_ ? Exchange(*tls_stream_, req, head, timeout, &keep_alive, &ec)
                                             : Exchange(*stream_, req, head, timeout, &keep_alive, &ec);
    if (!answer) {
      Disconnect();
      if (reused && attempt == 0 && ec != beast::error::timeout) continue;
      return MakeError(ErrorCode::kUnavailable,
                       ec == beast::error::timeout
                           ? url_ + " did not answer within " + std::to_string(timeout.count() / 1000) + " s"
                           : "lost the connection to " + url_ + ": " + ec.message());
    }
    if (!keep_alive) Disconnect();
    return std::move(*answer);
  }
  return MakeError(ErrorCode::kUnavailable, "lost the connection to " + url_);
}

}  // namespace offload::cli
