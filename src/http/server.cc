#include "http/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cerrno>
#include <charconv>
#include <optional>
#include <sstream>
#include <variant>

#include "config/config.h"
#include "http/access_log.h"
#include "http/api.h"
#include "http/exchange.h"
#include "http/http_metrics.h"
#include "http/problem.h"
#include "http/upload.h"
#include "util/token_bucket.h"

namespace offload {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

// The largest request header (request line and fields); past it: 431.
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
// What the idle stage reads at most: a request's first bytes. Small, so that an
// idle connection holds little memory.
constexpr std::size_t kFirstRead = 1024;
// The buffer a body of more than kBodyRead bytes is read through. Beast reads at most
// the buffer's free capacity at once (and at least 512 bytes): through the 1 KiB the
// header needed, a 2 MB body took 2,000 reads, each a syscall and a timer reset.
constexpr std::size_t kBodyRead = 64 * 1024;
// The buffer an upload (a body streamed to disk) is read through: larger, since an
// upload may be gigabytes and each read is a syscall, a disk write and a timer reset.
constexpr std::size_t kUploadRead = 256 * 1024;
// How long a connection closed after an error answer keeps reading (and dropping)
// what the client still sends, so that the answer reaches it (LingerAndClose).
constexpr std::chrono::seconds kLinger{2};

// One connection, over TCP (`Stream` beast::tcp_stream) or TLS (TlsStream). Lives on
// one io_context thread: no member needs a lock, and the only cross-thread entry
// point, Respond, hops onto that thread first.
template <class Stream>
class Session final : public Exchange, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  // `shard`: the I/O thread's, for its metrics; `tls`: the context of a TLS session
  // (nullptr for TCP), which it holds for its whole life.
  Session(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls, HttpServer* server, Api* api,
          const HttpServerOptions& options, HttpMetrics* metrics, unsigned shard, AccessLog* access_log)
      : tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        server_(server),
        api_(api),
        options_(options),
        metrics_(metrics),
        shard_(shard),
        access_log_(access_log) {
    if (options_.connection_rate > 0) rate_.emplace(options_.connection_rate);
    server_->sessions.fetch_add(1, std::memory_order_relaxed);
    metrics_->ConnectionOpened(shard_);
    if (access_log_) {
      beast::error_code ec;
      const tcp::endpoint peer = Tcp().socket().remote_endpoint(ec);
      remote_ = ec ? "-" : peer.address().to_string();
    }
  }
  ~Session() override {
    metrics_->ConnectionClosed(shard_);
    server_->sessions.fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() {
    if constexpr (kTls) {
      // The handshake is part of reading the first request: header_timeout bounds it.
      Tcp().expires_after(options_.header_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](const beast::error_code& ec) {
                                if (ec) return self->Close();
                                self->AwaitRequest();
                              });
    } else {
      AwaitRequest();
    }
  }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

