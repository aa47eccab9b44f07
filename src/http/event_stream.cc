#include "http/event_stream.h"

#include <boost/asio/post.hpp>
#include <boost/beast/http.hpp>
#include <random>

#include "http/job_json.h"
#include "http/problem.h"
#include "util/json_writer.h"

namespace offload {

namespace http = boost::beast::http;

namespace {

// How often one job's progress is sampled while it runs, how often a stream of every
// job looks at its clock, and how long a stream may be silent before a comment keeps
// proxies and clients from taking it for dead.
constexpr std::chrono::milliseconds kProgressEvery{250};
constexpr std::chrono::milliseconds kTickEvery{5'000};
constexpr std::chrono::seconds kKeepAlive{15};
// Events taken from the log per Pull: a piece of about 40 KB at most.
constexpr std::size_t kEventsPerPull = 256;
// Events come in bursts (a busy server, a map's thousands of elements): a stream the
// log wakes waits this long for more before it reads, so that a hundred subscribers
// of a server finishing 30,000 jobs a second each write a few large pieces in that
// time rather than thousands of small ones.
//
// Every stream is woken by the same event, so each waits a time of its own, from
// kCoalesce/2 to 3*kCoalesce/2: a hundred streams that flushed together would queue a
// hundred writes at once ahead of every other request of their I/O threads.
constexpr std::chrono::microseconds kCoalesce{10'000};

std::chrono::microseconds CoalesceDelay() {
  thread_local std::minstd_rand random{std::random_device{}()};
  return kCoalesce / 2 + std::chrono::microseconds(random() % kCoalesce.count());
}
// How long a client waits before it reconnects (EventSource reads it).
constexpr std::string_view kRetry = "retry: 2000\n\n";

void AppendMessage(std::string* out, std::string_view id, std::string_view event, std::string_view data) {
  if (!id.empty()) {
    *out += "id: ";
    *out += id;
    *out += '\n';
  }
  *out += "event: ";
  *out += event;
  *out += "\ndata: ";
  *out += data;  // JSON on one line: no newline to split into more data lines.
  *out += "\n\n";
}

std::string JobData(const JobSnapshot& job) {
  std::string data;
  AppendJobJson(&data, job);
  return data;
}

}  // namespace

HttpResponse JobEventStream::Header() {
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-store");
  // nginx would otherwise hold the events back to fill its buffer.
  res.set("X-Accel-Buffering", "no");
  return res;
}

JobEventStream::JobEventStream(JobService* service, boost::asio::any_io_executor executor,
                               std::shared_ptr<JobEventLog::Subscription> sub)
    : service_(service), timer_(executor), flush_timer_(std::move(executor)), sub_(std::move(sub)) {}

std::shared_ptr<JobEventStream> JobEventStream::OfJob(JobService* service, boost::asio::any_io_executor executor,
                                                      std::shared_ptr<JobEventLog::Subscription> sub, JobSnapshot now) {
  const bool resumed = sub->resumed();
  std::shared_ptr<JobEventStream> s(new JobEventStream(service, std::move(executor), std::move(sub)));
  s->job_id_ = now.record.id;
  if (IsFinished(now.record.status)) {
    s->final_ = std::move(now);
  } else if (!resumed) {
    s->first_ = std::move(now);
  }
  return s;
}

std::shared_ptr<JobEventStream> JobEventStream::OfAll(boost::asio::any_io_executor executor,
                                                      std::shared_ptr<JobEventLog::Subscription> sub, bool reset) {
  std::shared_ptr<JobEventStream> s(new JobEventStream(nullptr, std::move(executor), std::move(sub)));
  s->reset_ = reset;
  return s;
}

void JobEventStream::Start(std::function<void()> wake) {
  wake_ = std::move(wake);
  // Called by the publisher's thread: hops to the session's.
  sub_->SetWake([weak = weak_from_this(), executor = timer_.get_executor()] {
    boost::asio::post(executor, [weak] {
      if (auto self = weak.lock()) self->OnLogEvent();
    });
  });
  last_write_ = std::chrono::steady_clock::now();
  if (service_ && !final_) {
    std::weak_ptr<JobEventStream> weak = weak_from_this();
    auto executor = timer_.get_executor();
    auto on_final = [weak, executor](ErrorOr<JobSnapshot> job) {
      boost::asio::post(executor, [weak, job = std::move(job)]() mutable {
        if (auto self = weak.lock()) self->OnFinal(std::move(job));
      });
    };
    ticket_ = service_->AwaitFinish(job_id_, on_final);
    // Finished since it was read: the store has its last state.
    if (ticket_ == 0) service_->Get(job_id_, on_final);
  }
  Tick();
}

void JobEventStream::OnLogEvent() {
  if (stopped_ || flush_pending_) return;
  flush_pending_ = true;
  flush_timer_.expires_after(CoalesceDelay());
  flush_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_) return;
    self->flush_pending_ = false;
    self->wake_();
  });
}

