// Scheduler: decides which queued jobs may start, given resource capacities.
//
// Jobs wait in one queue per task, ordered by (priority desc, submission asc). The
// rule is strict head-of-line per resource: among all jobs waiting for a resource r,
// only the first in (priority, submission) order may start, and only when everything
// it uses is free. So no job overtakes an earlier job of equal or higher priority
// waiting for the same resource: FIFO on an exclusive GPU is a special case. The
// price is that a small job may wait behind a large one that does not fit yet (no
// backfilling), which is what users of an exclusive device expect.
//
// Tenants (sched/tenant_shares.h): each job belongs to one, and the rule above holds
// within each tenant — its own jobs keep their order on every resource — while
// between tenants the next start goes to the one furthest below its weighted share of
// the resource's time, among those whose first startable job fits now. A tenant's
// job waiting for room never holds back another tenant's job that fits (the
// scheduler is work-conserving), and a tenant may be capped to some units of a
// resource. With one tenant (no [auth]) the rule is the single-tenant one.
//
// Dispatch looks only at queue heads: O(U (T log T + log n)) per started job for U
// tenants with queued jobs, T task queues and n queued jobs. The queues are
// order-statistics trees so that a job's position is O(T log n) without a scan.
//
// Not thread-safe: JobService calls it under its mutex.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "sched/resource_demand.h"
#include "sched/tenant_shares.h"

namespace offload {

template <typename Payload>
class Scheduler {
 public:
  // Order inside a queue: higher priority first, then earlier submission.
  // `tie` tells apart entries of equal priority and seq (in a cluster, a map's turn
  // and a job claimed from the shared queue may draw the same seq): the queue holds
  // one entry per key.
  struct Key {
    std::int64_t neg_priority;
    std::uint64_t seq;
    std::uintptr_t tie = 0;
    bool operator<(const Key& o) const {
      if (neg_priority != o.neg_priority) return neg_priority < o.neg_priority;
      return seq != o.seq ? seq < o.seq : tie < o.tie;
    }
  };
  static Key MakeKey(int priority, std::uint64_t seq, std::uintptr_t tie = 0) {
    return Key{-std::int64_t{priority}, seq, tie};
  }

  // Seconds on a monotonic clock: what tenants' shares are measured with.
  using Clock = std::function<double()>;
  // What a started job hands back to Release: when it started and what its tenant was
  // charged ahead for it.
  struct Started {
    double at = 0;
    double charge = 0;
  };

  // Without a clock, shares are not weighed: tenants' jobs start in the queue's one
  // order (priority, then submission), each tenant within its caps.
  explicit Scheduler(std::vector<std::int64_t> capacities, Clock clock = nullptr)
      : capacity_(std::move(capacities)),
        in_use_(capacity_.size(), 0),
        clock_(std::move(clock)),
        shares_(capacity_.size()) {
    assert(capacity_.size() <= 64);
  }

  // A new tenant, of weight 1 with no caps; returns its index. Tenant 0 exists from
  // the start.
  int AddTenant() { return shares_.Add(); }
  std::size_t tenants() const { return shares_.size(); }
  TenantShares& shares() { return shares_; }
  const TenantShares& shares() const { return shares_; }

  // Returns the new queue's index. REQUIRES: every amount <= its capacity.
  int AddQueue(ResourceDemand uses) {
    queues_.push_back(Queue{std::move(uses), {}, 0, 0, 0});
    return static_cast<int>(queues_.size()) - 1;
  }

  // REQUIRES: tenant < tenants().
  void Enqueue(int q, Key key, Payload p, int tenant = 0) {
    Queue& queue = queues_[q];
    if (queue.by_tenant.size() <= static_cast<std::size_t>(tenant)) queue.by_tenant.resize(tenant + 1);
    if (!queue.by_tenant[tenant].insert({key, std::move(p)}).second) return;
    ++queue.queued;
    if (queued_of_tenant_.size() <= static_cast<std::size_t>(tenant)) queued_of_tenant_.resize(tenant + 1, 0);
    ++queued_of_tenant_[tenant];
    shares_.OnQueued(tenant, queue.uses, Now());
  }

  // Removes a queued job (cancel). Returns false when it is not queued.
  bool Remove(int q, Key key, int tenant = 0) {
    Queue& queue = queues_[q];
    if (queue.by_tenant.size() <= static_cast<std::size_t>(tenant)) return false;
    if (queue.by_tenant[tenant].erase(key) == 0) return false;
    --queue.queued;
    --queued_of_tenant_[tenant];
    shares_.OnUnqueued(tenant, queue.uses);
    return true;
  }

  // 0-based count of the tenant's queued jobs that are ahead of `key` for any
  // resource its queue uses. (Other tenants' jobs may start before it or after it,
  // as their shares say.)
  std::size_t Position(int q, Key key, int tenant = 0) const {
    std::size_t ahead = 0;
    for (const Queue& other : queues_) {
      if ((other.uses.mask & queues_[q].uses.mask) && other.by_tenant.size() > static_cast<std::size_t>(tenant)) {
        ahead += other.by_tenant[tenant].order_of_key(key);
      }
    }
    return ahead;
  }

  std::size_t queued(int q) const { return queues_[q].queued; }
  // The tenant's queued jobs, of every queue.
  std::size_t queued_of(int tenant) const {
    return static_cast<std::size_t>(tenant) < queued_of_tenant_.size() ? queued_of_tenant_[tenant] : 0;
  }
  // Jobs of queue q that Dispatch started and Release has not ended.
  std::int64_t running(int q) const { return queues_[q].running; }
  std::int64_t capacity(int r) const { return capacity_[r]; }
  std::int64_t in_use(int r) const { return in_use_[r]; }