  void Respond(HttpResponse response) override {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this(), res = std::move(response)]() mutable {
      self->Write(std::move(res));
    });
  }

  void RespondStream(HttpResponse header, std::shared_ptr<BodySource> source) override {
    asio::dispatch(stream_.get_executor(),
                   [self = this->shared_from_this(), res = std::move(header), source = std::move(source)]() mutable {
                     self->StartStream(std::move(res), std::move(source));
                   });
  }

  void OnClientGone(std::function<void()> fn) override {
    if (!awaiting_) return;
    gone_fn_ = std::move(fn);
    watching_ = true;
    Tcp().socket().async_wait(tcp::socket::wait_read,
                              [self = this->shared_from_this()](const beast::error_code& ec) { self->OnReadable(ec); });
  }

 private:
  static Stream MakeStream(tcp::socket socket, asio::ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      return Stream(std::move(socket));
    }
  }
  // The TCP connection beneath (the stream itself without TLS): its socket and timer.
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // The idle stage: waits under idle_timeout for the first bytes of the next
  // request. A pipelined request already in the buffer goes straight to its header.
  void AwaitRequest() {
    if constexpr (kTls) {
      // A read of the client's leaving is still out (OnReadable): it goes on from there.
      if (watch_reading_) {
        resume_after_watch_ = true;
        return;
      }
    }
    if (buffer_.size() > 0) return ReadHeader();
    // A large body or header grew the buffer; an idle connection should not keep it.
    if (buffer_.capacity() > kFirstRead * 4) buffer_.shrink_to_fit();
    Tcp().expires_after(options_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kFirstRead),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->OnReadError(ec);
                              self->ReadHeader();
                            });
  }

  // The header stage: header_timeout from the first byte, whatever arrives meanwhile.
  void ReadHeader() {
    upload_parser_.reset();
    parser_.emplace();
    // No body limit yet: Beast would refuse a Content-Length over it with the header,
    // before OnHeader knows whether the body is an upload, which has its own limit.
    parser_->body_limit(boost::none);
    parser_->header_limit(kHeaderLimit);
    Tcp().expires_after(options_.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  // Refuses, before any body is read, what RFC 9112 says a server must not
  // process: a body whose length is ambiguous (request smuggling) or a request
  // without its one Host.
  std::optional<Problem> CheckHeader(const HttpRequest& req) {
    auto te = req.find(http::field::transfer_encoding);
    if (te != req.end()) {
      // Beast takes Content-Length when the last coding is not chunked, and no
      // body at all when there is no Content-Length either; an intermediary may
      // read the body differently, so the bytes after it could be a hidden request
      // (RFC 9112 §6.1: respond 400 and close).
      if (req.count(http::field::transfer_encoding) > 1 || !parser_->chunked()) {
        return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                           "Transfer-Encoding must end with chunked (the only coding accepted), given "
                           "once; got \"" +
                               std::string(te->value()) + "\"");
      }
      if (req.find(http::field::content_length) != req.end()) {
        return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                           "a request must not carry both Transfer-Encoding and Content-Length");
      }
      // "gzip, chunked": framed, but a coding the server cannot undo (RFC 9112 §6.1:
      // 501). The body would reach the JSON parser still compressed.
      if (!beast::iequals(beast::string_view(te->value()), "chunked")) {
        return MakeProblem(http::status::not_implemented, "transfer-coding-not-implemented",
                           "Transfer coding not implemented",
                           "the only transfer coding accepted is chunked; got \"" + std::string(te->value()) + "\"");
      }
    }
    const std::size_t hosts = req.count(http::field::host);
    if (hosts > 1 || (hosts == 0 && req.version() >= 11)) {
      return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                         hosts > 1 ? "a request must carry one Host header, not several"
                                   : "an HTTP/1.1 request must carry a Host header");
    }
    return std::nullopt;
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    request_began_ = std::chrono::steady_clock::now();
    route_ = HttpMetrics::RouteOf(req.target());
    method_ = req.method();
    request_id_.assign(AccessLog::Acceptable(req["X-Request-Id"]));
    if (access_log_) {
      if (request_id_.empty()) request_id_ = access_log_->NewRequestId();
      log_method_.assign(req.method_string());
      log_target_.assign(req.target());
      log_agent_.assign(req[http::field::user_agent]);
    }
    version_ = req.version() == 10 ? 10 : 11;
    if (auto problem = CheckHeader(req)) return SendProblemAndClose(*problem);
    if (int retry_after = 0; rate_ && !rate_->Take(TokenBucket::Clock::now(), &retry_after)) {
      Problem p = MakeProblem(http::status::too_many_requests, "rate-limited", "Too many requests",
                              "this connection is past connection_rate (" + FormatRate(options_.connection_rate) +
                                  "); it is closed: slow down, or spread the requests over connections");
      p.retry_after_s = retry_after;
      return SendProblemAndClose(p);
    }
    std::variant<Caller, HttpResponse> screened = api_->Screen(req);
    if (auto* refused = std::get_if<HttpResponse>(&screened)) return SendAndClose(std::move(*refused));
    caller_ = std::get<Caller>(std::move(screened));
    UploadPlan plan = api_->PlanUpload(req, caller_);
    if (plan.refusal) return SendProblemAndClose(*plan.refusal);
    if (parser_->is_done()) {
      if (!plan.upload) return Dispatch();
      // An empty body of a file type: a file of no bytes.
      if (!plan.upload->Finish()) return SendProblemAndClose(ProblemFromError(plan.upload->failure()));
      HttpRequest header = parser_->release();
      const bool keep_alive = header.keep_alive();
      return DispatchUpload(std::move(plan.upload), std::move(header.base()), keep_alive);
    }
    // Read before an upload takes the parser (and `req` with it).
    const bool expect_continue = beast::iequals(req[http::field::expect], "100-continue");
    body_limit_ = static_cast<std::uint64_t>(options_.max_body);
    if (plan.upload) {
      // The body goes to disk as it arrives, within the task's max_input.
      body_limit_ = plan.limit;
      upload_parser_.emplace(std::move(*parser_));
      parser_.reset();
      upload_parser_->body_limit(plan.limit);
      upload_parser_->get().body() = std::move(plan.upload);
    } else {
      parser_->body_limit(body_limit_);
    }
    if (auto len = content_length(); len && *len > body_limit_) return OnReadError(http::error::body_limit);
    if (expect_continue) {
      // curl and others wait for this before sending a body over 1 KiB.
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Tcp().expires_after(options_.write_timeout);
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  // The body stage: piece by piece, each piece re-arming header_timeout, so a
  // large body sent steadily is read whole and a stalled one is dropped.
  void ReadBody() {
    const auto left = upload_parser_ ? upload_parser_->content_length_remaining() : parser_->content_length_remaining();
    if (upload_parser_) {
      buffer_.reserve(kUploadRead);
    } else if (left && *left > kBodyRead) {
      buffer_.reserve(kBodyRead);
    }
    Tcp().expires_after(options_.header_timeout);
    auto next = [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->OnReadError(ec);
      if (self->upload_parser_ ? self->upload_parser_->is_done() : self->parser_->is_done()) return self->Dispatch();
      self->ReadBody();
    };
    if (upload_parser_) return http::async_read_some(stream_, buffer_, *upload_parser_, std::move(next));
    http::async_read_some(stream_, buffer_, *parser_, std::move(next));
  }

  boost::optional<std::uint64_t> content_length() const {
    return upload_parser_ ? upload_parser_->content_length() : parser_->content_length();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      const bool upload = upload_parser_.has_value();
      // Discards what was received of an upload.
      upload_parser_.reset();
      return SendProblemAndClose(
          ProblemFromError(MakeError(ErrorCode::kTooLarge, std::string("the body is larger than ") +
                                                               (upload ? "the task's max_input" : "max_body") + " (" +
                                                               std::to_string(body_limit_) + " bytes)")));
    }
    if (ec == boost::system::errc::io_error && upload_parser_ && upload_parser_->get().body()) {
      Problem p = ProblemFromError(upload_parser_->get().body()->failure());
      upload_parser_.reset();
      return SendProblemAndClose(p);
    }
    upload_parser_.reset();
    if (ec == http::error::header_limit) {
      return SendProblemAndClose(MakeProblem(
          http::status::request_header_fields_too_large, "header-too-large", "Request Header Fields Too Large",
          "the request line and header fields are larger than " + std::to_string(kHeaderLimit / 1024) +
              " KiB; send large values in the body"));
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted || ec == asio::error::eof) {
      return Close();
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return SendProblemAndClose(MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                                             "the request is not valid HTTP/1.1: " + ec.message()));
    }
    Close();
  }

  void SendProblemAndClose(const Problem& p) { SendAndClose(ProblemResponse(p)); }

  void SendAndClose(HttpResponse res) {
    keep_alive_ = false;
    head_ = false;
    awaiting_ = true;
    server_->in_flight.fetch_add(1, std::memory_order_relaxed);
    Write(std::move(res));
  }

  void Dispatch() {
    Tcp().expires_never();  // A request may wait for its job as long as it asked.
    if (upload_parser_) {
      http::request<UploadBody> req = upload_parser_->release();
      upload_parser_.reset();
      std::unique_ptr<Upload> upload = std::move(req.body());
      const bool keep_alive = req.keep_alive();
      return DispatchUpload(std::move(upload), std::move(req.base()), keep_alive);
    }
    HttpRequest req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    head_ = req.method() == http::verb::head;
    awaiting_ = true;
    server_->in_flight.fetch_add(1, std::memory_order_relaxed);
    api_->Handle(std::move(req), caller_, this->shared_from_this());
  }

  void DispatchUpload(std::unique_ptr<Upload> upload, HttpRequestHeader header, bool keep_alive) {
    Tcp().expires_never();
    keep_alive_ = keep_alive;
    version_ = header.version();
    head_ = false;
    awaiting_ = true;
    server_->in_flight.fetch_add(1, std::memory_order_relaxed);
    api_->HandleUpload(std::move(upload), std::move(header), this->shared_from_this());
  }

  // The request is answered now: false when it was already. Stops the watch for the
  // client's leaving, and sets what every response carries.
  bool TakeAnswer(HttpResponse* res, bool streamed = false) {
    if (!awaiting_) return false;
    awaiting_ = false;
    // A request refused before its header was whole (431, malformed) is of no route.
    if (route_ < 0) {
      request_began_ = std::chrono::steady_clock::now();
      route_ = HttpMetrics::RouteOf("");
      method_ = http::verb::unknown;
      if (access_log_) {
        request_id_ = access_log_->NewRequestId();
        log_method_ = log_target_ = "-";
      }
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - request_began_;
    metrics_->CountRequest(shard_, route_, method_, res->result_int(), took.count());
    route_ = -1;
    if (!request_id_.empty()) res->set("X-Request-Id", request_id_);
    if (access_log_) {
      std::optional<std::uint64_t> bytes;
      if (!streamed) bytes = head_ ? 0 : res->body().size();
      access_log_->Write(AccessEntry{remote_, log_method_, log_target_, version_, res->result_int(), bytes,
                                     took.count() * 1000, request_id_, log_agent_});
      log_method_.clear();
      log_target_.clear();
      log_agent_.clear();
    }
    request_id_.clear();
    if (watching_) {
      watching_ = false;
      gone_fn_ = nullptr;
      beast::error_code ignored;
      Tcp().socket().cancel(ignored);
    }
    if constexpr (kTls) {
      // The read of what came while waiting started without a deadline (a wait has
      // none): from the answer on, the next request must come within idle_timeout.
      if (watch_reading_) {
        if (!watch_deadline_) watch_deadline_.emplace(stream_.get_executor());
        watch_deadline_->expires_after(options_.idle_timeout);
        watch_deadline_->async_wait([self = this->shared_from_this()](const beast::error_code& ec) {
          if (!ec && self->watch_reading_) self->Close();
        });
      }
    }
    res->version(version_);
    res->set(http::field::server, "offload");
    // Bodies are JSON or a task's bytes under the task's declared type: a browser
    // must not guess another type (an "image/png" result that looks like HTML).
    res->set("X-Content-Type-Options", "nosniff");
    return true;
  }

  // The one place every whole response passes.
  void Write(HttpResponse res) {
    if (!TakeAnswer(&res)) return;
    res.keep_alive(keep_alive_);
    res.prepare_payload();
    // A 304 has no body, and no Content-Length but the one a 200 would have (RFC 9110 8.6).
    if (res.result() == http::status::not_modified) res.erase(http::field::content_length);
    // HEAD is answered with the header GET would get, Content-Length included.
    if (head_) res.body().KeepSizeOnly();
    response_.emplace(std::move(res));
    serializer_.emplace(*response_);
    WriteSome();
  }

  // Writes what the socket takes now; each write that makes progress re-arms
  // write_timeout, so only a client that stopped reading is dropped.
  void WriteSome() {
    Tcp().expires_after(options_.write_timeout);
    http::async_write_some(stream_, *serializer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->OnWrite(ec);
      if (!self->serializer_->is_done()) return self->WriteSome();
      self->OnWrite({});
    });
  }

  void OnWrite(beast::error_code ec) {
    server_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    serializer_.reset();
    response_.reset();  // Releases a shared result as soon as it is sent.
    if (ec) return Close();
    if (!keep_alive_) return LingerAndClose();
    AwaitRequest();
  }

  // A streamed response: the header, then each piece the source gives as a chunk
  // (HTTP/1.0: as it is, the end of the body being the connection's). A piece is
  // written whole before the next is pulled, each write under write_timeout: a client
  // that stops reading is dropped, and what waits for it stays in the source.
  void StartStream(HttpResponse res, std::shared_ptr<BodySource> source) {
    if (!TakeAnswer(&res, /*streamed=*/true)) return;
    chunked_ = version_ >= 11;
    if (!chunked_) keep_alive_ = false;
    res.keep_alive(keep_alive_);
    res.body() = std::string();
    res.chunked(chunked_);
    std::ostringstream header;
    header << res.base();
    source_ = std::move(source);
    stream_out_ = std::move(header).str();
    stream_ending_ = false;
    stream_writing_ = true;
    Tcp().expires_after(options_.write_timeout);
    asio::async_write(stream_, asio::buffer(stream_out_),
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        self->server_->in_flight.fetch_sub(1, std::memory_order_relaxed);
                        self->stream_writing_ = false;
                        if (ec) return self->EndStream();
                        std::weak_ptr<Session> weak = self;
                        self->source_->Start([weak] {
                          if (auto s = weak.lock()) asio::post(s->stream_.get_executor(), [s] { s->PumpStream(); });
                        });
                        self->WatchStreamClient();
                        self->PumpStream();
                      });
  }

  void PumpStream() {
    if (!source_ || stream_writing_ || stream_ending_) return;
    std::string piece;
    const BodySource::Next next = source_->Pull(&piece);
    stream_ending_ = next == BodySource::Next::kEnd;
    stream_out_.clear();
    if (!piece.empty()) {
      if (chunked_) stream_out_ = fmt::format("{:x}\r\n", piece.size());
      stream_out_ += piece;
      if (chunked_) stream_out_ += "\r\n";
    }
    if (stream_ending_ && chunked_) stream_out_ += "0\r\n\r\n";
    if (stream_out_.empty()) {
      if (stream_ending_) FinishStream();  // HTTP/1.0 with nothing left to send.
      return;
    }
    stream_writing_ = true;
    Tcp().expires_after(options_.write_timeout);
    asio::async_write(stream_, asio::buffer(stream_out_),
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        self->stream_writing_ = false;
                        if (ec) return self->EndStream();
                        if (self->stream_ending_) return self->FinishStream();
                        self->PumpStream();
                      });
  }

  // A client that closes its end while a stream is sent is gone: the stream ends
  // then, not at its next write. A client sends nothing on an event stream: one that
  // does ends it too.
  void WatchStreamClient() {
    Tcp().socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this()](const beast::error_code& ec) {
      if (!self->source_ || ec == asio::error::operation_aborted) return;
      char c;
      const ssize_t n = ::recv(self->Tcp().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !ec) return self->WatchStreamClient();
      self->EndStream();
    });
  }

  // The source ended its body: the connection goes on as after any response.
  void FinishStream() {
    source_.reset();
    beast::error_code ignored;
    Tcp().socket().cancel(ignored);  // The watch.
    stream_out_ = std::string();
    if (!keep_alive_) return LingerAndClose();
    AwaitRequest();
  }

  // The stream broke off (the client went, a write failed or timed out).
  void EndStream() {
    if (!source_) return;
    std::shared_ptr<BodySource> source = std::move(source_);
    source->Stop();
    Close();
  }

  // Closing a socket with unread input sends a reset, and a reset makes the peer's
  // kernel drop the response it has not read yet: a client whose request was
  // refused before its body (413, 400, 431) would see "connection reset" instead
  // of the problem. So the send side is shut (the peer reads the answer, then
  // EOF) and input is read and discarded until the peer closes, for kLinger at
  // most.
  void LingerAndClose() {
    if constexpr (kTls) {
      // A read is still out (ReadWhileAwaiting): no second one may start beside it.
      if (watch_reading_) return Close();
      // close_notify first, so that the client tells a complete answer from a cut one;
      // then the same half-close as over TCP, beneath TLS.
      Tcp().expires_after(kLinger);
      stream_.async_shutdown([self = this->shared_from_this()](const beast::error_code&) { self->LingerTcp(); });
    } else {
      LingerTcp();
    }
  }

  void LingerTcp() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_until_ = std::chrono::steady_clock::now() + kLinger;
    Discard();
  }

  void Discard() {
    Tcp().expires_at(linger_until_);
    buffer_.clear();
    Tcp().async_read_some(buffer_.prepare(kFirstRead),
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return self->Close();
                            self->Discard();
                          });
  }

  // The socket became readable while a response is pending: either the client
  // closed (EOF) or it pipelined another request, which stays in the kernel buffer
  // for the next read.
  void OnReadable(const beast::error_code& ec) {
    if (!watching_ || ec == asio::error::operation_aborted) return;
    watching_ = false;
    char c;
    ssize_t n = ::recv(Tcp().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if constexpr (kTls) {
      // Over TLS a client that leaves sends close_notify before its FIN: bytes that
      // only the TLS layer can tell from a pipelined request.
      if (n > 0) return ReadWhileAwaiting();
    }
    if (n > 0) return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !ec) return;
    ClientGone();
  }

  void ClientGone() {
    auto fn = std::move(gone_fn_);
    gone_fn_ = nullptr;
    if (fn) fn();
  }

  // TLS only: reads what arrived while the request waits for its answer. The end of
  // the stream is the client gone; data is its next request, kept in buffer_ for
  // AwaitRequest, which waits for this read to end. A response may be written
  // meanwhile: a TLS stream takes one read and one write at once.
  void ReadWhileAwaiting() {
    watch_reading_ = true;
    stream_.async_read_some(buffer_.prepare(kFirstRead),
                            [self = this->shared_from_this()](const beast::error_code& ec, std::size_t n) {
                              self->watch_reading_ = false;
                              if (self->watch_deadline_) self->watch_deadline_->cancel();
                              self->buffer_.commit(n);
                              if (ec) {
                                if (self->awaiting_) return self->ClientGone();
                                return self->Close();
                              }
                              if (self->resume_after_watch_) {
                                self->resume_after_watch_ = false;
                                self->AwaitRequest();
                              }
                            });
  }

  void Close() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().socket().close(ignored);
  }

  // Over TLS the stream is built on what this context holds: it goes after the stream.
  const std::shared_ptr<asio::ssl::context> tls_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // Replaces parser_ for a body that goes to disk (Api::PlanUpload).
  std::optional<http::request_parser<UploadBody>> upload_parser_;
  std::uint64_t body_limit_ = 0;     // Of the request being read.
  std::optional<TokenBucket> rate_;  // connection_rate, when set.
  std::optional<HttpResponse> response_;
  std::optional<http::response_serializer<ResponseBody>> serializer_;  // Refers to *response_.
  HttpServer* server_;
  Api* api_;
  const HttpServerOptions options_;
  HttpMetrics* const metrics_;
  const unsigned shard_;
  // Of the request being answered, for its metrics: its route (HttpMetrics::RouteOf;
  // -1 until its header is read), method and when its header was read.
  int route_ = -1;
  http::verb method_ = http::verb::unknown;
  std::chrono::steady_clock::time_point request_began_;
  Caller caller_;  // Who the request being read acts for (Api::Screen).
  // X-Request-Id: the client's (AccessLog::Acceptable), or one the access log made;
  // echoed in the response. What the access log records: only with one.
  AccessLog* const access_log_;
  std::string request_id_;
  std::string remote_;
  std::string log_method_;
  std::string log_target_;
  std::string log_agent_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool head_ = false;      // The request being answered is HEAD.
  bool awaiting_ = false;  // A request was read and not yet answered.
  bool watching_ = false;  // An async_wait for client EOF is pending.
  // TLS: a read of what the client sent while awaiting its answer is out, and
  // AwaitRequest was called meanwhile (ReadWhileAwaiting).
  bool watch_reading_ = false;
  bool resume_after_watch_ = false;
  std::optional<asio::steady_timer> watch_deadline_;  // Bounds that read once answered.
  std::function<void()> gone_fn_;
  // A streamed response (StartStream): its source, the bytes being written, and
  // whether they are the last.
  std::shared_ptr<BodySource> source_;
  std::string stream_out_;
  bool chunked_ = true;
  bool stream_writing_ = false;
  bool stream_ending_ = false;
  std::chrono::steady_clock::time_point linger_until_;
};

}  // namespace

