#include "job_waiter.h"

#include <deque>

namespace offload::bench {

namespace http = boost::beast::http;

namespace {

// Transport errors in a row after which the server is taken for gone: without this
// bound a dead server would be retried in a tight loop until the deadline.
constexpr int kMaxErrorsInARow = 200;

class WaitAll final : public Workload {
 public:
  WaitAll(const std::vector<std::string>& ids, WaitOutcome* out) : ids_(ids), out_(out) {
    out_->jobs.assign(ids.size(), std::nullopt);
  }
  bool Next(Request* r) override {
    if (errors_in_a_row_ >= kMaxErrorsInARow) return false;
    std::size_t i;
    if (!retry_.empty()) {
      i = retry_.front();
      retry_.pop_front();
    } else if (next_ < ids_.size()) {
      i = next_++;
    } else {
      return false;
    }
    r->method = http::verb::get;
    r->target = "/v1/jobs/" + ids_[i] + "?wait=30";
    r->body = {};
    r->timeout = std::chrono::seconds(40);
    r->tag = static_cast<std::int64_t>(i);
    ++outstanding_;
    return true;
  }
  void OnReply(const Request& req, Reply&& reply, std::int64_t) override {
    --outstanding_;
    const auto i = static_cast<std::size_t>(req.tag);
    if (reply.error || reply.status >= 500) {
      ++errors_in_a_row_;
      retry_.push_back(i);
      return;
    }
    errors_in_a_row_ = 0;
    if (reply.status == 404) {
      ++out_->lost;
      return;
    }
    auto job = ReadJob(reply.body);
    if (!job || !IsFinalStatus(job->status)) {
      retry_.push_back(i);
      return;
    }
    out_->jobs[i] = std::move(*job);
  }
  std::size_t pending() const { return retry_.size() + outstanding_ + (ids_.size() - next_); }

 private:
  const std::vector<std::string>& ids_;
  WaitOutcome* out_;
  std::size_t next_ = 0;
  std::deque<std::size_t> retry_;
  std::size_t outstanding_ = 0;
  int errors_in_a_row_ = 0;
};

}  // namespace

WaitOutcome WaitForJobs(const Target& target, const std::vector<std::string>& ids, int connections,
                        Clock::time_point deadline) {
  WaitOutcome out;
  if (ids.empty()) return out;
  WaitAll w(ids, &out);
  RunClosedLoop(target, connections, deadline, w);
  out.unfinished = static_cast<std::int64_t>(w.pending());
  return out;
}

}  // namespace offload::bench