  // Units of resource r that queued jobs will ask for.
  std::int64_t queued_demand(int r) const {
    std::int64_t total = 0;
    for (const Queue& q : queues_) {
      for (auto [res, amount] : q.uses.units) {
        if (res == r) total += amount * static_cast<std::int64_t>(q.queued);
      }
    }
    return total;
  }

  // Starts every job that may start now, reserving its resources, and hands each to
  // on_start(queue, payload) — or on_start(queue, payload, Started), for a caller
  // that releases it with Release(q, tenant, started) — in start order.
  template <typename OnStart>
  void Dispatch(OnStart&& on_start) {
    const double now = Now();
    std::vector<std::pair<Key, int>> heads;
    for (;;) {
      // Each tenant's first job that may start now; of those, the job of the tenant
      // furthest below its share, then the earliest.
      int start = -1, start_tenant = -1;
      Key start_key{};
      double start_rank = 0;
      for (std::size_t t = 0; t < queued_of_tenant_.size(); ++t) {
        if (queued_of_tenant_[t] == 0) continue;
        const int tenant = static_cast<int>(t);
        const int q = FirstStartable(tenant, &heads);
        if (q < 0) continue;
        const Key key = queues_[q].by_tenant[t].begin()->first;
        const double rank = clock_ && tenants() > 1 ? shares_.Rank(tenant, queues_[q].uses, now) : 0;
        if (start < 0 || rank < start_rank || (rank == start_rank && key < start_key)) {
          start = q;
          start_tenant = tenant;
          start_key = key;
          start_rank = rank;
        }
      }
      if (start < 0) return;
      Queue& queue = queues_[start];
      Tree& jobs = queue.by_tenant[start_tenant];
      auto it = jobs.begin();
      Payload p = std::move(it->second);
      jobs.erase(it);
      --queue.queued;
      --queued_of_tenant_[start_tenant];
      for (auto [r, amount] : queue.uses.units) in_use_[r] += amount;
      ++queue.running;
      // Before any of its jobs ended, a task's run time is taken as a second: any
      // charge makes tenants take turns by their weights.
      const Started started{now, queue.timed == 0 ? 1.0 : queue.mean_run_s};
      shares_.OnStart(start_tenant, queue.uses, started.charge, now);
      if constexpr (std::is_invocable_v<OnStart, int, Payload, Started>) {
        on_start(start, std::move(p), started);
      } else {
        on_start(start, std::move(p));
      }
    }
  }

  // Counts `units` of resource r as held by work this scheduler did not start (the
  // jobs a cluster node already runs, when it picks what else it may start).
  // REQUIRES: in_use(r) + units <= capacity(r).
  void Hold(int r, std::int64_t units) {
    in_use_[r] += units;
    assert(in_use_[r] <= capacity_[r]);
  }

  // Returns what a job of queue q and `tenant` held, and counts the time it took
  // against the tenant's share. REQUIRES: that job was started by Dispatch, which
  // gave it `started`.
  void Release(int q, int tenant = 0, Started started = {}) {
    Queue& queue = queues_[q];
    --queue.running;
    assert(queue.running >= 0);
    for (auto [r, amount] : queue.uses.units) {
      in_use_[r] -= amount;
      assert(in_use_[r] >= 0);
    }
    const double now = Now();
    shares_.OnEnd(tenant, queue.uses, started.at, started.charge, now);
    // The task's mean run time, weighted to the latest: what a start is charged ahead.
    const double took = std::max(0.0, now - started.at);
    queue.mean_run_s = queue.timed == 0 ? took : 0.8 * queue.mean_run_s + 0.2 * took;
    ++queue.timed;
  }

 private:
  using Tree = __gnu_pbds::tree<Key, Payload, std::less<Key>, __gnu_pbds::rb_tree_tag,
                                __gnu_pbds::tree_order_statistics_node_update>;
  struct Queue {
    ResourceDemand uses;
    std::vector<Tree> by_tenant;  // Indexed by tenant; grown as tenants queue jobs.
    std::size_t queued = 0;
    std::int64_t running = 0;
    double mean_run_s = 0;
    std::uint64_t timed = 0;
  };

  double Now() const { return clock_ ? clock_() : 0; }

  // The queue of the tenant's first job that may start now (the single-tenant rule
  // over its own heads; `heads` is scratch), or -1.
  int FirstStartable(int tenant, std::vector<std::pair<Key, int>>* heads) const {
    heads->clear();
    for (int q = 0; q < static_cast<int>(queues_.size()); ++q) {
      const auto& by_tenant = queues_[q].by_tenant;
      if (by_tenant.size() > static_cast<std::size_t>(tenant) && !by_tenant[tenant].empty()) {
        heads->emplace_back(by_tenant[tenant].begin()->first, q);
      }
    }
    std::sort(heads->begin(), heads->end());
    std::uint64_t blocked = 0;
    for (auto [key, q] : *heads) {
      const ResourceDemand& uses = queues_[q].uses;
      if (uses.mask & blocked) {
        // An earlier job waits for one of these. This one keeps its place on all
        // the others too, or a later job could overtake it there.
        blocked |= uses.mask;
        continue;
      }
      if (Fits(uses) && shares_.WithinCaps(tenant, uses)) return q;
      blocked |= uses.mask;
    }
    return -1;
  }

  bool Fits(const ResourceDemand& uses) const {
    for (auto [r, amount] : uses.units) {
      if (in_use_[r] + amount > capacity_[r]) return false;
    }
    return true;
  }

  std::vector<std::int64_t> capacity_;
  std::vector<std::int64_t> in_use_;
  Clock clock_;
  TenantShares shares_;
  std::vector<Queue> queues_;
  std::vector<std::size_t> queued_of_tenant_;  // Indexed by tenant.
};

}  // namespace offload