void JobEventStream::OnFinal(ErrorOr<JobSnapshot> job) {
  if (stopped_) return;
  ticket_ = 0;
  final_ = std::move(job);
  wake_();
}

void JobEventStream::Tick() {
  if (stopped_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_write_ >= kKeepAlive) wake_();
  if (service_ && !final_ && !sampling_) {
    sampling_ = true;
    std::weak_ptr<JobEventStream> weak = weak_from_this();
    service_->Get(job_id_, [weak, executor = timer_.get_executor()](ErrorOr<JobSnapshot> job) {
      // A failed read samples nothing, and the next tick samples again.
      const std::optional<double> progress = job ? job->record.progress : std::nullopt;
      const bool running = job && job->record.status == JobStatus::kRunning;
      boost::asio::post(executor, [weak, progress, running] {
        auto self = weak.lock();
        if (!self || self->stopped_) return;
        self->sampling_ = false;
        if (running && progress && *progress != self->sent_progress_) {
          self->progress_ = *progress;
          self->wake_();
        }
      });
    });
  }
  timer_.expires_after(service_ ? kProgressEvery : kTickEvery);
  timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->Tick();
  });
}

BodySource::Next JobEventStream::Pull(std::string* out) {
  const std::size_t before = out->size();
  if (!head_sent_) {
    head_sent_ = true;
    *out += kRetry;
    if (reset_) AppendMessage(out, sub_->start_id(), "reset", "{}");
    if (first_) {
      AppendMessage(out, sub_->start_id(), "job", JobData(*first_));
      first_.reset();
    }
  }
  const JobEventLog::ReadResult read = sub_->log()->Read(sub_.get(), kEventsPerPull, &batch_);
  for (const KeptEventPtr& e : batch_) e->AppendMessage(out);
  batch_.clear();
  Next next = Next::kWait;
  if (read == JobEventLog::ReadResult::kLost || read == JobEventLog::ReadResult::kClosed) {
    // Fallen behind, or the server is shutting down: the stream ends, and the client
    // reconnects (to resume, or to learn what it missed).
    next = Next::kEnd;
  } else if (read == JobEventLog::ReadResult::kSome) {
    next = Next::kMore;
  } else if (final_) {
    if (*final_) {
      AppendMessage(out, "", "job", JobData(**final_));
    } else {
      AppendMessage(out, "", "error", ProblemBody(ProblemFromError(final_->error())));
    }
    next = Next::kEnd;
  }
  if (progress_ && next != Next::kEnd) {
    std::string data = "{\"id\":";
    AppendJsonString(&data, job_id_);
    data += ",\"progress\":";
    AppendJson(&data, boost::json::value(*progress_));
    data += '}';
    AppendMessage(out, "", "progress", data);
    sent_progress_ = *progress_;
    progress_.reset();
  }
  const auto now = std::chrono::steady_clock::now();
  if (out->size() == before && now - last_write_ >= kKeepAlive) *out += ": keep-alive\n\n";
  if (out->size() > before) last_write_ = now;
  if (next == Next::kEnd) Stop();
  return next;
}

void JobEventStream::Stop() {
  stopped_ = true;
  timer_.cancel();
  flush_timer_.cancel();
  if (ticket_ != 0) service_->CancelAwait(job_id_, ticket_);
  ticket_ = 0;
}

}  // namespace offload
