#include "connection.h"

namespace offload::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Connection::Connection(asio::io_context& io, tcp::endpoint endpoint, std::string header_lines)
    : stream_(io), endpoint_(endpoint), header_lines_(std::move(header_lines)) {}

void Connection::Connect(std::chrono::milliseconds timeout, std::function<void(boost::system::error_code)> done) {
  if (connected_) return done({});
  stream_.expires_after(timeout);
  stream_.async_connect(endpoint_, [self = shared_from_this(), done = std::move(done)](beast::error_code ec) {
    if (ec) {
      self->Close();  // The next Send starts from a fresh socket.
      return done(ec);
    }
    self->connected_ = true;
    self->stream_.socket().set_option(tcp::no_delay(true), ec);
    self->stream_.expires_never();
    done({});
  });
}

void Connection::Send(http::verb method, std::string_view target, std::string_view body,
                      std::chrono::milliseconds timeout, std::string_view prefer, Done done) {
  const std::string_view verb = http::to_string(method);
  if (request_.empty() || verb != last_method_ || target != last_target_ || body != last_body_ ||
      prefer != last_prefer_) {
    last_method_.assign(verb);
    last_target_.assign(target);
    last_body_.assign(body);
    last_prefer_.assign(prefer);
    request_.clear();
    request_.append(verb).append(" ").append(target).append(" HTTP/1.1\r\n").append(header_lines_);
    request_.append("User-Agent: offload-load\r\n");
    if (!prefer.empty()) request_.append("Prefer: ").append(prefer).append("\r\n");
    if (!body.empty() || method == http::verb::post || method == http::verb::put) {
      if (!body.empty()) request_.append("Content-Type: application/json\r\n");
      request_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    request_.append("\r\n").append(body);
  }
  timeout_ = timeout;
  done_ = std::move(done);
  if (connected_) return Write();
  stream_.expires_after(timeout_);
  stream_.async_connect(endpoint_, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->Fail(ec);
    self->connected_ = true;
    self->stream_.socket().set_option(tcp::no_delay(true), ec);
    self->Write();
  });
}

void Connection::Write() {
  stream_.expires_after(timeout_);
  asio::async_write(stream_, asio::buffer(request_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->Fail(ec);
    self->Read();
  });
}

void Connection::Read() {
  parser_.emplace();
  parser_->body_limit(64 << 20);
  http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->Fail(ec);
    self->stream_.expires_never();
    auto& res = self->parser_->get();
    Reply reply{{}, res.result_int(), std::move(res.body())};
    if (!res.keep_alive()) self->Close();
    Done done = std::move(self->done_);
    self->done_ = nullptr;
    done(std::move(reply));
  });
}

void Connection::Fail(beast::error_code ec) {
  Close();
  Done done = std::move(done_);
  done_ = nullptr;
  done(Reply{ec, 0, {}});
}

void Connection::Close() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  stream_.expires_never();
  buffer_.clear();
  connected_ = false;
}

}  // namespace offload::bench
