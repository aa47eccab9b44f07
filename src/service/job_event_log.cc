#include "service/job_event_log.h"

#include <charconv>
#include <cstdio>
#include <random>

namespace offload {

namespace {

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
  horizon_ = next_;
  ++next_;
  return false;
}

std::vector<std::function<void()>> JobEventLog::KeepLocked(const JobEvent& event) {
  if (ring_.size() >= capacity_) {
    horizon_ = next_ - ring_.size();  // The number of the event dropped.
    ring_.pop_front();
  }
  const std::uint64_t number = next_++;
  KeptEvent& kept = ring_.emplace_back(KeptEvent{event, IdOf(number), {}});
  std::string& m = kept.message;
  m.reserve(kept.id.size() + event.type.size() + event.data.size() + 24);
  m += "id: ";
  m += kept.id;
  m += "\nevent: ";
  m += event.type;
  m += "\ndata: ";
  m += event.data;  // JSON on one line: no newline to split into more data lines.
  m += "\n\n";
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

bool JobEventLog::Publish(const JobEvent& event) {
  std::vector<std::function<void()>> wakes;
  bool elsewhere = false;
  {
    MutexLock lock(&mu_);
    const Clock::time_point now = Clock::now();
    if (closed_ || !StillWantedLocked(now)) return false;
    elsewhere = now < elsewhere_until_;
    wakes = KeepLocked(event);
  }
  for (auto& wake : wakes) wake();
  return elsewhere;
}

void JobEventLog::PublishFromElsewhere(const JobEvent& event) {
  std::vector<std::function<void()>> wakes;
  {
    MutexLock lock(&mu_);
    if (closed_ || !wanted_.load(std::memory_order_relaxed) || !StillWantedLocked(Clock::now())) return;
    wakes = KeepLocked(event);
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

JobEventLog::ReadResult JobEventLog::Read(Subscription* sub, std::size_t max_events,
                                          const std::function<void(const KeptEvent&)>& take) {
  MutexLock lock(&mu_);
  if (closed_) return ReadResult::kClosed;
  if (sub->cursor_ < horizon_) {
    ++dropped_;
    return ReadResult::kLost;
  }
  const std::uint64_t oldest = next_ - ring_.size();
  std::size_t taken = 0;
  while (sub->cursor_ + 1 < next_ && taken < max_events) {
    const std::uint64_t number = ++sub->cursor_;
    const KeptEvent& kept = ring_[number - oldest];
    if (!sub->filter_.Matches(kept.event)) continue;
    take(kept);
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
