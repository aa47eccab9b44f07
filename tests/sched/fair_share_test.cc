// The Scheduler between tenants: weighted fair share of a resource's time, order kept
// within a tenant, work conservation, caps, and no banking of idle time. A simulated
// clock runs the jobs: each takes its duration, and ends in order of its end.
#include <gtest/gtest.h>

#include <map>
#include <queue>
#include <vector>

#include "sched/scheduler.h"

namespace offload {
namespace {

// A job: its tenant, its number within the tenant, how long it runs.
struct SimJob {
  int tenant = 0;
  int n = 0;
  double seconds = 0.02;
};

using Sched = Scheduler<SimJob>;

ResourceDemand Uses(std::initializer_list<std::pair<int, std::int64_t>> units) {
  ResourceDemand d;
  for (auto [r, amount] : units) d.Add(r, amount);
  return d;
}

// Runs a scheduler on simulated time: starts what it lets start, ends the running
// job that ends first, and so on.
class Simulation {
 public:
  explicit Simulation(std::vector<std::int64_t> capacities) : sched_(std::move(capacities), [this] { return now_; }) {}

  Sched& sched() { return sched_; }
  double now() const { return now_; }

  void Submit(int q, int tenant, SimJob job) {
    job.tenant = tenant;
    sched_.Enqueue(q, Sched::MakeKey(0, ++seq_), job, tenant);
  }

  // Starts what may start; returns the jobs started, in order.
  std::vector<SimJob> Dispatch() {
    std::vector<SimJob> out;
    sched_.Dispatch([&](int q, SimJob job, Sched::Started started) {
      running_.push(Running{now_ + job.seconds, q, job, started});
      out.push_back(job);
    });
    return out;
  }

  // Ends the job that ends first; returns it. REQUIRES: one is running.
  SimJob EndNext() {
    Running r = running_.top();
    running_.pop();
    now_ = r.end;
    sched_.Release(r.q, r.job.tenant, r.started);
    busy_[r.job.tenant] += r.job.seconds;
    return r.job;
  }
  bool idle() const { return running_.empty(); }

  // Seconds of resource time each tenant's ended jobs took.
  std::map<int, double>& busy() { return busy_; }

