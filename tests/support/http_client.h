// HttpClient: a small synchronous HTTP/1.1 client (Boost.Beast) for integration
// tests. One keep-alive connection, reopened when the server closed it; every
// request has a deadline, so a hung server fails a test instead of hanging it.
//
// Threads: not thread-safe; one client per thread (make several for concurrency).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace offload::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  int status = 0;  // 0: no response; `error` says why.
  std::string error;
  std::map<std::string, std::string> headers;  // Names lower-cased.
  std::string body;

  // The header's value, or "" when absent. `name` in any case.
  std::string header(std::string_view name) const;
  // The body as JSON; a null value when it is not JSON. Parsed once; the reference
  // lives as long as this Response.
  const boost::json::value& json() const;

 private:
  mutable std::optional<boost::json::value> json_;
};

class HttpClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{15'000};

  explicit HttpClient(unsigned short port, std::string host = "127.0.0.1");
  ~HttpClient();

  Response Request(boost::beast::http::verb method, std::string_view target, std::string body = {},
                   const Headers& headers = {}, std::chrono::milliseconds timeout = kDefaultTimeout);
  Response Get(std::string_view target, std::chrono::milliseconds timeout = kDefaultTimeout) {
    return Request(boost::beast::http::verb::get, target, {}, {}, timeout);
  }
  Response Post(std::string_view target, std::string body, const Headers& headers = {},
                std::chrono::milliseconds timeout = kDefaultTimeout) {
    return Request(boost::beast::http::verb::post, target, std::move(body), headers, timeout);
  }
  Response Delete(std::string_view target) { return Request(boost::beast::http::verb::delete_, target); }

  // Request in two halves, for tests that act while a request is in flight
  // (disconnect, shutdown). Send returns an error message, "" on success.
  std::string Send(boost::beast::http::verb method, std::string_view target, std::string body = {},
                   const Headers& headers = {});
  Response Receive(std::chrono::milliseconds timeout = kDefaultTimeout);

  // Closes the connection (the next request opens a new one).
  void Close();

 private:
  std::string Connect(std::chrono::milliseconds timeout);

  std::string host_;
  unsigned short port_;
  boost::asio::io_context ioc_;
  std::optional<boost::beast::tcp_stream> stream_;
  bool sent_head_ = false;  // The last request sent was HEAD.
  boost::beast::flat_buffer buffer_;
};

// Parses `text` as JSON; nullopt when it is not.
std::optional<boost::json::value> ParseJson(std::string_view text);

// Milliseconds since the Unix epoch of an RFC 3339 UTC time with milliseconds
// ("2024-05-01T12:00:00.123Z"), as job objects carry them; nullopt otherwise.
std::optional<std::int64_t> ParseRfc3339Millis(std::string_view text);

}  // namespace offload::testing
