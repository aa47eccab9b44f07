// HttpServer: Boost.Beast HTTP/1.1 with keep-alive on a pool of I/O threads.
//
// Each I/O thread runs its own io_context; a connection lives on one of them for its
// whole life, so a session needs no strand and no lock. The acceptor runs on the
// first. A connection is read in stages, each under its own deadline: idle (waiting
// for a request's first byte, idle_timeout), header (header_timeout), body (no
// progress for header_timeout), then the request waits for its answer as long as
// it asked, and the response is written piece by piece, each piece re-arming
// write_timeout. Request handling is delegated to Api, which never blocks: job work runs on
// the executors' threads.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/defaults.h"
#include "http/accept_backoff.h"
#include "util/error.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace boost::asio::ssl {
class context;
}

namespace offload {

class Api;
class AccessLog;
class HttpMetrics;

// Everything here comes from ServerConfig (docs/config.md names the same keys).
struct HttpServerOptions {
  unsigned threads = 1;
  // Larger request bodies get 413 and the connection is closed.
  std::int64_t max_body = kDefaultMaxBody;
  // Live sessions at most. Past it a new connection is accepted, sent a fixed 503
  // and closed at once: cheap, and the client learns why. main derives the
  // default from RLIMIT_NOFILE (DefaultMaxConnections).
  std::int64_t max_connections = 1024;
  // Between requests on a keep-alive connection (and before a new connection's
  // first byte). Short enough that idle clients do not hoard fds.
  std::chrono::milliseconds idle_timeout{kDefaultIdleTimeout};
  // From a request's first byte until its header is complete (a slowloris bound),
  // and the longest a request body may make no progress.
  std::chrono::milliseconds header_timeout{kDefaultHeaderTimeout};
  // A response write that makes no progress this long drops the connection: a
  // client that stopped reading releases its response (maybe a large result). A
  // slow client that keeps reading is never dropped.
  std::chrono::milliseconds write_timeout{kDefaultWriteTimeout};
  // Requests a second one connection may send; past it 429 and close. 0: no limit.
  double connection_rate = 0;
};

// max_connections for an open-file limit of `nofile`: the limit less a reserve for
// the store, the workers' and commands' pipes, the listener and the io_contexts,
// max(64, nofile / 8). 1024 -> 896. At least 16.
std::int64_t DefaultMaxConnections(std::uint64_t nofile);

// "HOST:PORT" or "[V6]:PORT" (HOST an IP address, or localhost) as an endpoint.
ErrorOr<boost::asio::ip::tcp::endpoint> ParseListenAddress(const std::string& address);

// Construct, Listen, Run (blocks until Stop). Stop is thread-safe.
// Owns the I/O threads: Run starts all but one, runs the first io_context on the
// caller's thread, and joins them before it returns. One lock, tls_mu_, over the TLS
// context a reload swaps; the counters other threads read are atomics; the rest is
// constant after Listen or used on one thread.
class HttpServer {
 public:
  // Records its requests and connections into `metrics`, and logs each answered
  // request into `access_log` when there is one; both must outlive it.
  HttpServer(Api* api, HttpServerOptions options, HttpMetrics* metrics, AccessLog* access_log = nullptr);
  ~HttpServer();

  // Binds "HOST:PORT" or "[V6]:PORT". Returns the bound endpoint (port 0 resolved).
  ErrorOr<boost::asio::ip::tcp::endpoint> Listen(const std::string& address);
  // Runs the I/O threads; returns once Stop() has been called and they have ended.
  void Run();
  // Stops accepting, gives in-flight requests up to `grace` to be answered, then
  // ends the I/O threads.
  void Stop(std::chrono::milliseconds grace);
  // With a context, connections accepted from now on speak TLS with it (tls_cert,
  // tls_key); open ones keep the one they began with. Thread-safe.
  void SetTls(std::shared_ptr<boost::asio::ssl::context> tls) LOCKS_EXCLUDED(tls_mu_) {
    MutexLock lock(&tls_mu_);
    tls_ = std::move(tls);
  }
  // The first I/O context, for signal handling.
  boost::asio::io_context& main_context() { return *contexts_[0]; }

  // Requests read and not yet answered, across sessions.
  std::atomic<int> in_flight{0};
  // Live sessions: incremented when one is made, decremented in its destructor.
  // Declared before contexts_ so that it outlives the sessions they destroy.
  std::atomic<std::int64_t> sessions{0};

 private:
  void Accept();
  // At max_connections: a fixed 503 and close, without a session.
  void Refuse(boost::asio::ip::tcp::socket socket);
  void LogAcceptTrouble();

  Api* api_;
  HttpServerOptions options_;
  HttpMetrics* metrics_;
  AccessLog* access_log_;
  std::string refusal_;  // The whole 503 response Refuse sends; constant after construction.
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  // The acceptor, its back-off timer and backoff_: on contexts_[0]'s thread only.
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::steady_timer> accept_timer_;
  AcceptBackoff backoff_;
  std::atomic<std::size_t> next_context_{0};
  // A mutex, not std::atomic<std::shared_ptr> (libstdc++'s lock bit is invisible to
  // ThreadSanitizer); taken once per accepted connection.
  Mutex tls_mu_;
  std::shared_ptr<boost::asio::ssl::context> tls_ GUARDED_BY(tls_mu_);
};

}  // namespace offload