ErrorOr<tcp::endpoint> ParseListenAddress(const std::string& address) {
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

std::int64_t DefaultMaxConnections(std::uint64_t nofile) {
  const std::uint64_t reserve = std::max<std::uint64_t>(64, nofile / 8);
  const std::uint64_t n = nofile > reserve ? nofile - reserve : 0;
  return static_cast<std::int64_t>(std::clamp<std::uint64_t>(n, 16, std::uint64_t{1} << 40));
}

HttpServer::HttpServer(Api* api, HttpServerOptions options, HttpMetrics* metrics, AccessLog* access_log)
    : api_(api), options_(options), metrics_(metrics), access_log_(access_log) {
  if (options_.threads == 0) options_.threads = 1;
  if (options_.max_connections <= 0) options_.max_connections = 1;
  for (unsigned i = 0; i < options_.threads; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
  Problem p = MakeProblem(http::status::service_unavailable, "too-many-connections", "Too many connections",
                          "the server has max_connections (" + std::to_string(options_.max_connections) +
                              ") connections open; retry later or reuse a keep-alive connection");
  p.retry_after_s = 1;
  const std::string body = ProblemBody(p);
  refusal_ =
      "HTTP/1.1 503 Service Unavailable\r\nServer: offload\r\n"
      "Content-Type: application/problem+json\r\nX-Content-Type-Options: nosniff\r\n"
      "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
}

HttpServer::~HttpServer() = default;

ErrorOr<tcp::endpoint> HttpServer::Listen(const std::string& address) {
  auto ep = ParseListenAddress(address);
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
  accept_timer_ = std::make_unique<asio::steady_timer>(*contexts_[0]);
  Accept();
  return bound;
}

void HttpServer::Accept() {
  const unsigned shard = static_cast<unsigned>(next_context_++ % contexts_.size());
  acceptor_->async_accept(*contexts_[shard], [this, shard](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (ec) {
      // Out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the connection stays
      // queued and the next accept fails at once: wait before trying again.
      // Anything else (a client that reset before we took it) concerns only that
      // connection: go on at once.
      const bool resources = ec == asio::error::no_descriptors || ec.value() == ENFILE ||
                             ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
      const std::chrono::milliseconds delay = backoff_.OnFailure(ec.message());
      LogAcceptTrouble();
      if (!resources) return Accept();
      accept_timer_->expires_after(delay);
      accept_timer_->async_wait([this](const beast::error_code& tec) {
        if (tec || !acceptor_->is_open()) return;
        Accept();
      });
      return;
    }
    backoff_.OnSuccess();
    if (sessions.load(std::memory_order_relaxed) >= options_.max_connections) {
      metrics_->ConnectionRefused(0);
      Refuse(std::move(socket));
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      std::shared_ptr<asio::ssl::context> tls;
      {
        MutexLock lock(&tls_mu_);
        tls = tls_;
      }
      if (tls) {
        std::make_shared<Session<TlsStream>>(std::move(socket), std::move(tls), this, api_, options_, metrics_, shard,
                                             access_log_)
            ->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), nullptr, this, api_, options_, metrics_, shard,
                                                     access_log_)
            ->Start();
      }
    }
    Accept();
  });
}

void HttpServer::Refuse(tcp::socket socket) {
  // One non-blocking send into an empty socket buffer: it fits, and if it does not
  // (the peer is gone) nothing waits for it.
  (void)::send(socket.native_handle(), refusal_.data(), refusal_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  backoff_.OnRefused();
  LogAcceptTrouble();
}

void HttpServer::LogAcceptTrouble() {
  if (auto line = backoff_.TakeLogLine(AcceptBackoff::Clock::now())) {
    spdlog::warn("accept: {} (max_connections {}, {} open)", *line, options_.max_connections,
                 sessions.load(std::memory_order_relaxed));
  }
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
    if (accept_timer_) accept_timer_->cancel();
  });
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& ctx : contexts_) ctx->stop();
}

}  // namespace offload
