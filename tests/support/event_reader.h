// EventReader: one Server-Sent Events stream (GET /v1/events, /v1/jobs/{id}/events)
// read as a client reads it, chunk by chunk; every read is bounded by its timeout.
// For the integration tests of the event streams, on one server or a cluster.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/job_helpers.h"

namespace offload::testing {

namespace sse {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using std::chrono::milliseconds;

struct Message {
  std::string id;
  std::string event;
  std::string data;
  json::object object() const { return ParseJson(data).value_or(json::object()).as_object(); }
};

// One event stream, read as it arrives. Every read is bounded by its timeout.
class EventReader {
 public:
  // `headers` are sent too (Authorization, for a server with [auth]).
  EventReader(unsigned short port, const std::string& target, const std::string& last_event_id = "",
              const Headers& headers = {}) {
    stream_.expires_after(milliseconds(10'000));
    beast::error_code ec;
    stream_.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    req.set(http::field::accept, "text/event-stream");
    if (!last_event_id.empty()) req.set("Last-Event-ID", last_event_id);
    for (const auto& [name, value] : headers) req.set(name, value);
    http::write(stream_, req, ec);
    if (ec) return;
    parser_.body_limit(boost::none);
    http::read_header(stream_, buffer_, parser_, ec);
    if (!ec) status_ = parser_.get().result_int();
  }

  unsigned status() const { return status_; }
  std::string header(http::field f) const { return std::string(parser_.get()[f]); }
  bool ended() const { return ended_; }

  // Reads until `until` holds for the messages read so far, the stream ends, or
  // `timeout` passes. Returns every message read since the stream began.
  const std::vector<Message>& ReadUntil(const std::function<bool(const std::vector<Message>&)>& until,
                                        milliseconds timeout = milliseconds(10'000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ended_ && !until(messages_) && std::chrono::steady_clock::now() < deadline) {
      stream_.expires_at(deadline);
      beast::error_code ec;
      http::read_some(stream_, buffer_, parser_, ec);
      if (ec || parser_.is_done()) ended_ = true;
      Split();
    }
    return messages_;
  }
  const std::vector<Message>& ReadToEnd(milliseconds timeout = milliseconds(10'000)) {
    return ReadUntil([](const std::vector<Message>&) { return false; }, timeout);
  }
  std::string last_id() const {
    std::string id;
    for (const Message& m : messages_) {
      if (!m.id.empty()) id = m.id;
    }
    return id;
  }
  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  // Cuts the messages complete in the body so far (each ends with a blank line).
  void Split() {
    std::string& body = parser_.get().body();
    std::size_t end;
    while ((end = body.find("\n\n", used_)) != std::string::npos) {
      Message m;
      std::size_t at = used_;
      while (at < end) {
        std::size_t eol = body.find('\n', at);
        if (eol == std::string::npos || eol > end) eol = end;
        const std::string line = body.substr(at, eol - at);
        if (line.rfind("id: ", 0) == 0) m.id = line.substr(4);
        if (line.rfind("event: ", 0) == 0) m.event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) m.data = line.substr(6);
        at = eol + 1;
      }
      if (!m.event.empty()) messages_.push_back(std::move(m));
      used_ = end + 2;
    }
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  unsigned status_ = 0;
  bool ended_ = false;
  std::size_t used_ = 0;
  std::vector<Message> messages_;
};

inline std::vector<std::string> StatusesOf(const std::vector<Message>& messages, const std::string& id) {
  std::vector<std::string> out;
  for (const Message& m : messages) {
    if (m.event == "status" && Field(m.object(), "id") == id) out.push_back(Field(m.object(), "status"));
  }
  return out;
}

inline auto HasStatus(const std::string& id, const std::string& status) {
  return [id, status](const std::vector<Message>& messages) {
    for (const std::string& s : StatusesOf(messages, id)) {
      if (s == status) return true;
    }
    return false;
  };
}

}  // namespace sse

using sse::EventReader;
using sse::HasStatus;
using sse::Message;
using sse::StatusesOf;

}  // namespace offload::testing
