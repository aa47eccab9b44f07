// offload-load gap: how long an exclusive resource sits idle between jobs.
//
// N jobs of one task are submitted one after another on one connection, so their
// submission order is known. With --hold-input, a first job of the same task holds
// the resource while they are submitted and is canceled once all are queued: then
// every gap measured is the server's hand-over from one job to the next, never the
// client's submit rate. From the jobs' started_at/finished_at (millisecond
// resolution) come the mean and max gap, a check that no two overlapped and that they
// started in submission order (FIFO). When the input has an integer "ms" (the sleep
// task), the span minus N times ms, per job, gives the mean hand-over cost with
// microsecond-level precision, sleep overshoot included.
#include <boost/json.hpp>
#include <iostream>
#include <vector>

#include "closed_loop.h"
#include "commands.h"
#include "job_codec.h"
#include "job_waiter.h"
#include "report.h"

namespace offload::bench {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

class SubmitInOrder final : public Workload {
 public:
  SubmitInOrder(std::string_view body, std::int64_t n, std::vector<std::string>* ids, std::int64_t* failures)
      : body_(body), n_(n), ids_(ids), failures_(failures) {}
  bool Next(Request* r) override {
    if (sent_ >= n_ || *failures_ > 0) return false;
    ++sent_;
    r->method = http::verb::post;
    r->target = "/v1/jobs";
    r->body = body_;
    return true;
  }
  void OnReply(const Request&, Reply&& reply, std::int64_t) override {
    auto id = !reply.error && reply.status == 202 ? StringField(reply.body, "id") : std::nullopt;
    if (!id) {
      ++*failures_;
      std::cerr << "offload-load: submit failed: "
                << (reply.error ? reply.error.message() : std::to_string(reply.status) + " " + reply.body) << "\n";
      return;
    }
    ids_->emplace_back(*id);
  }

 private:
  std::string_view body_;
  std::int64_t n_;
  std::int64_t sent_ = 0;
  std::vector<std::string>* ids_;
  std::int64_t* failures_;
};

std::optional<std::int64_t> NominalMs(const std::string& input) {
  boost::system::error_code ec;
  json::value v = json::parse(input, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::value* ms = v.get_object().if_contains("ms");
  if (!ms || !ms->is_int64()) return std::nullopt;
  return ms->get_int64();
}

}  // namespace

int RunGap(const LoadOptions& o) {
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
  const std::int64_t n = o.count > 0 ? o.count : 200;
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000));

  std::string hold_id;
  if (!o.hold_input.empty()) {
    const std::string hold_body = SubmitBody(o.task, o.hold_input, &error);
    if (hold_body.empty()) {
      std::cerr << "offload-load: --hold-input " << error << "\n";
      return 1;
    }
    Reply r = FetchOnce(target, http::verb::post, "/v1/jobs", hold_body, std::chrono::seconds(30));
    auto id = !r.error && r.status == 202 ? StringField(r.body, "id") : std::nullopt;
    if (!id) {
      std::cerr << "offload-load: cannot submit the holding job: "
                << (r.error ? r.error.message() : std::to_string(r.status) + " " + r.body) << "\n";
      return 1;
    }
    hold_id = std::string(*id);
  }

  std::vector<std::string> ids;
  std::int64_t failures = 0;
  SubmitInOrder submit(body, n, &ids, &failures);
  RunClosedLoop(target, 1, deadline, submit);
  if (!hold_id.empty()) {
    Reply r = FetchOnce(target, http::verb::delete_, "/v1/jobs/" + hold_id, {}, std::chrono::seconds(30));
    if (r.error || (r.status != 200 && r.status != 409)) {
      std::cerr << "offload-load: cannot cancel the holding job " << hold_id << ": "
                << (r.error ? r.error.message() : std::to_string(r.status)) << "\n";
      return 1;
    }
  }
  const WaitOutcome waited = WaitForJobs(target, ids, std::max(1, o.concurrency), deadline);

  // In submission order. A job that did not succeed, or has no timestamps, breaks
  // the chain: gaps are measured only between consecutive succeeded jobs.
  std::int64_t succeeded = 0, gaps = 0, overlaps = 0, out_of_order = 0;
  double gap_sum_ms = 0, gap_max_ms = 0;
  std::int64_t first_start = 0, last_finish = 0;
  const JobView* prev = nullptr;
  for (const auto& job : waited.jobs) {
    if (!job || job->status != "succeeded" || job->started_at_ms == 0 || job->finished_at_ms == 0) {
      prev = nullptr;
      continue;
    }
    ++succeeded;
    if (first_start == 0) first_start = job->started_at_ms;
    last_finish = std::max(last_finish, job->finished_at_ms);
    if (prev) {
      const auto gap = job->started_at_ms - prev->finished_at_ms;
      if (gap < 0) ++overlaps;
      if (job->started_at_ms < prev->started_at_ms) ++out_of_order;
      gap_sum_ms += static_cast<double>(gap);
      gap_max_ms = std::max(gap_max_ms, static_cast<double>(gap));
      ++gaps;
    }
    prev = &*job;
  }

  json::object r;
  r["task"] = o.task;
  r["jobs"] = n;
  r["held_first"] = !hold_id.empty();
  r["accepted"] = static_cast<std::int64_t>(ids.size());
  r["succeeded"] = succeeded;
  r["not_succeeded"] = static_cast<std::int64_t>(ids.size()) - succeeded;
  r["lost"] = waited.lost + waited.unfinished;
  r["total_s"] = static_cast<double>(last_finish - first_start) / 1000.0;
  r["gap_mean_ms"] = gaps > 0 ? gap_sum_ms / static_cast<double>(gaps) : 0.0;
  r["gap_max_ms"] = gap_max_ms;
  if (auto ms = NominalMs(o.input); ms && succeeded == n && n > 1) {
    // Span minus the nominal run times, shared among the n - 1 hand-overs.
    r["overhead_per_job_ms"] = static_cast<double>(last_finish - first_start - n * *ms) / static_cast<double>(n - 1);
  }
  r["overlaps"] = overlaps;
  r["out_of_order"] = out_of_order;
  r["check"] = overlaps == 0 && out_of_order == 0 && succeeded == n ? "ok" : "FAILED";
  PrintReport("gap", r, o.json);
  return overlaps == 0 && out_of_order == 0 && succeeded == n ? 0 : 1;
}

}  // namespace offload::bench
