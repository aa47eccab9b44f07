// JobEventLog: the recent changes of jobs' statuses, read by the event streams
// (GET /v1/jobs/{id}/events and GET /v1/events, docs/api.md).
//
// A ring of the last `capacity` events, numbered in the order they were published.
// Subscribers read it at their own pace, each from its own cursor: a publisher never
// waits for a subscriber and copies nothing per subscriber; it only wakes, once, the
// subscribers that wait for more. A subscriber that falls further behind than the
// ring holds has lost events, and is told so (kLost): its stream is dropped, and the
// server is never slowed by it.
//
// Numbers also resume a stream: a client that reconnects with the id of the last
// event it read (Last-Event-ID) reads on from there if the ring still holds what
// followed, and is told it lost events otherwise. An id names the log it came from
// (a random epoch), so an id from before a restart, or from another node, is never
// taken for one of this log's.
//
// Which event supersedes which is worked out once, as events are kept, for every
// subscription that reads only jobs' latest states (JobEventFilter::latest).
//
// Nothing is kept while nobody has subscribed for `linger` and no other node wants this
// node's events: wanted() is one relaxed atomic load, so a server nobody watches pays
// nothing per job. When recording stops, a number is skipped, so that a cursor from
// before the gap reads as lost rather than as continuous.
//
// Threads: thread-safe. mu_ guards the ring and the subscriptions; it is taken after
// JobService's mutex (the service publishes under it), so it is held for bookkeeping
// only: an event is formatted before it is taken, and a reader copies the bytes of
// what it read after it is released.
// Wake callbacks are called after mu_ is released, on the publisher's thread: they
// must only hand the wake over (post to an executor).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

struct JobEvent {
  std::string job_id;
  std::string task;
  std::string type;    // The SSE event name: "status".
  std::string data;    // The event's JSON object, on one line.
  std::string tenant;  // The job's (JobRecord::tenant).
};

// An event as the log keeps it: numbered, and written once as the Server-Sent Events
// message every stream sends ("id: " id "\nevent: …\ndata: …\n\n"), so that a
// hundred subscribers copy it rather than format it a hundred times. Immutable once
// kept: readers share it, and copy its bytes outside the log's lock.
struct KeptEvent {
  JobEvent event;
  std::string id;    // Its SSE id (JobEventLog::IdOf).
  std::string rest;  // The message after its id: "\nevent: …\ndata: …\n\n".

  void AppendMessage(std::string* out) const {
    *out += "id: ";
    *out += id;
    *out += rest;
  }
};
using KeptEventPtr = std::shared_ptr<const KeptEvent>;

// Which events a subscription reads; an empty field matches any.
struct JobEventFilter {
  std::string job_id;
  std::string task;
  // Only jobs' latest states: of the events one Read finds, an event of a job that a
  // later one of them supersedes is passed over (a short job's queued, running and
  // succeeded become its succeeded), for clients that show states rather than every
  // change. An event is passed over only for one this Read sends or the next reads, so
  // a stream resumed from the last id it sent misses nothing but superseded states.
  bool latest = false;
  // Only this tenant's jobs; unset: every tenant's.
  std::optional<std::string> tenant = std::nullopt;
  bool Matches(const JobEvent& e) const {
    return (job_id.empty() || e.job_id == job_id) && (task.empty() || e.task == task) &&
           (!tenant || e.tenant == *tenant);
  }
};

class JobEventLog : public std::enable_shared_from_this<JobEventLog> {
 public:
  using Clock = std::chrono::steady_clock;

  // One reader of the log. Destroying it unsubscribes. Used by one thread at a time.
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    // Called when an event comes after a Read found none (only then: a subscription
    // is woken once per Read that came up empty). Thread-safe, as JobEventLog's wakes.
    void SetWake(std::function<void()> wake);
    // Whether the subscription reads on from the id it was given (a resume).
    bool resumed() const { return resumed_; }
    JobEventLog* log() const { return log_.get(); }
    // The id of the last event published before it began (or of the one it resumed
    // after): what a stream's first message carries.
    const std::string& start_id() const { return start_id_; }

