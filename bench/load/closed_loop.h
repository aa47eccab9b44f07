// Closed-loop driving: a fixed set of keep-alive connections, each sending its next
// request as soon as the previous one is answered, until the workload has nothing
// more to send or the deadline passes.
//
// Threads: RunClosedLoop runs on the calling thread with its own single-threaded
// io_context; the Workload is called on that thread only. RunOnThreads runs one loop
// per thread, each with its own Workload, and joins them.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "connection.h"
#include "load_options.h"

namespace offload::bench {

using Clock = std::chrono::steady_clock;

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target;
  std::string_view body;    // Must outlive the loop.
  std::string_view prefer;  // Must outlive the loop. Empty: no Prefer header.
  std::chrono::milliseconds timeout{30'000};
  std::int64_t tag = 0;  // The workload's own reference (an index, say).
};

class Workload {
 public:
  virtual ~Workload() = default;
  // Fills the next request; false when there is none left (for now: the loop asks
  // again after each answer while others are in flight).
  virtual bool Next(Request* request) = 0;
  // `latency_ns` runs from the send to the end of the answer.
  virtual void OnReply(const Request& request, Reply&& reply, std::int64_t latency_ns) = 0;
};

struct LoopTimes {
  Clock::time_point first_send{};  // Zero when nothing was sent.
  Clock::time_point last_reply{};
  std::int64_t connect_errors = 0;
};

// Stops sending at `deadline`; answers still outstanding then are waited for up to
// their own timeout. REQUIRES: connections >= 1.
LoopTimes RunClosedLoop(const Target& target, int connections, Clock::time_point deadline, Workload& workload);

// Runs `body(thread_index)` on `threads` threads and joins them.
void RunOnThreads(unsigned threads, const std::function<void(unsigned)>& body);

// One request, answered or failed, on a fresh connection.
Reply FetchOnce(const Target& target, boost::beast::http::verb method, const std::string& path, std::string_view body,
                std::chrono::milliseconds timeout);

}  // namespace offload::bench
