// offload-load submit: closed-loop POST /v1/jobs.
#include <atomic>
#include <boost/json.hpp>
#include <iostream>
#include <map>
#include <vector>

#include "closed_loop.h"
#include "commands.h"
#include "histogram.h"
#include "job_codec.h"
#include "report.h"

namespace offload::bench {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// Transport errors in a row after which a connection stops: a server that is gone
// would otherwise be retried in a tight loop until the deadline.
constexpr int kMaxErrorsInARow = 100;

struct SubmitStats {
  LatencyHistogram latency;
  std::int64_t status_202 = 0;
  std::int64_t status_200 = 0;
  std::int64_t errors = 0;
  std::map<unsigned, std::int64_t> other;  // Any other status -> count.
  LoopTimes times;
};

class SubmitWorkload final : public Workload {
 public:
  SubmitWorkload(std::string_view body, std::string_view prefer, std::chrono::milliseconds timeout,
                 std::atomic<std::int64_t>* budget, SubmitStats* stats)
      : body_(body), prefer_(prefer), timeout_(timeout), budget_(budget), stats_(stats) {}

  bool Next(Request* r) override {
    if (errors_in_a_row_ >= kMaxErrorsInARow) return false;
    if (budget_ && budget_->fetch_sub(1, std::memory_order_relaxed) <= 0) return false;
    r->method = http::verb::post;
    r->target = "/v1/jobs";
    r->body = body_;
    r->prefer = prefer_;
    r->timeout = timeout_;
    return true;
  }

  void OnReply(const Request&, Reply&& reply, std::int64_t latency_ns) override {
    if (reply.error) {
      ++stats_->errors;
      ++errors_in_a_row_;
      return;
    }
    errors_in_a_row_ = 0;
    stats_->latency.Record(latency_ns);
    if (reply.status == 202) {
      ++stats_->status_202;
    } else if (reply.status == 200) {
      ++stats_->status_200;
    } else {
      ++stats_->other[reply.status];
    }
  }

 private:
  std::string_view body_;
  std::string_view prefer_;
  std::chrono::milliseconds timeout_;
  std::atomic<std::int64_t>* budget_;
  SubmitStats* stats_;
  int errors_in_a_row_ = 0;
};

}  // namespace

int RunSubmit(const LoadOptions& o) {
  Target target;
  std::string error;
  if (!ResolveTarget(o.url, &target, &error)) {
    std::cerr << "offload-load: " << error << "\n";
    return 1;
  }
  const std::string body = SubmitBody(o.task, o.input, &error);
  if (body.empty()) {
    std::cerr << "offload-load: --input " << error << "\n";
    return 1;
  }
  const std::string prefer =
      o.prefer_wait_s > 0 ? "wait=" + json::serialize(json::value(o.prefer_wait_s)) : std::string();
  const auto timeout = std::chrono::milliseconds(30'000 + static_cast<std::int64_t>(o.prefer_wait_s * 1000));

  const unsigned threads = std::max(1u, std::min<unsigned>(o.threads, o.concurrency));
  std::atomic<std::int64_t> budget{o.count};
  std::vector<SubmitStats> stats(threads);
  const auto deadline = Clock::now() + std::chrono::microseconds(static_cast<std::int64_t>(o.duration_s * 1e6));
  RunOnThreads(threads, [&](unsigned i) {
    const int conns = o.concurrency / static_cast<int>(threads) + (i < o.concurrency % threads ? 1 : 0);
    SubmitWorkload w(body, prefer, timeout, o.count > 0 ? &budget : nullptr, &stats[i]);
    stats[i].times = RunClosedLoop(target, conns, deadline, w);
  });

  SubmitStats all;
  Clock::time_point first = Clock::time_point::max(), last{};
  std::int64_t connect_errors = 0;
  for (const auto& s : stats) {
    all.latency.Merge(s.latency);
    all.status_202 += s.status_202;
    all.status_200 += s.status_200;
    all.errors += s.errors;
    for (auto [code, n] : s.other) all.other[code] += n;
    if (s.times.first_send != Clock::time_point{}) first = std::min(first, s.times.first_send);
    last = std::max(last, s.times.last_reply);
    connect_errors += s.times.connect_errors;
  }
  const double elapsed_s = first < last ? std::chrono::duration<double>(last - first).count() : 0.0;
  const std::int64_t accepted = all.status_202 + all.status_200;
  std::int64_t other = 0;
  json::object other_statuses;
  for (auto [code, n] : all.other) {
    other += n;
    other_statuses[std::to_string(code)] = n;
  }

  json::object r;
  r["task"] = o.task;
  r["concurrency"] = o.concurrency;
  r["threads"] = threads;
  r["elapsed_s"] = elapsed_s;
  r["requests"] = static_cast<std::int64_t>(all.latency.count()) + all.errors;
  r["accepted"] = accepted;
  r["accepted_per_s"] = elapsed_s > 0 ? static_cast<double>(accepted) / elapsed_s : 0.0;
  r["status_202"] = all.status_202;
  r["status_200"] = all.status_200;
  r["non_202"] = all.status_200 + other;
  r["other_statuses"] = std::move(other_statuses);
  r["errors"] = all.errors;
  r["connect_errors"] = connect_errors;
  AddLatencies(&r, "latency", all.latency, false);
  PrintReport("submit", r, o.json);
  return accepted > 0 ? 0 : 1;
}

}  // namespace offload::bench
