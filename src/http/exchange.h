// Exchange: one HTTP request in flight, as the API handlers see it. The session
// implements it; handlers answer through it from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <string>

#include "http/response_body.h"

namespace offload {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestHeader = boost::beast::http::request_header<>;
// Responses own their body or share a job's immutable result bytes (response_body.h).
using HttpResponse = boost::beast::http::response<ResponseBody>;

// The body of a response sent as it is produced: an event stream.
class BodySource {
 public:
  enum class Next {
    kMore,  // Call Pull again once this is written.
    kWait,  // Nothing more now: wake is called when there is.
    kEnd,   // The body is complete with what Pull gave.
  };
  virtual ~BodySource() = default;
  // Called once, on the session's executor, when the header is sent. `wake` asks the
  // session to Pull again: thread-safe, and harmless after the stream ended.
  virtual void Start(std::function<void()> wake) = 0;
  // On the session's executor: appends what is ready to *out.
  virtual Next Pull(std::string* out) = 0;
  // The stream ended before kEnd (the client went, a write failed): releases what
  // Start began. On the session's executor.
  virtual void Stop() = 0;
};

class Exchange {
 public:
  virtual ~Exchange() = default;

  // The single-threaded executor the session runs on. Timers for this request
  // belong there.
  virtual boost::asio::any_io_executor executor() = 0;

  // Sends the response; the first call wins, later ones are ignored. Thread-safe.
  virtual void Respond(HttpResponse response) = 0;

  // Sends `header` (its body ignored), then the body `source` produces, chunked, as it
  // produces it. Counts as the response: a Respond after it is ignored, as is this
  // after a Respond. Thread-safe.
  virtual void RespondStream(HttpResponse header, std::shared_ptr<BodySource> source) = 0;

  // Calls `fn` on executor() if the client closes the connection before Respond.
  // REQUIRES: called on executor().
  virtual void OnClientGone(std::function<void()> fn) = 0;
};

}  // namespace offload
