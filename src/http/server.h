// HttpServer: Boost.Beast HTTP/1.1 with keep-alive on a pool of I/O threads.
//
// Each I/O thread runs its own io_context; a connection lives on one of them for its
// whole life, so a session needs no strand and no lock. The acceptor runs on the
// first. Request handling is delegated to Api, which never blocks: job work runs on
// the executors' threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "util/error.h"

namespace offload {

class Api;

struct HttpServerOptions {
  unsigned threads = 1;
  std::int64_t max_body = 16 << 20;
};

// Construct, Listen, Run (blocks until Stop). Stop is thread-safe.
class HttpServer {
 public:
  HttpServer(Api* api, HttpServerOptions options);
  ~HttpServer();

  // Binds "HOST:PORT" or "[V6]:PORT". Returns the bound endpoint (port 0 resolved).
  ErrorOr<boost::asio::ip::tcp::endpoint> Listen(const std::string& address);
  // Runs the I/O threads; returns once Stop() has been called and they have ended.
  void Run();
  // Stops accepting, gives in-flight requests up to `grace` to be answered, then
  // ends the I/O threads.
  void Stop(std::chrono::milliseconds grace);
  // The first I/O context, for signal handling.
  boost::asio::io_context& main_context() { return *contexts_[0]; }

  // Requests read and not yet answered, across sessions.
  std::atomic<int> in_flight{0};

 private:
  void Accept();

  Api* api_;
  HttpServerOptions options_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::atomic<std::size_t> next_context_{0};
};

}  // namespace offload
