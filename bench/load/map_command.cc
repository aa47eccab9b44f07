// offload-load map: one parallel-map job of N copies of an input, timed end to end.
//
// The POST carries "Prefer: wait=W", so a map that finishes within W s is answered
// with the finished job; otherwise the job is long-polled (GET ?wait=W) on the same
// keep-alive connection until it is final or --timeout passes. W is the time left,
// at most 60 s (the server's default max_wait; a lower one only means more polls).
//
// wall_s runs from sending the POST to receiving the finished job: it includes
// sending and parsing the N-element body and returning the N-element result, which
// is what a caller waits for. server_s is finished_at - started_at (millisecond
// resolution), the time the elements took to run once the parent started.
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <iostream>

#include "closed_loop.h"
#include "commands.h"
#include "job_codec.h"
#include "report.h"

namespace offload::bench {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

constexpr std::chrono::seconds kMaxWait{60};
// Transport errors in a row while polling after which the server is taken for gone.
constexpr int kMaxErrorsInARow = 20;

// Whole seconds left before `deadline`, between 1 and kMaxWait.
std::int64_t WaitSeconds(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now());
  return std::clamp<std::int64_t>(left.count(), 1, kMaxWait.count());
}

// The POST, then GETs of the same job until it is final. Calls on the loop's thread.
class MapRun final : public Workload {
 public:
  MapRun(std::string_view body, Clock::time_point deadline) : body_(body), deadline_(deadline) {}

  bool Next(Request* r) override {
    if (done_) return false;
    const std::int64_t wait = WaitSeconds(deadline_);
    r->timeout = std::chrono::seconds(wait + 30);
    if (id_.empty()) {
      prefer_ = "wait=" + std::to_string(wait);
      r->method = http::verb::post;
      r->target = "/v1/jobs";
      r->body = body_;
      r->prefer = prefer_;
      sent_ = Clock::now();
    } else {
      r->method = http::verb::get;
      r->target = "/v1/jobs/" + id_ + "?wait=" + std::to_string(wait);
      r->body = {};
      r->prefer = {};
      ++polls_;
    }
    return true;
  }

  void OnReply(const Request& req, Reply&& reply, std::int64_t) override {
    const bool post = req.method == http::verb::post;
    if (reply.error || reply.status >= 500) {
      // A POST that got no answer may or may not have been accepted: not retried.
      if (post || ++errors_in_a_row_ >= kMaxErrorsInARow) {
        Stop(reply.error ? reply.error.message() : std::to_string(reply.status) + " " + reply.body);
      }
      return;
    }
    errors_in_a_row_ = 0;
    if (post) post_status_ = reply.status;
    const bool ok = post ? reply.status == 200 || reply.status == 202 : reply.status == 200;
    auto job = ok ? ReadJob(reply.body) : std::nullopt;
    if (!job) return Stop(std::to_string(reply.status) + " " + reply.body);
    if (id_.empty()) id_ = job->id;
    if (IsFinalStatus(job->status)) {
      finished_ = Clock::now();
      final_body_ = std::move(reply.body);
      done_ = true;
    }
  }

  bool done() const { return done_; }
  const std::string& id() const { return id_; }
  const std::string& problem() const { return problem_; }
  const std::string& final_body() const { return final_body_; }
  unsigned post_status() const { return post_status_; }
  std::int64_t polls() const { return polls_; }
  double wall_s() const { return std::chrono::duration<double>(finished_ - sent_).count(); }

 private:
  void Stop(std::string problem) {
    problem_ = std::move(problem);
    done_ = true;
  }

  const std::string_view body_;
  const Clock::time_point deadline_;
  std::string prefer_;  // Outlives the request that points at it.
  std::string id_;
  bool done_ = false;
  std::string problem_;  // Set when it stopped without a final job.
  std::string final_body_;
  unsigned post_status_ = 0;
  std::int64_t polls_ = 0;
  int errors_in_a_row_ = 0;
  Clock::time_point sent_{}, finished_{};
};

}  // namespace

int RunMap(const LoadOptions& o) {
  Target target;
  std::string error;
  if (!ResolveTarget(o.url, &target, &error)) {
    std::cerr << "offload-load: " << error << "\n";
    return 1;
  }
  const std::int64_t n = o.count > 0 ? o.count : 1000;
  const std::string body = MapBody(o.task, o.input, n, o.chunk, &error);
  if (body.empty()) {
    std::cerr << "offload-load: --input " << error << "\n";
    return 1;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000));
  MapRun run(body, deadline);
  RunClosedLoop(target, 1, deadline, run);
  if (!run.done() || !run.problem().empty()) {
    std::cerr << "offload-load: map job " << (run.id().empty() ? "(not accepted)" : run.id()) << ": "
              << (run.done() ? run.problem() : "not finished within --timeout") << "\n";
    return 1;
  }

  // The finished job, parsed in full only now that the clock has stopped.
  boost::system::error_code ec;
  const json::value job = json::parse(run.final_body(), ec);
  const json::object* obj = ec ? nullptr : job.if_object();
  if (!obj) {
    std::cerr << "offload-load: the finished job is not a JSON object: " << run.final_body().substr(0, 200) << "\n";
    return 1;
  }
  const JobView view = ReadJob(run.final_body()).value_or(JobView{});
  const json::value* result = obj->if_contains("result");
  const std::int64_t result_elements =
      result && result->is_array() ? static_cast<std::int64_t>(result->get_array().size()) : -1;
  const double server_s = view.started_at_ms > 0 && view.finished_at_ms >= view.started_at_ms
                              ? static_cast<double>(view.finished_at_ms - view.started_at_ms) / 1000.0
                              : 0.0;
  const double wall_s = run.wall_s();
  const bool ok = view.status == "succeeded" && result_elements == n;
  if (view.status != "succeeded") {
    const json::value* err = obj->if_contains("error");
    std::cerr << "offload-load: map job " << view.id << " " << view.status << ": "
              << (err ? json::serialize(*err) : "no error") << "\n";
  } else if (!ok) {
    std::cerr << "offload-load: map job " << view.id << " succeeded with " << result_elements
              << " result elements, expected " << n << "\n";
  }

  json::object r;
  r["task"] = o.task;
  r["elements"] = n;
  r["chunk"] = o.chunk > 0 ? json::value(o.chunk) : json::value("adaptive");
  r["body_bytes"] = static_cast<std::int64_t>(body.size());
  r["status"] = view.status;
  r["post_status"] = run.post_status();
  r["polls"] = run.polls();
  r["wall_s"] = wall_s;
  r["server_s"] = server_s;
  r["elements_per_s"] = wall_s > 0 ? static_cast<double>(n) / wall_s : 0.0;
  // null when the run took under finished_at's millisecond resolution.
  r["server_elements_per_s"] = server_s > 0 ? json::value(static_cast<double>(n) / server_s) : json::value(nullptr);
  r["result_elements"] = result_elements;
  r["check"] = ok ? "ok" : "FAILED";
  PrintReport("map", r, o.json);
  return ok ? 0 : 1;
}

}  // namespace offload::bench
