// What every offload-load subcommand is told on its command line, and the server it
// talks to.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace offload::bench {

struct LoadOptions {
  std::string url = "http://127.0.0.1:8080";
  // e2e: further nodes of a cluster; the submits are spread over `url` and these.
  std::vector<std::string> also_urls;
  std::string task = "noop";
  std::string input = "null";  // JSON text: the jobs' input.
  int concurrency = 64;        // Connections (closed loop: requests in flight).
  double duration_s = 10;      // submit, probe: how long to send.
  std::int64_t count = 0;      // -n: how many jobs/requests; 0 for submit: no limit but -d.
  unsigned threads = 1;        // Client I/O threads. The server under test shares the cores.
  bool json = false;
  double prefer_wait_s = 0;  // submit: send "Prefer: wait=N"; 0: none.
  double rate = 1000;        // probe: requests per second.
  std::string path;          // probe: what to GET when --task is not given; subscribe: the stream.
  std::string hold_input;    // gap: input of a job that holds the resource while the rest queue.
  double timeout_s = 300;    // e2e, gap, map: bound on the whole run.
  std::int64_t chunk = 0;    // map: elements per chunk; 0: the server sizes chunks itself.
};

// Where to connect: from an http://HOST:PORT URL (HOST an IP address or localhost).
struct Target {
  boost::asio::ip::tcp::endpoint endpoint;
  // The header lines every request carries, each ending in CRLF: Host, and
  // Authorization when $OFFLOAD_TOKEN is set (a server with [auth]).
  std::string header_lines;
};

// Returns false and fills `error` when the URL is not http://HOST:PORT. Reads
// $OFFLOAD_TOKEN.
bool ResolveTarget(const std::string& url, Target* out, std::string* error);

}  // namespace offload::bench
