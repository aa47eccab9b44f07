#include "util/timer_queue.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace offload {
namespace {

using namespace std::chrono_literals;

// Records the order callbacks run in; the test waits on it with a deadline.
class Recorder {
 public:
  std::function<void()> Mark(int n) {
    return [this, n] {
      std::lock_guard lock(mu_);
      ran_.push_back(n);
      cv_.notify_all();
    };
  }
  bool WaitFor(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return ran_.size() >= n; });
  }
  std::vector<int> ran() {
    std::lock_guard lock(mu_);
    return ran_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> ran_;
};

TEST(TimerQueueTest, RunsCallbacksInDeadlineOrder) {
  Recorder r;
  TimerQueue q;
  q.Schedule(60ms, r.Mark(3));
  q.Schedule(0ms, r.Mark(1));
  q.Schedule(30ms, r.Mark(2));
  ASSERT_TRUE(r.WaitFor(3));
  EXPECT_EQ(r.ran(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(q.pending(), 0u);
}

TEST(TimerQueueTest, SameDeadlineRunsInScheduleOrder) {
  Recorder r;
  TimerQueue q;
  for (int i = 0; i < 5; ++i) q.Schedule(-1ms, r.Mark(i));
  ASSERT_TRUE(r.WaitFor(5));
  EXPECT_EQ(r.ran(), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(TimerQueueTest, CancelledCallbackNeverRunsAndIsFreedAtOnce) {
  Recorder r;
  TimerQueue q;
  auto held = std::make_shared<int>(7);
  std::weak_ptr<int> watch = held;
  TimerQueue::Handle h = q.Schedule(1h, [held] {});
  held.reset();
  EXPECT_FALSE(watch.expired());  // The pending callback holds it.
  EXPECT_TRUE(q.Cancel(h));
  EXPECT_TRUE(watch.expired());  // Freed by Cancel, not an hour later.
  EXPECT_FALSE(q.Cancel(h));     // Already gone.
  EXPECT_FALSE(q.Cancel(0));
  // One cancelled among others: the others still run.
  TimerQueue::Handle gone = q.Schedule(10ms, r.Mark(99));
  q.Schedule(20ms, r.Mark(1));
  EXPECT_TRUE(q.Cancel(gone));
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(r.ran(), (std::vector<int>{1}));
  EXPECT_EQ(q.pending(), 0u);
}

TEST(TimerQueueTest, CancelAfterRunReturnsFalse) {
  Recorder r;
  TimerQueue q;
  TimerQueue::Handle h = q.Schedule(0ms, r.Mark(1));
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_FALSE(q.Cancel(h));
}

TEST(TimerQueueTest, ManyCancelledTimersLeaveNothingPending) {
  TimerQueue q;
  std::vector<TimerQueue::Handle> handles;
  for (int i = 0; i < 10'000; ++i) handles.push_back(q.Schedule(300s, [] {}));
  EXPECT_EQ(q.pending(), 10'000u);
  for (auto h : handles) EXPECT_TRUE(q.Cancel(h));
  EXPECT_EQ(q.pending(), 0u);
}

TEST(TimerQueueTest, CallbackMayScheduleAndDestructorDropsPending) {
  Recorder r;
  auto q = std::make_unique<TimerQueue>();
  TimerQueue* raw = q.get();
  q->Schedule(0ms, [&r, raw] {
    raw->Schedule(0ms, r.Mark(2));
    r.Mark(1)();
  });
  ASSERT_TRUE(r.WaitFor(2));
  auto held = std::make_shared<int>(1);
  std::weak_ptr<int> watch = held;
  q->Schedule(1h, [held] {});
  held.reset();
  q.reset();  // Returns at once and frees what the dropped callback held.
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(r.ran(), (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace offload
