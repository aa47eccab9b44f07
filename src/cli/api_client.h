// ApiClient: the offload CLI's connection to a server (`--url`, OFFLOAD_URL): HTTP/1.1
// over one keep-alive connection, reopened when the server closed it, every request
// under a deadline. Synchronous: the CLI does one thing at a time.
//
// Not thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.h"

namespace offload::cli {

struct ApiResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // Names lower-cased.
  std::string body;

  std::string header(std::string_view name) const;
  // The body as JSON, or null when it is not.
  boost::json::value json() const;
  // "TITLE: DETAIL" of a problem body; the status line's words otherwise.
  std::string ProblemText() const;
};

class ApiClient {
 public:
  // `base_url`: "http://HOST:PORT" or "https://HOST:PORT" (a path prefix is kept).
  // kInvalidArgument for another scheme, a malformed URL or a `cacert` that cannot be
  // read. `token`, when not empty, is sent with every request (Authorization:
  // Bearer). Over https the server's certificate must be valid for HOST and signed by
  // a CA of the system's or, when given, of the PEM file `cacert`.
  static ErrorOr<ApiClient> Connect(const std::string& base_url, std::string token = {},
                                    const std::string& cacert = {});
  ApiClient(ApiClient&&) = default;

  // kUnavailable when the server cannot be reached or did not answer in `timeout`.
  ErrorOr<ApiResponse> Request(boost::beast::http::verb method, const std::string& target, std::string body = {},
                               std::string_view content_type = "application/json",
                               const std::vector<std::pair<std::string, std::string>>& headers = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ErrorOr<ApiResponse> Get(const std::string& target, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return Request(boost::beast::http::verb::get, target, {}, {}, {}, timeout);
  }

  const std::string& url() const { return url_; }

 private:
  ApiClient(std::string url, std::string host, std::string port, std::string prefix);
  Status EnsureConnected(std::chrono::milliseconds timeout);
  bool connected() const { return tls_ ? tls_stream_.has_value() : stream_.has_value(); }
  void Disconnect();
  // One request and its answer on the open connection, TCP or TLS; nullopt and *ec
  // when the connection failed.
  template <class Stream>
  std::optional<ApiResponse> Exchange(Stream& stream,
                                      const boost::beast::http::request<boost::beast::http::string_body>& req,
                                      bool head, std::chrono::milliseconds timeout, bool* keep_alive,
                                      boost::system::error_code* ec);

  std::string url_;
  std::string host_;
  std::string port_;
  std::string prefix_;         // The URL's path, without a trailing slash.
  std::string authorization_;  // "Bearer TOKEN", or empty.
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<boost::asio::ssl::context> tls_;                                // Set for https.
  std::optional<boost::beast::tcp_stream> stream_;                                // http
  std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_stream_;  // https
  boost::beast::flat_buffer buffer_;
};

}  // namespace offload::cli
