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
// Dispatch looks only at queue heads: O(T log T + log n) per started job for T task
// queues and n queued jobs. The queues are order-statistics trees so that a job's
// position is O(T log n) without a scan.
//
// Not thread-safe: JobService calls it under its mutex.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>
#include <functional>
#include <utility>
#include <vector>

#include "sched/resource_demand.h"

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

  explicit Scheduler(std::vector<std::int64_t> capacities)
      : capacity_(std::move(capacities)), in_use_(capacity_.size(), 0) {
    assert(capacity_.size() <= 64);
  }

  // Returns the new queue's index. REQUIRES: every amount <= its capacity.
  int AddQueue(ResourceDemand uses) {
    queues_.push_back(Queue{std::move(uses), {}, 0});
    return static_cast<int>(queues_.size()) - 1;
  }

  void Enqueue(int q, Key key, Payload p) { queues_[q].jobs.insert({key, std::move(p)}); }

  // Removes a queued job (cancel). Returns false when it is not queued.
  bool Remove(int q, Key key) { return queues_[q].jobs.erase(key) > 0; }

  // 0-based count of queued jobs that are ahead of `key` for any resource its
  // queue uses.
  std::size_t Position(int q, Key key) const {
    std::size_t ahead = 0;
    for (const Queue& other : queues_) {
      if (other.uses.mask & queues_[q].uses.mask) ahead += other.jobs.order_of_key(key);
    }
    return ahead;
  }

  std::size_t queued(int q) const { return queues_[q].jobs.size(); }
  // Jobs of queue q that Dispatch started and Release has not ended.
  std::int64_t running(int q) const { return queues_[q].running; }
  std::int64_t capacity(int r) const { return capacity_[r]; }
  std::int64_t in_use(int r) const { return in_use_[r]; }

  // Units of resource r that queued jobs will ask for.
  std::int64_t queued_demand(int r) const {
    std::int64_t total = 0;
    for (const Queue& q : queues_) {
      for (auto [res, amount] : q.uses.units) {
        if (res == r) total += amount * static_cast<std::int64_t>(q.jobs.size());
      }
    }
    return total;
  }

  // Starts every job that may start now, reserving its resources, and hands each to
  // on_start(queue, payload) in start order.
  template <typename OnStart>
  void Dispatch(OnStart&& on_start) {
    std::vector<std::pair<Key, int>> heads;
    for (;;) {
      heads.clear();
      for (int q = 0; q < static_cast<int>(queues_.size()); ++q) {
        if (!queues_[q].jobs.empty()) heads.emplace_back(queues_[q].jobs.begin()->first, q);
      }
      std::sort(heads.begin(), heads.end());
      std::uint64_t blocked = 0;
      int start = -1;
      for (auto [key, q] : heads) {
        const ResourceDemand& uses = queues_[q].uses;
        if (uses.mask & blocked) {
          // An earlier job waits for one of these. This one keeps its place on all
          // the others too, or a later job could overtake it there.
          blocked |= uses.mask;
          continue;
        }
        if (Fits(uses)) {
          start = q;
          break;
        }
        blocked |= uses.mask;
      }
      if (start < 0) return;
      Queue& queue = queues_[start];
      auto it = queue.jobs.begin();
      Payload p = std::move(it->second);
      queue.jobs.erase(it);
      for (auto [r, amount] : queue.uses.units) in_use_[r] += amount;
      ++queue.running;
      on_start(start, std::move(p));
    }
  }

  // Counts `units` of resource r as held by work this scheduler did not start (the
  // jobs a cluster node already runs, when it picks what else it may start).
  // REQUIRES: in_use(r) + units <= capacity(r).
  void Hold(int r, std::int64_t units) {
    in_use_[r] += units;
    assert(in_use_[r] <= capacity_[r]);
  }

  // Returns what a job of queue q held. REQUIRES: that job was started by Dispatch.
  void Release(int q) {
    --queues_[q].running;
    assert(queues_[q].running >= 0);
    for (auto [r, amount] : queues_[q].uses.units) {
      in_use_[r] -= amount;
      assert(in_use_[r] >= 0);
    }
  }

 private:
  using Tree = __gnu_pbds::tree<Key, Payload, std::less<Key>, __gnu_pbds::rb_tree_tag,
                                __gnu_pbds::tree_order_statistics_node_update>;
  struct Queue {
    ResourceDemand uses;
    Tree jobs;
    std::int64_t running = 0;
  };

  bool Fits(const ResourceDemand& uses) const {
    for (auto [r, amount] : uses.units) {
      if (in_use_[r] + amount > capacity_[r]) return false;
    }
    return true;
  }

  std::vector<std::int64_t> capacity_;
  std::vector<std::int64_t> in_use_;
  std::vector<Queue> queues_;
};

}  // namespace offload
