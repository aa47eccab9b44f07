// offload-load subscribe: N clients of GET /v1/events (Server-Sent Events) for S
// seconds, each reading as fast as it can and counting the messages. A stream the
// server ends (a subscriber that fell behind its buffer is dropped) is opened again
// after 2 s, as a browser's EventSource does after the server's `retry: 2000`.
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "report.h"

namespace offload::bench {

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

struct Totals {
  std::int64_t messages = 0;
  std::int64_t bytes = 0;
  std::int64_t ended = 0;  // Streams the server ended (or that broke) before the run did.
  std::int64_t connect_errors = 0;
};

// One subscriber; lives on the run's io_context.
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  Subscriber(asio::io_context& io, const Target& target, const std::string& path, Totals* totals)
      : io_(io), target_(target), path_(path), totals_(totals), timer_(io) {}

  void Open() {
    stream_ = std::make_unique<boost::beast::tcp_stream>(io_);
    stream_->async_connect(target_.endpoint, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) {
        ++self->totals_->connect_errors;
        return self->Again();
      }
      self->request_ =
          "GET " + self->path_ + " HTTP/1.1\r\n" + self->target_.header_lines + "Accept: text/event-stream\r\n\r\n";
      asio::async_write(*self->stream_, asio::buffer(self->request_),
                        [self](boost::system::error_code ec, std::size_t) {
                          if (ec) return self->Ended();
                          self->Read();
                        });
    });
  }

  void Stop() {
    stopped_ = true;
    timer_.cancel();
    if (stream_) stream_->close();
  }

 private:
  void Read() {
    stream_->async_read_some(asio::buffer(buf_),
                             [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                               if (ec) return self->Ended();
                               self->totals_->bytes += static_cast<std::int64_t>(n);
                               // Messages end with a blank line; a split "\n\n" across reads is carried over.
                               for (std::size_t i = 0; i < n; ++i) {
                                 if (self->buf_[i] == '\n' && self->last_ == '\n') ++self->totals_->messages;
                                 self->last_ = self->buf_[i];
                               }
                               self->Read();
                             });
  }

  void Ended() {
    if (stopped_) return;
    ++totals_->ended;
    Again();
  }

  void Again() {
    if (stopped_) return;
    timer_.expires_after(std::chrono::seconds(2));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && !self->stopped_) self->Open();
    });
  }

  asio::io_context& io_;
  const Target& target_;
  const std::string& path_;
  Totals* totals_;
  asio::steady_timer timer_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
  std::string request_;
  char buf_[16384];
  char last_ = 0;
  bool stopped_ = false;
};

}  // namespace

int RunSubscribe(const LoadOptions& o) {
  Target target;
  std::string error;
  if (!ResolveTarget(o.url, &target, &error)) {
    std::cerr << "offload-load: " << error << "\n";
    return 1;
  }
  asio::io_context io(1);
  Totals totals;
  std::vector<std::shared_ptr<Subscriber>> subs;
  for (int i = 0; i < o.concurrency; ++i) {
    subs.push_back(std::make_shared<Subscriber>(io, target, o.path, &totals));
    subs.back()->Open();
  }
  asio::steady_timer end(io);
  end.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(o.duration_s * 1000)));
  end.async_wait([&](boost::system::error_code) {
    for (auto& s : subs) s->Stop();
  });
  io.run();

  json::object r;
  r["subscribers"] = o.concurrency;
  r["duration_s"] = o.duration_s;
  r["messages"] = totals.messages;
  r["bytes"] = totals.bytes;
  r["streams_ended"] = totals.ended;
  r["connect_errors"] = totals.connect_errors;
  PrintReport("subscribe", r, o.json);
  return totals.connect_errors < o.concurrency ? 0 : 1;
}

}  // namespace offload::bench