 private:
  struct Running {
    double end;
    int q;
    SimJob job;
    Sched::Started started;
    bool operator<(const Running& o) const { return end > o.end; }  // Earliest on top.
  };
  double now_ = 1000;  // Not 0: the clock's origin is no special time.
  std::uint64_t seq_ = 0;
  Sched sched_;
  std::priority_queue<Running> running_;
  std::map<int, double> busy_;
};

TEST(FairShareTest, OneJobOfASecondTenantStartsAfterAtMostOneJobOfABurst) {
  Simulation sim({1});
  const int gpu = sim.sched().AddQueue(Uses({{0, 1}}));
  const int a = 0, b = sim.sched().AddTenant();
  for (int i = 0; i < 1000; ++i) sim.Submit(gpu, a, SimJob{0, i});
  ASSERT_EQ(sim.Dispatch().size(), 1u);  // A's first job runs.
  sim.Submit(gpu, b, SimJob{0, 0});
  // B is raised to A's usage, not ahead of it: at most one more of A's jobs first.
  int a_before_b = 0;
  for (;;) {
    sim.EndNext();
    std::vector<SimJob> started = sim.Dispatch();
    ASSERT_EQ(started.size(), 1u);
    if (started[0].tenant == b) break;
    ++a_before_b;
    ASSERT_LE(a_before_b, 1) << "B waits behind A's burst";
  }
}

TEST(FairShareTest, WeightsThreeToOneGiveThreeQuartersOfTheTimeWhenBothSaturate) {
  Simulation sim({1});
  const int gpu = sim.sched().AddQueue(Uses({{0, 1}}));
  const int a = 0, b = sim.sched().AddTenant();
  sim.sched().shares().SetWeight(a, 3);
  sim.sched().shares().SetWeight(b, 1);
  // Both keep 50 jobs queued, of different lengths: the share is of time, not of jobs.
  std::map<int, int> submitted;
  auto top_up = [&] {
    for (int t : {a, b}) {
      while (submitted[t] < 50) sim.Submit(gpu, t, SimJob{0, submitted[t]++, t == a ? 0.020 : 0.050});
    }
  };
  top_up();
  sim.Dispatch();
  const double start = sim.now();
  while (sim.now() - start < 20) {
    SimJob ended = sim.EndNext();
    --submitted[ended.tenant];
    top_up();
    ASSERT_EQ(sim.Dispatch().size(), 1u) << "the GPU is never left idle";
  }
  const double total = sim.busy()[a] + sim.busy()[b];
  EXPECT_NEAR(sim.busy()[a] / total, 0.75, 0.02) << "A: " << sim.busy()[a] << " s, B: " << sim.busy()[b] << " s";
}

TEST(FairShareTest, EqualTenantsSplitSlotsFreedAtOnce) {
  Simulation sim({4});
  const int cpu = sim.sched().AddQueue(Uses({{0, 1}}));
  const int a = 0, b = sim.sched().AddTenant();
  for (int i = 0; i < 100; ++i) sim.Submit(cpu, a, SimJob{0, i, 1.0});
  for (int i = 0; i < 100; ++i) sim.Submit(cpu, b, SimJob{0, i, 1.0});
  // Four starts at once: each start is charged ahead (before any job ended, a second),
  // so the four slots do not all go to the tenant whose jobs came first.
  for (int round = 0; round < 3; ++round) {
    std::map<int, int> started;
    for (const SimJob& job : sim.Dispatch()) ++started[job.tenant];
    EXPECT_EQ(started[a], 2) << "round " << round;
    EXPECT_EQ(started[b], 2) << "round " << round;
    while (!sim.idle()) sim.EndNext();
  }
}

TEST(FairShareTest, OrderWithinATenantStaysStrict) {
  Simulation sim({1});
  const int gpu = sim.sched().AddQueue(Uses({{0, 1}}));
  const int a = 0, b = sim.sched().AddTenant();
  for (int i = 0; i < 20; ++i) {
    sim.Submit(gpu, a, SimJob{0, i});
    sim.Submit(gpu, b, SimJob{0, i});
  }
  std::map<int, int> next;
  sim.Dispatch();
  while (!sim.idle()) {
    SimJob ended = sim.EndNext();
    EXPECT_EQ(ended.n, next[ended.tenant]++) << "tenant " << ended.tenant;
    sim.Dispatch();
  }
  EXPECT_EQ(next[a], 20);
  EXPECT_EQ(next[b], 20);
}

TEST(FairShareTest, ATenantWaitingForRoomDoesNotHoldBackOneThatFits) {
  Simulation sim({2});
  const int one = sim.sched().AddQueue(Uses({{0, 1}}));
  const int both = sim.sched().AddQueue(Uses({{0, 2}}));
  const int a = 0, b = sim.sched().AddTenant();
  sim.Submit(one, b, SimJob{0, 0, 1.0});
  ASSERT_EQ(sim.Dispatch().size(), 1u);
  sim.Submit(both, a, SimJob{0, 0});  // A has used nothing: it ranks first, and cannot fit.
  sim.Submit(one, b, SimJob{0, 1});
  std::vector<SimJob> started = sim.Dispatch();
  ASSERT_EQ(started.size(), 1u) << "the free unit is not left idle";
  EXPECT_EQ(started[0].tenant, b);
}

TEST(FairShareTest, AHeadWaitingForRoomHoldsBackItsOwnTenantsLaterJobs) {
  Simulation sim({2});
  const int one = sim.sched().AddQueue(Uses({{0, 1}}));
  const int both = sim.sched().AddQueue(Uses({{0, 2}}));
  sim.Submit(one, 0, SimJob{0, 0, 1.0});
  ASSERT_EQ(sim.Dispatch().size(), 1u);
  sim.Submit(both, 0, SimJob{0, 1});
  sim.Submit(one, 0, SimJob{0, 2});
  EXPECT_TRUE(sim.Dispatch().empty()) << "within a tenant, FIFO on the resource stays strict";
}

TEST(FairShareTest, ACapLimitsWhatATenantHoldsAndLeavesTheRestToOthers) {
  Simulation sim({4});
  const int gpu = sim.sched().AddQueue(Uses({{0, 1}}));
  const int a = 0, b = sim.sched().AddTenant();
  sim.sched().shares().SetCap(a, 0, 1);
  for (int i = 0; i < 10; ++i) sim.Submit(gpu, a, SimJob{0, i});
  std::vector<SimJob> started = sim.Dispatch();
  ASSERT_EQ(started.size(), 1u) << "A may hold 1 of the 4 GPUs, even with the others free";
  for (int i = 0; i < 10; ++i) sim.Submit(gpu, b, SimJob{0, i});
  started = sim.Dispatch();
  EXPECT_EQ(started.size(), 3u);
  for (const SimJob& job : started) EXPECT_EQ(job.tenant, b);
  EXPECT_EQ(sim.sched().shares().running_units(a, 0), 1);
}

TEST(FairShareTest, IdleTimeIsNotBanked) {
  Simulation sim({1});
  const int gpu = sim.sched().AddQueue(Uses({{0, 1}}));
  const int a = 0, b = sim.sched().AddTenant();
  // B runs alone for a while; A has no jobs.
  for (int i = 0; i < 100; ++i) sim.Submit(gpu, b, SimJob{0, i});
  sim.Dispatch();
  for (int i = 0; i < 50; ++i) {
    sim.EndNext();
    sim.Dispatch();
  }
  // A arrives with a burst: it takes turns with B from now on, it is not owed B's
  // past 50 jobs.
  for (int i = 0; i < 100; ++i) sim.Submit(gpu, a, SimJob{0, i});
  std::vector<int> order;
  for (int i = 0; i < 20; ++i) {
    sim.EndNext();
    for (const SimJob& job : sim.Dispatch()) order.push_back(job.tenant);
  }
  int a_in_a_row = 0, longest = 0;
  for (int t : order) {
    a_in_a_row = t == a ? a_in_a_row + 1 : 0;
    longest = std::max(longest, a_in_a_row);
  }
  EXPECT_LE(longest, 2);
  EXPECT_GE(std::count(order.begin(), order.end(), b), 9);
}

TEST(FairShareTest, OneTenantKeepsTheSingleTenantOrderAcrossQueues) {
  Simulation sim({1, 1});
  const int x = sim.sched().AddQueue(Uses({{0, 1}}));
  const int y = sim.sched().AddQueue(Uses({{0, 1}, {1, 1}}));
  const int z = sim.sched().AddQueue(Uses({{1, 1}}));
  sim.sched().AddTenant();  // Present, with nothing queued.
  sim.Submit(z, 0, SimJob{0, 0, 1.0});
  ASSERT_EQ(sim.Dispatch().size(), 1u);  // Holds resource 1.
  sim.Submit(y, 0, SimJob{0, 1});        // Waits for resource 1,
  sim.Submit(x, 0, SimJob{0, 2});        // and this later job must not take resource 0 first.
  EXPECT_TRUE(sim.Dispatch().empty()) << "x overtook y on resource 0";
  std::vector<int> order;
  while (!sim.idle()) {
    sim.EndNext();
    for (const SimJob& job : sim.Dispatch()) order.push_back(job.n);
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(FairShareTest, WithoutAClockTenantsKeepTheQueuesOrder) {
  // The cluster's claim picks this way: caps apply, shares do not.
  Scheduler<int> s({2});
  const int q = s.AddQueue(Uses({{0, 1}}));
  const int a = 0, b = s.AddTenant();
  s.Enqueue(q, Scheduler<int>::MakeKey(5, 1), 1, a);
  s.Enqueue(q, Scheduler<int>::MakeKey(5, 2), 2, a);
  s.Enqueue(q, Scheduler<int>::MakeKey(0, 3), 3, b);
  std::vector<int> order;
  s.Dispatch([&](int, int p) { order.push_back(p); });
  EXPECT_EQ(order, (std::vector<int>{1, 2})) << "both slots go to the queue's first two jobs";
}

}  // namespace
}  // namespace offload