   private:
    friend class JobEventLog;
    Subscription() = default;
    std::shared_ptr<JobEventLog> log_;
    JobEventFilter filter_;
    std::function<void()> wake_;  // GUARDED_BY(log_->mu_).
    std::uint64_t cursor_ = 0;    // GUARDED_BY(log_->mu_): the last number read.
    bool armed_ = false;          // GUARDED_BY(log_->mu_): wake_ is due on the next event.
    bool resumed_ = false;
    std::string start_id_;
  };

  enum class ReadResult {
    kSome,    // Events were read (maybe not all there are: read again).
    kNone,    // None left: wake is called when one comes.
    kLost,    // Events this subscription should have read are gone.
    kClosed,  // The log is closed (the server is shutting down).
  };

  static std::shared_ptr<JobEventLog> Create(std::size_t capacity, std::chrono::milliseconds linger);

  // Whether a published event would be kept. Cheap: publishers skip building events
  // when it is false.
  bool wanted() const { return wanted_.load(std::memory_order_relaxed); }
  // Keeps `event` and wakes the subscriptions waiting for it. Returns whether other
  // nodes want this node's events now (the caller sends them on).
  bool Publish(JobEvent event) LOCKS_EXCLUDED(mu_);
  // An event of another node: kept as one of this node's, never sent on.
  void PublishFromElsewhere(JobEvent event) LOCKS_EXCLUDED(mu_);
  // Another node has subscribers: keep and send on this node's events for `span`.
  void WantedElsewhere(std::chrono::milliseconds span) LOCKS_EXCLUDED(mu_);
  // Whether any subscription reads this log now.
  bool has_subscribers() const LOCKS_EXCLUDED(mu_);
  // For /metrics: subscriptions now, and those ever dropped for falling behind the ring.
  std::size_t subscribers() const LOCKS_EXCLUDED(mu_);
  std::uint64_t dropped() const LOCKS_EXCLUDED(mu_);

  // Reads from now on, or, with `last_event_id` (a Last-Event-ID; empty: none), from
  // after that event. A resume from an id this log cannot read on from gives a
  // subscription whose first Read is kLost.
  std::unique_ptr<Subscription> Subscribe(JobEventFilter filter, std::string_view last_event_id) LOCKS_EXCLUDED(mu_);
  // Appends to `out` the events after the cursor that match the filter, at most
  // `max_events` of them, in the order they were published.
  ReadResult Read(Subscription* sub, std::size_t max_events, std::vector<KeptEventPtr>* out) LOCKS_EXCLUDED(mu_);
  // Ends every subscription: their next Read is kClosed, and they are woken.
  void Close() LOCKS_EXCLUDED(mu_);

  // The SSE id of event `number` of this log.
  std::string IdOf(std::uint64_t number) const { return epoch_ + "-" + std::to_string(number); }

 private:
  JobEventLog(std::size_t capacity, std::chrono::milliseconds linger);
  void Unsubscribe(Subscription* sub) LOCKS_EXCLUDED(mu_);
  // Keeps `event` (its `rest` written, its id not); returns the wakes due, to call
  // once mu_ is released.
  std::vector<std::function<void()>> KeepLocked(std::shared_ptr<KeptEvent> event) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops recording if nobody wants it any more.
  bool StillWantedLocked(Clock::time_point now) EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::size_t capacity_;
  const std::chrono::milliseconds linger_;
  const std::string epoch_;

  std::atomic<bool> wanted_{false};
  mutable Mutex mu_;
  struct Slot {
    KeptEventPtr event;
    std::uint64_t superseded_by = 0;  // The number of the job's next event, or 0.
  };
  std::deque<Slot> ring_ GUARDED_BY(mu_);
  // The number of each job's latest event in ring_.
  std::unordered_map<std::string_view, std::uint64_t> latest_of_job_ GUARDED_BY(mu_);
  std::uint64_t next_ GUARDED_BY(mu_) = 1;     // The number of the next event.
  std::uint64_t horizon_ GUARDED_BY(mu_) = 0;  // A cursor below it has lost events.
  std::unordered_set<Subscription*> subs_ GUARDED_BY(mu_);
  Clock::time_point linger_until_ GUARDED_BY(mu_);
  Clock::time_point elsewhere_until_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
  std::uint64_t dropped_ GUARDED_BY(mu_) = 0;  // Reads that found their subscription kLost.
};

}  // namespace offload
