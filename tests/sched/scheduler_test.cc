// Scheduler: start order (priority, then submission), the strict head-of-line rule per
// resource, and resource accounting. Payloads are ints naming the jobs.
#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <vector>

namespace offload {
namespace {

using Sched = Scheduler<int>;

ResourceDemand Uses(std::initializer_list<std::pair<int, std::int64_t>> units) {
  ResourceDemand d;
  for (auto [r, amount] : units) d.Add(r, amount);
  return d;
}

// Runs one Dispatch and returns the payloads it started, in start order.
std::vector<int> Dispatch(Sched& s) {
  std::vector<int> started;
  s.Dispatch([&](int, int p) { started.push_back(p); });
  return started;
}

// Like Dispatch, but also returns the queue each job started from.
std::vector<std::pair<int, int>> DispatchWithQueues(Sched& s) {
  std::vector<std::pair<int, int>> started;
  s.Dispatch([&](int q, int p) { started.emplace_back(q, p); });
  return started;
}

TEST(SchedulerTest, ExclusiveResourceRunsJobsOneAtATimeInSubmissionOrder) {
  Sched s({1});
  const int gpu = s.AddQueue(Uses({{0, 1}}));
  for (int i = 1; i <= 4; ++i) s.Enqueue(gpu, Sched::MakeKey(0, i), i);

  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  EXPECT_EQ(s.in_use(0), 1);
  EXPECT_EQ(Dispatch(s), std::vector<int>{}) << "nothing may start while the GPU is held";
  for (int next = 2; next <= 4; ++next) {
    s.Release(gpu);
    EXPECT_EQ(Dispatch(s), std::vector<int>{next});
    EXPECT_EQ(s.in_use(0), 1);
  }
  s.Release(gpu);
  EXPECT_EQ(Dispatch(s), std::vector<int>{});
  EXPECT_EQ(s.in_use(0), 0);
  EXPECT_EQ(s.queued(gpu), 0u);
}

TEST(SchedulerTest, HigherPriorityFirstThenFifoWithinEqualPriority) {
  Sched s({1});
  const int q = s.AddQueue(Uses({{0, 1}}));
  // (priority, seq) -> payload = seq.
  s.Enqueue(q, Sched::MakeKey(0, 1), 1);
  s.Enqueue(q, Sched::MakeKey(5, 2), 2);
  s.Enqueue(q, Sched::MakeKey(0, 3), 3);
  s.Enqueue(q, Sched::MakeKey(5, 4), 4);
  s.Enqueue(q, Sched::MakeKey(-3, 5), 5);
  s.Enqueue(q, Sched::MakeKey(10, 6), 6);

  std::vector<int> order;
  for (int i = 0; i < 6; ++i) {
    std::vector<int> started = Dispatch(s);
    ASSERT_EQ(started.size(), 1u) << "round " << i;
    order.push_back(started[0]);
    s.Release(q);
  }
  EXPECT_EQ(order, (std::vector<int>{6, 2, 4, 1, 3, 5}));
}

TEST(SchedulerTest, ExtremePrioritiesDoNotOverflowTheKey) {
  Sched s({1});
  const int q = s.AddQueue(Uses({{0, 1}}));
  s.Enqueue(q, Sched::MakeKey(std::numeric_limits<int>::min(), 1), 1);
  s.Enqueue(q, Sched::MakeKey(0, 2), 2);
  s.Enqueue(q, Sched::MakeKey(std::numeric_limits<int>::max(), 3), 3);
  std::vector<int> order;
  for (int i = 0; i < 3; ++i) {
    for (int p : Dispatch(s)) order.push_back(p);
    s.Release(q);
  }
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
}

TEST(SchedulerTest, SharedCapacityStartsAsManyAsFitInOrder) {
  Sched s({3});
  const int q = s.AddQueue(Uses({{0, 1}}));
  for (int i = 1; i <= 5; ++i) s.Enqueue(q, Sched::MakeKey(0, i), i);
  EXPECT_EQ(Dispatch(s), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(s.in_use(0), 3);
  s.Release(q);
  EXPECT_EQ(Dispatch(s), std::vector<int>{4});
  s.Release(q);
  s.Release(q);
  EXPECT_EQ(Dispatch(s), std::vector<int>{5});
  EXPECT_EQ(s.in_use(0), 2);
}

// A job that does not fit blocks every later job of equal or lower priority that
// waits for the same resource, even a smaller one that would fit (no backfilling).
TEST(SchedulerTest, HeadOfLineBlocksSmallerLaterJobsOnTheSameResource) {
  Sched s({4});
  const int big = s.AddQueue(Uses({{0, 3}}));
  const int medium = s.AddQueue(Uses({{0, 2}}));
  const int small = s.AddQueue(Uses({{0, 1}}));

  s.Enqueue(big, Sched::MakeKey(0, 1), 1);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  s.Enqueue(medium, Sched::MakeKey(0, 2), 2);  // Needs 2, only 1 free.
  s.Enqueue(small, Sched::MakeKey(0, 3), 3);   // Would fit, but 2 is ahead.
  s.Enqueue(small, Sched::MakeKey(0, 4), 4);
  EXPECT_EQ(Dispatch(s), std::vector<int>{});
  EXPECT_EQ(s.in_use(0), 3);

  s.Release(big);
  EXPECT_EQ(Dispatch(s), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(s.in_use(0), 4);
}

TEST(SchedulerTest, HigherPriorityJobMayPassABlockedLowerPriorityOne) {
  Sched s({4});
  const int big = s.AddQueue(Uses({{0, 3}}));
  const int medium = s.AddQueue(Uses({{0, 2}}));
  const int small = s.AddQueue(Uses({{0, 1}}));

  s.Enqueue(big, Sched::MakeKey(0, 1), 1);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  s.Enqueue(medium, Sched::MakeKey(0, 2), 2);
  s.Enqueue(small, Sched::MakeKey(1, 3), 3);  // Later, but ahead by priority.
  EXPECT_EQ(Dispatch(s), std::vector<int>{3});
  EXPECT_EQ(s.in_use(0), 4);
}

TEST(SchedulerTest, JobsOnDisjointResourcesStartWhileAnotherResourceIsBlocked) {
  Sched s({1, 2});  // 0 = gpu, 1 = cpu
  const int gpu = s.AddQueue(Uses({{0, 1}}));
  const int cpu = s.AddQueue(Uses({{1, 1}}));

  s.Enqueue(gpu, Sched::MakeKey(0, 1), 1);
  s.Enqueue(gpu, Sched::MakeKey(0, 2), 2);
  s.Enqueue(cpu, Sched::MakeKey(0, 3), 3);
  s.Enqueue(cpu, Sched::MakeKey(0, 4), 4);
  s.Enqueue(cpu, Sched::MakeKey(0, 5), 5);
  // 2 is blocked behind 1 on the GPU; that must not hold up the CPU jobs.
  EXPECT_EQ(DispatchWithQueues(s), (std::vector<std::pair<int, int>>{{gpu, 1}, {cpu, 3}, {cpu, 4}}));
  EXPECT_EQ(s.in_use(0), 1);
  EXPECT_EQ(s.in_use(1), 2);

  s.Release(cpu);
  EXPECT_EQ(Dispatch(s), std::vector<int>{5});
  s.Release(gpu);
  EXPECT_EQ(Dispatch(s), std::vector<int>{2});
}

TEST(SchedulerTest, MultiResourceJobNeedsEverythingFreeAndBlocksEachResource) {
  Sched s({2, 1});  // 0 = cpu (2), 1 = gpu (1)
  const int gpu_only = s.AddQueue(Uses({{1, 1}}));
  const int both = s.AddQueue(Uses({{0, 1}, {1, 1}}));
  const int cpu_only = s.AddQueue(Uses({{0, 1}}));

  s.Enqueue(gpu_only, Sched::MakeKey(0, 1), 1);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  s.Enqueue(both, Sched::MakeKey(0, 2), 2);      // CPU free, GPU held: waits.
  s.Enqueue(gpu_only, Sched::MakeKey(0, 3), 3);  // Behind 2 on the GPU.
  s.Enqueue(cpu_only, Sched::MakeKey(0, 4), 4);  // Behind 2 on the CPU: 2 waits for both.
  EXPECT_EQ(Dispatch(s), std::vector<int>{});
  EXPECT_EQ(s.in_use(0), 0);
  EXPECT_EQ(s.in_use(1), 1);

  s.Release(gpu_only);
  EXPECT_EQ(Dispatch(s), (std::vector<int>{2, 4}));
  EXPECT_EQ(s.in_use(0), 2);
  EXPECT_EQ(s.in_use(1), 1);

  s.Release(both);
  EXPECT_EQ(Dispatch(s), std::vector<int>{3});
  EXPECT_EQ(s.in_use(0), 1);
  EXPECT_EQ(s.in_use(1), 1);
}

// Job 3 (cpu + gpu) waits behind job 2 on the GPU. It is still the earliest job
// waiting for the CPU, so the later CPU-only job 4 must not overtake it.
TEST(SchedulerTest, JobWaitingBehindAnotherStillBlocksItsOtherResources) {
  Sched s({2, 1});  // 0 = cpu (2), 1 = gpu (1)
  const int gpu_only = s.AddQueue(Uses({{1, 1}}));
  const int both = s.AddQueue(Uses({{0, 1}, {1, 1}}));
  const int cpu_only = s.AddQueue(Uses({{0, 1}}));

  s.Enqueue(gpu_only, Sched::MakeKey(0, 1), 1);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  s.Enqueue(gpu_only, Sched::MakeKey(0, 2), 2);
  s.Enqueue(both, Sched::MakeKey(0, 3), 3);
  s.Enqueue(cpu_only, Sched::MakeKey(0, 4), 4);
  EXPECT_EQ(Dispatch(s), std::vector<int>{}) << "4 would overtake 3 on the CPU";
  EXPECT_EQ(s.in_use(0), 0);

  s.Release(gpu_only);  // 1 ends: 2 takes the GPU; 3 and 4 still wait.
  EXPECT_EQ(Dispatch(s), std::vector<int>{2});
  s.Release(gpu_only);
  EXPECT_EQ(Dispatch(s), (std::vector<int>{3, 4}));
}

TEST(SchedulerTest, ReleaseReturnsExactlyWhatTheJobHeld) {
  Sched s({8, 2});
  const int q = s.AddQueue(Uses({{0, 3}, {1, 2}}));
  s.Enqueue(q, Sched::MakeKey(0, 1), 1);
  s.Enqueue(q, Sched::MakeKey(0, 2), 2);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  EXPECT_EQ(s.in_use(0), 3);
  EXPECT_EQ(s.in_use(1), 2);
  EXPECT_EQ(s.queued_demand(0), 3);
  EXPECT_EQ(s.queued_demand(1), 2);

  s.Release(q);
  EXPECT_EQ(s.in_use(0), 0);
  EXPECT_EQ(s.in_use(1), 0);
  EXPECT_EQ(Dispatch(s), std::vector<int>{2});
  EXPECT_EQ(s.queued_demand(0), 0);
  EXPECT_EQ(s.queued_demand(1), 0);
}

TEST(SchedulerTest, QueuedDemandSumsOverQueuesAndCountsOnlyQueuedJobs) {
  Sched s({1, 4});  // 0 = gpu, 1 = cpu
  const int gpu = s.AddQueue(Uses({{0, 1}}));
  const int mixed = s.AddQueue(Uses({{0, 1}, {1, 2}}));
  const int cpu = s.AddQueue(Uses({{1, 1}}));
  EXPECT_EQ(s.capacity(0), 1);
  EXPECT_EQ(s.capacity(1), 4);

  s.Enqueue(gpu, Sched::MakeKey(0, 1), 1);
  s.Enqueue(gpu, Sched::MakeKey(0, 2), 2);
  s.Enqueue(mixed, Sched::MakeKey(0, 3), 3);
  s.Enqueue(cpu, Sched::MakeKey(0, 4), 4);
  s.Enqueue(cpu, Sched::MakeKey(0, 5), 5);
  EXPECT_EQ(s.queued_demand(0), 3);          // 1 + 1 + 1
  EXPECT_EQ(s.queued_demand(1), 2 + 1 + 1);  // mixed 2, two cpu jobs

  // 1 starts on the GPU; 2 and 3 wait behind it; 3 also blocks the CPU jobs.
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  EXPECT_EQ(s.queued_demand(0), 2);
  EXPECT_EQ(s.queued_demand(1), 4);
  EXPECT_EQ(s.in_use(0), 1);
  EXPECT_EQ(s.in_use(1), 0);
  EXPECT_EQ(s.queued(gpu), 1u);
  EXPECT_EQ(s.queued(mixed), 1u);
  EXPECT_EQ(s.queued(cpu), 2u);
}

TEST(SchedulerTest, PositionCountsJobsAheadOnAnySharedResource) {
  Sched s({1, 4});  // 0 = gpu, 1 = cpu
  const int gpu = s.AddQueue(Uses({{0, 1}}));
  const int mixed = s.AddQueue(Uses({{0, 1}, {1, 1}}));
  const int cpu = s.AddQueue(Uses({{1, 1}}));

  s.Enqueue(gpu, Sched::MakeKey(0, 1), 1);
  s.Enqueue(cpu, Sched::MakeKey(0, 2), 2);
  s.Enqueue(mixed, Sched::MakeKey(0, 3), 3);
  s.Enqueue(gpu, Sched::MakeKey(0, 4), 4);
  s.Enqueue(cpu, Sched::MakeKey(0, 5), 5);
  s.Enqueue(gpu, Sched::MakeKey(9, 6), 6);  // Jumps ahead by priority.

  EXPECT_EQ(s.Position(gpu, Sched::MakeKey(9, 6)), 0u);
  EXPECT_EQ(s.Position(gpu, Sched::MakeKey(0, 1)), 1u);    // 6
  EXPECT_EQ(s.Position(cpu, Sched::MakeKey(0, 2)), 0u);    // gpu jobs do not count
  EXPECT_EQ(s.Position(mixed, Sched::MakeKey(0, 3)), 3u);  // 6, 1 (gpu) and 2 (cpu)
  EXPECT_EQ(s.Position(gpu, Sched::MakeKey(0, 4)), 3u);    // 6, 1, 3
  EXPECT_EQ(s.Position(cpu, Sched::MakeKey(0, 5)), 2u);    // 2, 3

  // Started jobs are no longer ahead of anyone.
  EXPECT_EQ(Dispatch(s), (std::vector<int>{6, 2}));
  EXPECT_EQ(s.Position(gpu, Sched::MakeKey(0, 1)), 0u);
  EXPECT_EQ(s.Position(mixed, Sched::MakeKey(0, 3)), 1u);
  EXPECT_EQ(s.Position(cpu, Sched::MakeKey(0, 5)), 1u);
}

TEST(SchedulerTest, RemoveTakesAQueuedJobOutAndUnblocksThoseBehindIt) {
  Sched s({4});
  const int big = s.AddQueue(Uses({{0, 3}}));
  const int small = s.AddQueue(Uses({{0, 1}}));
  s.Enqueue(big, Sched::MakeKey(0, 1), 1);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  s.Enqueue(big, Sched::MakeKey(0, 2), 2);
  s.Enqueue(small, Sched::MakeKey(0, 3), 3);
  EXPECT_EQ(Dispatch(s), std::vector<int>{});
  EXPECT_EQ(s.Position(small, Sched::MakeKey(0, 3)), 1u);
  EXPECT_EQ(s.queued_demand(0), 4);

  EXPECT_TRUE(s.Remove(big, Sched::MakeKey(0, 2)));
  EXPECT_FALSE(s.Remove(big, Sched::MakeKey(0, 2))) << "already removed";
  EXPECT_FALSE(s.Remove(small, Sched::MakeKey(0, 99))) << "never queued";
  EXPECT_EQ(s.queued(big), 0u);
  EXPECT_EQ(s.queued_demand(0), 1);
  EXPECT_EQ(s.Position(small, Sched::MakeKey(0, 3)), 0u);
  EXPECT_EQ(Dispatch(s), std::vector<int>{3});
  EXPECT_EQ(s.in_use(0), 4);
}

TEST(SchedulerTest, RemovedJobIsNeverStarted) {
  Sched s({1});
  const int q = s.AddQueue(Uses({{0, 1}}));
  s.Enqueue(q, Sched::MakeKey(0, 1), 1);
  s.Enqueue(q, Sched::MakeKey(0, 2), 2);
  s.Enqueue(q, Sched::MakeKey(0, 3), 3);
  EXPECT_EQ(Dispatch(s), std::vector<int>{1});
  EXPECT_TRUE(s.Remove(q, Sched::MakeKey(0, 2)));
  s.Release(q);
  EXPECT_EQ(Dispatch(s), std::vector<int>{3});
  s.Release(q);
  EXPECT_EQ(Dispatch(s), std::vector<int>{});
}

TEST(SchedulerTest, ManyJobsKeepStrictOrderOnAnExclusiveResource) {
  Sched s({1});
  const int q = s.AddQueue(Uses({{0, 1}}));
  constexpr int kJobs = 2000;
  // Priorities cycle 0..3; expected order: by priority desc, then seq asc.
  for (int i = 0; i < kJobs; ++i) s.Enqueue(q, Sched::MakeKey(i % 4, i + 1), i);
  std::vector<int> order;
  for (int i = 0; i < kJobs; ++i) {
    for (int p : Dispatch(s)) order.push_back(p);
    s.Release(q);
  }
  ASSERT_EQ(order.size(), static_cast<size_t>(kJobs));
  for (size_t i = 1; i < order.size(); ++i) {
    const int a = order[i - 1], b = order[i];
    const bool ordered = (a % 4 > b % 4) || (a % 4 == b % 4 && a < b);
    ASSERT_TRUE(ordered) << "job " << b << " started right after " << a;
  }
}

}  // namespace
}  // namespace offload
