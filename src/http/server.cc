#include "http/server.h"

#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <optional>

#include "http/api.h"
#include "http/exchange.h"
#include "http/problem.h"

namespace offload {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// A keep-alive connection idle this long (or a client this slow to send a request)
// is closed.
constexpr std::chrono::seconds kIdleTimeout{120};

// One connection. Lives on one io_context thread: no member needs a lock, and the
// only cross-thread entry point, Respond, hops onto that thread first.
class Session final : public Exchange, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer* server, Api* api, std::int64_t max_body)
      : stream_(std::move(socket)), server_(server), api_(api), max_body_(max_body) {}

  void Start() { ReadHeader(); }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

  void Respond(HttpResponse response) override {
    asio::dispatch(stream_.get_executor(),
                   [self = shared_from_this(), res = std::move(response)]() mutable {
                     self->Write(std::move(res));
                   });
  }

  void OnClientGone(std::function<void()> fn) override {
    if (!awaiting_) return;
    gone_fn_ = std::move(fn);
    watching_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read,
                                [self = shared_from_this()](const beast::error_code& ec) {
                                  self->OnReadable(ec);
                                });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(static_cast<std::uint64_t>(max_body_));
    parser_->header_limit(64 * 1024);
    stream_.expires_after(kIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    if (parser_->is_done()) return Dispatch();
    const auto& req = parser_->get();
    if (auto len = parser_->content_length(); len && *len > static_cast<std::uint64_t>(max_body_)) {
      return OnReadError(http::error::body_limit);
    }
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // curl and others wait for this before sending a body over 1 KiB.
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->OnReadError(ec);
                       self->Dispatch();
                     });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return SendProblemAndClose(ProblemFromError(MakeError(
          ErrorCode::kTooLarge, "the body is larger than max_body (" + std::to_string(max_body_) +
                                    " bytes)")));
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::error::eof) {
      return Close();
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return SendProblemAndClose(
          MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                      "the request is not valid HTTP/1.1: " + ec.message()));
    }
    Close();
  }

  void SendProblemAndClose(const Problem& p) {
    HttpResponse res{p.status, 11};
    res.set(http::field::content_type, "application/problem+json");
    res.body() = ProblemBody(p);
    keep_alive_ = false;
    awaiting_ = true;
    server_->in_flight.fetch_add(1, std::memory_order_relaxed);
    Write(std::move(res));
  }

  void Dispatch() {
    stream_.expires_never();  // A request may wait for its job as long as it asked.
    HttpRequest req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    awaiting_ = true;
    server_->in_flight.fetch_add(1, std::memory_order_relaxed);
    api_->Handle(std::move(req), shared_from_this());
  }

  void Write(HttpResponse res) {
    if (!awaiting_) return;
    awaiting_ = false;
    if (watching_) {
      watching_ = false;
      gone_fn_ = nullptr;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
    }
    res.version(version_);
    res.set(http::field::server, "offload");
    res.keep_alive(keep_alive_);
    res.prepare_payload();
    response_.emplace(std::move(res));
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, *response_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->OnWrite(ec);
                      });
  }

  void OnWrite(beast::error_code ec) {
    server_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    response_.reset();
    if (ec || !keep_alive_) return Close();
    ReadHeader();
  }

  // The socket became readable while a response is pending: either the client
  // closed (EOF) or it pipelined another request, which stays in the kernel buffer
  // for the next read.
  void OnReadable(const beast::error_code& ec) {
    if (!watching_ || ec == asio::error::operation_aborted) return;
    watching_ = false;
    char c;
    ssize_t n = ::recv(stream_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !ec) return;
    auto fn = std::move(gone_fn_);
    gone_fn_ = nullptr;
    if (fn) fn();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<HttpResponse> response_;
  HttpServer* server_;
  Api* api_;
  const std::int64_t max_body_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool awaiting_ = false;  // A request was read and not yet answered.
  bool watching_ = false;  // An async_wait for client EOF is pending.
  std::function<void()> gone_fn_;
};

ErrorOr<tcp::endpoint> ParseListen(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "listen address must be HOST:PORT, got \"" + address + "\"");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto port_text = std::string_view(address).substr(colon + 1);
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, "bad port in listen address \"" + address + "\"");
  }
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  beast::error_code bec;
  auto ip = asio::ip::make_address(host, bec);
  if (bec) {
    return MakeError(ErrorCode::kInvalidArgument, "listen host must be an IP address, got \"" + host + "\"");
  }
  return tcp::endpoint(ip, static_cast<unsigned short>(port));
}

}  // namespace

HttpServer::HttpServer(Api* api, HttpServerOptions options) : api_(api), options_(options) {
  if (options_.threads == 0) options_.threads = 1;
  for (unsigned i = 0; i < options_.threads; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
}

HttpServer::~HttpServer() = default;

ErrorOr<tcp::endpoint> HttpServer::Listen(const std::string& address) {
  auto ep = ParseListen(address);
  if (!ep) return ep.error();
  auto acceptor = std::make_unique<tcp::acceptor>(*contexts_[0]);
  beast::error_code ec;
  acceptor->open(ep->protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(*ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot listen on " + address + ": " + ec.message());
  }
  tcp::endpoint bound = acceptor->local_endpoint();
  acceptor_ = std::move(acceptor);
  Accept();
  return bound;
}

void HttpServer::Accept() {
  asio::io_context& ctx = *contexts_[next_context_++ % contexts_.size()];
  acceptor_->async_accept(ctx, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(socket), this, api_, options_.max_body)->Start();
    } else {
      spdlog::warn("accept: {}", ec.message());
    }
    Accept();
  });
}

void HttpServer::Run() {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& ctx : contexts_) guards.push_back(asio::make_work_guard(*ctx));
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([ctx = contexts_[i].get()] { ctx->run(); });
  }
  contexts_[0]->run();
  for (auto& t : threads) t.join();
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  asio::post(*contexts_[0], [this] {
    beast::error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
  });
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& ctx : contexts_) ctx->stop();
}

}  // namespace offload
