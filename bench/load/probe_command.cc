// offload-load probe: open-loop GET at a fixed rate.
//
// Request i is due at t0 + i/R whatever happened to the ones before it, and its
// latency runs from that scheduled time, not from when it was really sent: a slow
// answer that holds a connection, or a client that falls behind, shows up in the
// figures instead of silently lowering the rate ("coordinated omission"). Several
// connections carry the requests so that one slow answer does not hold back the
// next send; requests that find every connection busy wait in a queue, and that
// wait counts too.
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <deque>
#include <iostream>
#include <vector>

#include "closed_loop.h"
#include "commands.h"
#include "histogram.h"
#include "job_codec.h"
#include "report.h"

namespace offload::bench {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// Lives on the calling thread's io_context.
class OpenLoop {
 public:
  OpenLoop(const Target& target, int connections, double rate, std::int64_t total, std::string path)
      : io_(1),
        timer_(io_),
        guard_(io_),
        period_ns_(static_cast<std::int64_t>(1e9 / rate)),
        total_(total),
        path_(std::move(path)) {
    for (int i = 0; i < connections; ++i) {
      conns_.push_back(std::make_shared<Connection>(io_, target.endpoint, target.header_lines));
    }
  }

  void Run() {
    int pending = static_cast<int>(conns_.size());
    for (auto& c : conns_) {
      c->Connect(std::chrono::seconds(10), [this, c, &pending](boost::system::error_code ec) {
        if (ec) ++connect_errors_;
        idle_.push_back(c);
        if (--pending == 0) Start();
      });
    }
    io_.run();
  }

  LatencyHistogram latency;
  std::int64_t status_200 = 0;
  std::int64_t other_status = 0;
  std::int64_t errors = 0;
  std::int64_t connect_errors_ = 0;
  std::int64_t max_send_lag_ns = 0;  // How late the client sent, at worst.
  std::int64_t sent = 0;
  double elapsed_s = 0;

 private:
  void Start() {
    t0_ = Clock::now() + std::chrono::milliseconds(1);
    // Whatever happens, stop well after the last request was due.
    guard_.expires_at(Due(total_) + std::chrono::seconds(35));
    guard_.async_wait([this](boost::system::error_code ec) {
      if (!ec) io_.stop();
    });
    Arm();
  }

  Clock::time_point Due(std::int64_t i) const { return t0_ + std::chrono::nanoseconds(i * period_ns_); }

  void Arm() {
    timer_.expires_at(Due(next_));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      const auto now = Clock::now();
      while (next_ < total_ && Due(next_) <= now) due_.push_back(Due(next_++));
      Drain();
      if (next_ < total_) Arm();
    });
  }

  void Drain() {
    while (!due_.empty() && !idle_.empty()) {
      auto conn = idle_.back();
      idle_.pop_back();
      const Clock::time_point scheduled = due_.front();
      due_.pop_front();
      max_send_lag_ns = std::max(max_send_lag_ns, (Clock::now() - scheduled).count());
      ++sent;
      conn->Send(http::verb::get, path_, {}, std::chrono::seconds(30), {}, [this, conn, scheduled](Reply&& reply) {
        const auto now = Clock::now();
        if (reply.error) {
          ++errors;
        } else {
          latency.Record((now - scheduled).count());
          if (reply.status == 200)
            ++status_200;
          else
            ++other_status;
        }
        idle_.push_back(conn);
        Drain();
        if (next_ == total_ && due_.empty() && idle_.size() == conns_.size()) Finish(now);
      });
    }
  }

  void Finish(Clock::time_point now) {
    elapsed_s = std::chrono::duration<double>(now - t0_).count();
    timer_.cancel();
    guard_.cancel();
    for (auto& c : conns_) c->Close();
  }

  asio::io_context io_;
  asio::steady_timer timer_;
  asio::steady_timer guard_;
  const std::int64_t period_ns_;
  const std::int64_t total_;
  const std::string path_;
  std::vector<std::shared_ptr<Connection>> conns_;
  std::vector<std::shared_ptr<Connection>> idle_;
  std::deque<Clock::time_point> due_;
  Clock::time_point t0_;
  std::int64_t next_ = 0;
};

}  // namespace

int RunProbe(const LoadOptions& o) {
  Target target;
  std::string error;
  if (!ResolveTarget(o.url, &target, &error)) {
    std::cerr << "offload-load: " << error << "\n";
    return 1;
  }
  if (o.rate <= 0 || o.rate > 1e6) {
    std::cerr << "offload-load: --rate must be in (0, 1000000]\n";
    return 1;
  }
  std::string path = o.path.empty() ? "/healthz" : o.path;
  std::string probed_status;
  if (o.path.empty() && !o.task.empty()) {
    // Probe a job of our own: submitted now, so it sits wherever the queue is.
    const std::string body = SubmitBody(o.task, o.input, &error);
    if (body.empty()) {
      std::cerr << "offload-load: --input " << error << "\n";
      return 1;
    }
    Reply r = FetchOnce(target, http::verb::post, "/v1/jobs", body, std::chrono::seconds(30));
    auto job = r.error ? std::nullopt : ReadJob(r.body);
    if (!job || (r.status != 202 && r.status != 200)) {
      std::cerr << "offload-load: cannot submit the job to probe: "
                << (r.error ? r.error.message() : "status " + std::to_string(r.status) + " " + r.body) << "\n";
      return 1;
    }
    path = "/v1/jobs/" + job->id;
    probed_status = job->status;
  }
  const auto total = static_cast<std::int64_t>(o.rate * o.duration_s);
  if (total < 1) {
    std::cerr << "offload-load: --rate times -d must be at least one request\n";
    return 1;
  }
  OpenLoop loop(target, std::max(1, o.concurrency), o.rate, total, path);
  loop.Run();

  json::object r;
  r["path"] = path;
  if (!probed_status.empty()) r["probed_job_status"] = probed_status;
  r["rate_per_s"] = o.rate;
  r["connections"] = o.concurrency;
  r["scheduled"] = total;
  r["sent"] = loop.sent;
  r["answered"] = static_cast<std::int64_t>(loop.latency.count());
  r["achieved_per_s"] = loop.elapsed_s > 0 ? static_cast<double>(loop.latency.count()) / loop.elapsed_s : 0.0;
  r["status_200"] = loop.status_200;
  r["non_200"] = loop.other_status;
  r["errors"] = loop.errors;
  AddLatencies(&r, "latency", loop.latency, true);
  r["max_send_lag_ms"] = static_cast<double>(loop.max_send_lag_ns) / 1e6;
  PrintReport("probe", r, o.json);
  return loop.latency.count() > 0 ? 0 : 1;
}

}  // namespace offload::bench
