// offload-load e2e: submit N jobs, then long-poll every one until it finishes. With
// --also-url, the submits go to several nodes of one cluster.
//
// The finish rate uses the server's finished_at of the last job, not the moment the
// client learned of it: the wait phase only collects the answers and would otherwise
// add the time to fetch N job objects to the figure. The wait phase runs on one
// thread for the same reason: its speed is not measured.
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <iostream>
#include <vector>

#include "closed_loop.h"
#include "commands.h"
#include "histogram.h"
#include "job_codec.h"
#include "job_waiter.h"
#include "report.h"

namespace offload::bench {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

double WallMillisNow() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct SubmitPhase {
  std::vector<std::string> ids;
  std::int64_t rejected = 0;
  std::int64_t errors = 0;
  LatencyHistogram latency;
  LoopTimes times;
};

class SubmitAll final : public Workload {
 public:
  SubmitAll(std::string_view body, std::atomic<std::int64_t>* budget, SubmitPhase* out)
      : body_(body), budget_(budget), out_(out) {}
  bool Next(Request* r) override {
    if (budget_->fetch_sub(1, std::memory_order_relaxed) <= 0) return false;
    r->method = http::verb::post;
    r->target = "/v1/jobs";
    r->body = body_;
    return true;
  }
  void OnReply(const Request&, Reply&& reply, std::int64_t ns) override {
    if (reply.error) {
      ++out_->errors;
      return;
    }
    out_->latency.Record(ns);
    auto id = reply.status == 202 || reply.status == 200 ? StringField(reply.body, "id") : std::nullopt;
    if (id) {
      out_->ids.emplace_back(*id);
    } else {
      ++out_->rejected;
    }
  }

 private:
  std::string_view body_;
  std::atomic<std::int64_t>* budget_;
  SubmitPhase* out_;
};

}  // namespace

int RunE2e(const LoadOptions& o) {
  std::vector<Target> targets(1 + o.also_urls.size());
  std::string error;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (!ResolveTarget(i == 0 ? o.url : o.also_urls[i - 1], &targets[i], &error)) {
      std::cerr << "offload-load: " << error << "\n";
      return 1;
    }
  }
  const Target& target = targets[0];
  const std::string body = SubmitBody(o.task, o.input, &error);
  if (body.empty()) {
    std::cerr << "offload-load: --input " << error << "\n";
    return 1;
  }
  const std::int64_t n = o.count > 0 ? o.count : 1000;
  // One loop per thread and at least one per node, each on one node.
  const unsigned threads =
      std::max(static_cast<unsigned>(targets.size()), std::min<unsigned>(o.threads, o.concurrency));
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000));
  auto conns_of = [&](unsigned i) {
    return o.concurrency / static_cast<int>(threads) + (i < o.concurrency % threads ? 1 : 0);
  };

  std::atomic<std::int64_t> budget{n};
  std::vector<SubmitPhase> submitted(threads);
  const double start_wall_ms = WallMillisNow();
  const auto start_steady = Clock::now();
  RunOnThreads(threads, [&](unsigned i) {
    SubmitAll w(body, &budget, &submitted[i]);
    submitted[i].times = RunClosedLoop(targets[i % targets.size()], std::max(1, conns_of(i)), deadline, w);
  });
  std::vector<std::string> ids;
  SubmitPhase all;
  Clock::time_point first = Clock::time_point::max(), last{};
  for (auto& s : submitted) {
    ids.insert(ids.end(), std::make_move_iterator(s.ids.begin()), std::make_move_iterator(s.ids.end()));
    all.rejected += s.rejected;
    all.errors += s.errors;
    all.latency.Merge(s.latency);
    if (s.times.first_send != Clock::time_point{}) first = std::min(first, s.times.first_send);
    last = std::max(last, s.times.last_reply);
  }
  const double submit_s = first < last ? std::chrono::duration<double>(last - first).count() : 0.0;

  const WaitOutcome waited = WaitForJobs(target, ids, o.concurrency, deadline);
  const auto all_known = Clock::now();
  std::int64_t succeeded = 0, failed = 0, last_finished_ms = 0;
  for (const auto& job : waited.jobs) {
    if (!job) continue;
    if (job->status == "succeeded")
      ++succeeded;
    else
      ++failed;
    last_finished_ms = std::max(last_finished_ms, job->finished_at_ms);
  }

  // From the client's first submit to the server's last finished_at (both wall
  // clocks of this machine; finished_at has millisecond resolution).
  const double first_send_wall_ms =
      start_wall_ms + std::chrono::duration<double, std::milli>(first - start_steady).count();
  const double span_s = first < last && last_finished_ms > 0
                            ? (static_cast<double>(last_finished_ms) - first_send_wall_ms) / 1000.0
                            : 0.0;
  json::object r;
  r["task"] = o.task;
  r["jobs"] = n;
  r["concurrency"] = o.concurrency;
  r["threads"] = threads;
  r["accepted"] = static_cast<std::int64_t>(ids.size());
  r["rejected"] = all.rejected;
  r["errors"] = all.errors;
  r["submit_s"] = submit_s;
  r["submit_per_s"] = submit_s > 0 ? static_cast<double>(ids.size()) / submit_s : 0.0;
  AddLatencies(&r, "submit_latency", all.latency, false);
  r["span_s"] = span_s;
  r["finished_per_s"] = span_s > 0 ? static_cast<double>(succeeded) / span_s : 0.0;
  r["succeeded"] = succeeded;
  r["failed"] = failed;
  // Accepted but never seen finished: forgotten (404) or still not final at the end.
  r["lost"] = waited.lost + waited.unfinished;
  r["lost_404"] = waited.lost;
  r["unfinished"] = waited.unfinished;
  r["client_all_known_s"] = first < all_known ? std::chrono::duration<double>(all_known - first).count() : 0.0;
  PrintReport("e2e", r, o.json);
  return succeeded > 0 ? 0 : 1;
}

}  // namespace offload::bench
