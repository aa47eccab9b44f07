#include "service/job_event_log.h"

#include <charconv>
#include <cstdio>
#include <random>

namespace offload {

namespace {

// The event as the log keeps it, but for its id: formatted before the log's lock is
// taken.
std::shared_ptr<KeptEvent> Prepare(JobEvent event) {
  auto kept = std::make_shared<KeptEvent>();
  std::string& m = kept->rest;
  m.reserve(event.type.size() + event.data.size() + 16);
  m += "\nevent: ";
  m += event.type;
  m += "\ndata: ";
  m += event.data;  // JSON on one line: no newline to split into more data lines.
  m += "\n\n";
  kept->event = std::move(event);
  return kept;
}

std::string RandomEpoch() {
  std::random_device rd;
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(rd()));
  return text;
}

}  // namespace

JobEventLog::Subscription::~Subscription() {
  if (log_) log_->Unsubscribe(this);
}

void JobEventLog::Subscription::SetWake(std::function<void()> wake) {
  MutexLock lock(&log_->mu_);
  wake_ = std::move(wake);
}

std::shared_ptr<JobEventLog> JobEventLog::Create(std::size_t capacity, std::chrono::milliseconds linger) {
  return std::shared_ptr<JobEventLog>(new JobEventLog(capacity, linger));
}

JobEventLog::JobEventLog(std::size_t capacity, std::chrono::milliseconds linger)
    : capacity_(capacity < 1 ? 1 : capacity), linger_(linger), epoch_(RandomEpoch()) {}

bool JobEventLog::StillWantedLocked(Clock::time_point now) {
  if (!subs_.empty() || now < linger_until_ || now < elsewhere_until_) return true;
  wanted_.store(false, std::memory_order_relaxed);
  // Events go unrecorded from here: a cursor from before must not read what follows
  // as if nothing had happened in between.
  ring_.clear();
  latest_of_job_.clear();
  horizon_ = next_;
  ++next_;
  return false;
}

std::vector<std::function<void()>> JobEventLog::KeepLocked(std::shared_ptr<KeptEvent> kept) {
  if (ring_.size() >= capacity_) {
    horizon_ = next_ - ring_.size();  // The number of the event dropped.
    auto latest = latest_of_job_.find(ring_.front().event->event.job_id);
    if (latest != latest_of_job_.end() && latest->second == horizon_) latest_of_job_.erase(latest);
    ring_.pop_front();
  }
  const std::uint64_t number = next_++;
  kept->id = IdOf(number);
  const JobEvent& event = kept->event;
  ring_.push_back(Slot{kept});
  // The key views the job id of the job's latest event, which the ring holds.
  auto [latest, first] = latest_of_job_.try_emplace(event.job_id, number);
  if (!first) {
    ring_[latest->second - (next_ - ring_.size())].superseded_by = number;
    auto node = latest_of_job_.extract(latest);
    node.key() = event.job_id;
    node.mapped() = number;
    latest_of_job_.insert(std::move(node));
  }
  std::vector<std::function<void()>> wakes;
  for (Subscription* sub : subs_) {
    if (!sub->armed_) continue;
    if (!sub->filter_.Matches(event)) {
      // An armed subscription has read all there was: it passes this one here, so
      // that events it does not want never make it fall behind.
      sub->cursor_ = number;
      continue;
    }
    sub->armed_ = false;
    if (sub->wake_) wakes.push_back(sub->wake_);
  }
  return wakes;
}

bool JobEventLog::Publish(JobEvent event) {
  std::shared_ptr<KeptEvent> kept = Prepare(std::move(event));
  std::vector<std::function<void()>> wakes;
  bool elsewhere = false;
  {
    MutexLock lock(&mu_);
    const Clock::time_point now = Clock::now();
    if (closed_ || !StillWantedLocked(now)) return false;
    elsewhere = now < elsewhere_until_;
    wakes = KeepLocked(std::move(kept));
  }
  for (auto& wake : wakes) wake();
  return elsewhere;
}

void JobEventLog::PublishFromElsewhere(JobEvent event) {
  if (!wanted()) return;
  std::shared_ptr<KeptEvent> kept = Prepare(std::move(event));
  std::vector<std::function<void()>> wakes;
  {
    MutexLock lock(&mu_);
    if (closed_ || !wanted_.load(std::memory_order_relaxed) || !StillWantedLocked(Clock::now())) return;
    wakes = KeepLocked(std::move(kept));
  }
  for (auto& wake : wakes) wake();
}

void JobEventLog::WantedElsewhere(std::chrono::milliseconds span) {
  MutexLock lock(&mu_);
  if (closed_) return;
  elsewhere_until_ = std::max(elsewhere_until_, Clock::now() + span);
  wanted_.store(true, std::memory_order_relaxed);
}

bool JobEventLog::has_subscribers() const {
  MutexLock lock(&mu_);
  return !subs_.empty();
}

std::size_t JobEventLog::subscribers() const {
  MutexLock lock(&mu_);
  return subs_.size();
}

std::uint64_t JobEventLog::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

std::unique_ptr<JobEventLog::Subscription> JobEventLog::Subscribe(JobEventFilter filter,
                                                                  std::string_view last_event_id) {
  std::unique_ptr<Subscription> sub(new Subscription());
  sub->log_ = shared_from_this();
  sub->filter_ = std::move(filter);
  MutexLock lock(&mu_);
  sub->cursor_ = next_ - 1;
  const std::size_t dash = last_event_id.find('-');
  if (dash != std::string_view::npos && last_event_id.substr(0, dash) == epoch_) {
    const std::string_view digits = last_event_id.substr(dash + 1);
    std::uint64_t number = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (ec == std::errc() && end == digits.data() + digits.size() && number >= horizon_ && number < next_ &&
        wanted_.load(std::memory_order_relaxed)) {
      sub->cursor_ = number;
      sub->resumed_ = true;
    }
  }
  sub->start_id_ = IdOf(sub->cursor_);
  subs_.insert(sub.get());
  if (!closed_) wanted_.store(true, std::memory_order_relaxed);
  return sub;
}

void JobEventLog::Unsubscribe(Subscription* sub) {
  MutexLock lock(&mu_);
  subs_.erase(sub);
  if (subs_.empty()) linger_until_ = Clock::now() + linger_;
}

JobEventLog::ReadResult JobEventLog::Read(Subscription* sub, std::size_t max_events, std::vector<KeptEventPtr>* out) {
  MutexLock lock(&mu_);
  if (closed_) return ReadResult::kClosed;
  if (sub->cursor_ < horizon_) {
    ++dropped_;
    return ReadResult::kLost;
  }
  const std::uint64_t oldest = next_ - ring_.size();
  const std::uint64_t last = next_ - 1;
  std::size_t taken = 0;
  while (sub->cursor_ < last && taken < max_events) {
    const std::uint64_t number = ++sub->cursor_;
    const Slot& slot = ring_[number - oldest];
    if (!sub->filter_.Matches(slot.event->event)) continue;
    if (sub->filter_.latest && slot.superseded_by != 0) continue;
    out->push_back(slot.event);
    ++taken;
  }
  if (taken > 0) return ReadResult::kSome;
  sub->armed_ = true;
  return ReadResult::kNone;
}

void JobEventLog::Close() {
  std::vector<std::function<void()>> wakes;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    wanted_.store(false, std::memory_order_relaxed);
    for (Subscription* sub : subs_) {
      if (sub->wake_) wakes.push_back(sub->wake_);
    }
  }
  for (auto& wake : wakes) wake();
}

}  // namespace offload
