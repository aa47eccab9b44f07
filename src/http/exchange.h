// Exchange: one HTTP request in flight, as the API handlers see it. The session
// implements it; handlers answer through it from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>

#include "http/response_body.h"

namespace offload {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestHeader = boost::beast::http::request_header<>;
// Responses own their body or share a job's immutable result bytes (response_body.h).
using HttpResponse = boost::beast::http::response<ResponseBody>;

class Exchange {
 public:
  virtual ~Exchange() = default;

  // The single-threaded executor the session runs on. Timers for this request
  // belong there.
  virtual boost::asio::any_io_executor executor() = 0;

  // Sends the response; the first call wins, later ones are ignored. Thread-safe.
  virtual void Respond(HttpResponse response) = 0;

  // Calls `fn` on executor() if the client closes the connection before Respond.
  // REQUIRES: called on executor().
  virtual void OnClientGone(std::function<void()> fn) = 0;
};

}  // namespace offload
