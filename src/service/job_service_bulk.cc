// JobService's operations on jobs it picks itself: a retry of a finished job, and the
// cancel of every job that matches a filter (POST /v1/jobs/{id}/retry and
// POST /v1/jobs/cancel). Both are built on Get, Submit, List and Cancel (the retry by
// its caller), so that they hold in a cluster as those do.
#include <atomic>

#include "service/job_service.h"

namespace offload {

namespace {

// The jobs of one status are listed a page at a time, and the next page is read once
// every cancel of this one has answered.
constexpr std::size_t kCancelPage = 1000;

}  // namespace

ErrorOr<SubmitRequest> JobService::RetryOf(const JobRecord& old) {
  if (old.status != JobStatus::kFailed && old.status != JobStatus::kCanceled) {
    return MakeError(ErrorCode::kConflict, "job " + old.id + " is " + std::string(JobStatusName(old.status)) +
                                               ": only a failed or canceled job is retried");
  }
  if (!old.files.empty()) {
    return MakeError(
        ErrorCode::kConflict,
        "job " + old.id + " came with files, which are not kept for another run: submit it again with its files");
  }
  SubmitRequest again;
  again.task = old.task;
  again.input = old.input ? *old.input : boost::json::value(nullptr);
  again.priority = old.priority;
  again.timeout = Millis(old.timeout_ms);
  if (old.map) again.map = MapSpec{old.map->chunk, old.map->collect, -1};
  again.retry_of = old.id;
  // The retry is the job's tenant's, whoever asks for it (an admin): theirs to see,
  // and one retry of a job whoever asks twice.
  again.tenant = old.tenant;
  again.idempotency_key = "retry-of:" + old.id;
  return again;
}

// One CancelMatching: it reads a page of the status it sweeps, cancels its jobs, and
// reads the next page once they have all answered. Each step holds it alive.
class JobService::CancelSweep : public std::enable_shared_from_this<CancelSweep> {
 public:
  CancelSweep(JobService* service, std::vector<JobStatus> statuses, const std::string& task,
              std::optional<std::string> tenant, std::function<void(ErrorOr<std::size_t>)> done)
      : service_(service), statuses_(std::move(statuses)), done_(std::move(done)) {
    if (!task.empty()) query_.task = task;
    query_.tenant = std::move(tenant);
    query_.limit = kCancelPage;
  }

  void Step() {
    if (statuses_.empty()) return done_(canceled_.load());
    if (Status s = StillOn(); !s) return done_(s.error());
    query_.status = statuses_.back();
    service_->List(query_, [self = shared_from_this()](ErrorOr<std::vector<JobSnapshot>> page,
                                                       std::optional<std::uint64_t> cursor) {
      self->OnPage(std::move(page), cursor);
    });
  }

 private:
  void OnPage(ErrorOr<std::vector<JobSnapshot>> page, std::optional<std::uint64_t> cursor) {
    if (!page) return done_(page.error());
    if (Status s = StillOn(); !s) return done_(s.error());
    if (cursor) {
      query_.before_seq = *cursor;
    } else {
      statuses_.pop_back();
      query_.before_seq = UINT64_MAX;
    }
    // One more than the page: the last answer, whichever it is, takes the next step.
    pending_ = page->size() + 1;
    for (const JobSnapshot& job : *page) {
      service_->Cancel(job.record.id, [self = shared_from_this()](ErrorOr<JobSnapshot> r) {
        if (r) self->canceled_.fetch_add(1);  // A job that finished meanwhile (409) is not counted.
        self->Answered();
      });
    }
    Answered();
  }

  // A sweep stops at the drain: what is still queued then stays queued for the next
  // start, as the drain keeps it, and the service being destroyed is not called into
  // (its destructor drains first, then runs the reads still queued).
  Status StillOn() const {
    if (!service_->draining()) return {};
    return MakeError(ErrorCode::kUnavailable, "the server is shutting down; " + std::to_string(canceled_.load()) +
                                                  " jobs were canceled before it began");
  }

  void Answered() {
    if (pending_.fetch_sub(1) == 1) Step();
  }

  JobService* const service_;
  // Constant while a page's cancels are in flight; each step is taken by the one
  // answer that ends the previous.
  std::vector<JobStatus> statuses_;  // Still to sweep, the next last.
  JobQuery query_;
  std::function<void(ErrorOr<std::size_t>)> done_;
  std::atomic<std::size_t> pending_{0};
  std::atomic<std::size_t> canceled_{0};
};

void JobService::CancelMatching(const std::string& task, std::optional<JobStatus> status,
                                std::optional<std::string> tenant, std::function<void(ErrorOr<std::size_t>)> done) {
  std::vector<JobStatus> statuses =
      status ? std::vector<JobStatus>{*status} : std::vector<JobStatus>{JobStatus::kRunning, JobStatus::kQueued};
  std::make_shared<CancelSweep>(this, std::move(statuses), task, std::move(tenant), std::move(done))->Step();
}

}  // namespace offload
