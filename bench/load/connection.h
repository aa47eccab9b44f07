// Connection: one keep-alive HTTP/1.1 client connection that carries one request at a
// time, reconnecting on the next Send after an error or a "Connection: close".
//
// Threads: not thread-safe. A Connection lives on one single-threaded io_context and
// its callbacks run there; every load thread owns its own connections.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace offload::bench {

struct Reply {
  boost::system::error_code error;  // Set when no answer came (connect, I/O, timeout).
  unsigned status = 0;
  std::string body;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Done = std::function<void(Reply&&)>;

  // `header_lines`: what every request carries (Target::header_lines).
  Connection(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint endpoint, std::string header_lines);

  // Sends one request and calls `done` once with the answer or the error. `prefer`
  // (empty: none) becomes a Prefer header. REQUIRES: no request in flight.
  void Send(boost::beast::http::verb method, std::string_view target, std::string_view body,
            std::chrono::milliseconds timeout, std::string_view prefer, Done done);

  // Opens the TCP connection now, so that the first Send does not pay for it.
  void Connect(std::chrono::milliseconds timeout, std::function<void(boost::system::error_code)> done);

  bool busy() const { return static_cast<bool>(done_); }
  void Close();

 private:
  void Write();
  void Read();
  void Fail(boost::system::error_code ec);

  boost::beast::tcp_stream stream_;
  const boost::asio::ip::tcp::endpoint endpoint_;
  boost::beast::flat_buffer buffer_;
  const std::string header_lines_;
  // The request as bytes, rebuilt only when it differs from the previous one: a
  // load loop sends the same request again and again, and formatting it once keeps
  // the client's share of the cores small.
  std::string request_;
  std::string last_method_, last_target_, last_body_, last_prefer_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> parser_;
  std::chrono::milliseconds timeout_{0};
  bool connected_ = false;
  Done done_;
};

}  // namespace offload::bench
