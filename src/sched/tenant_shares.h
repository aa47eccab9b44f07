// TenantShares: how much of each resource's time each tenant has had, weighted, and
// what each may hold at once. The Scheduler asks it which tenant's job starts next
// when several compete (docs/api.md, "Fair share").
//
// A tenant's usage of resource r is in unit-seconds: what its ended executions held
// times how long they ran, plus, for each running one, the time it has run so far and
// the task's mean run time (charged at its start, so that several slots freed at once
// do not all go to the same tenant; replaced by what it took when it ends). The rank
// of a tenant for a job is its usage divided by its weight, the largest over the
// resources the job uses: the lowest rank starts first.
//
// A tenant that had nothing queued or running on r, and queues a job for it, is
// raised to the lowest weighted usage among the tenants active on r (measured: less
// what was charged ahead). Time spent idle
// is not banked: a tenant back after an hour gets its share from then on, not an hour
// of the resource to itself (start-time fair queuing's virtual time).
//
// Not thread-safe: the Scheduler's owner locks.
#pragma once

#include <cstdint>
#include <vector>

#include "sched/resource_demand.h"

namespace offload {

class TenantShares {
 public:
  // No cap on a resource.
  static constexpr std::int64_t kNoCap = -1;

  explicit TenantShares(std::size_t resources) : resources_(resources) { Add(); }

  // A new tenant, of weight 1 with no caps; returns its index. Tenant 0 exists from
  // the start.
  int Add();
  std::size_t size() const { return tenants_.size(); }

  // REQUIRES: weight > 0.
  void SetWeight(int t, double weight) { tenants_[t].weight = weight; }
  // At most `units` of resource r held by the tenant's running jobs; kNoCap for none.
  void SetCap(int t, int r, std::int64_t units) { tenants_[t].per_resource[r].cap = units; }

  // Whether a job using `uses` keeps the tenant within its caps.
  bool WithinCaps(int t, const ResourceDemand& uses) const;
  // The tenant's rank for a job using `uses`, at time `now` (seconds).
  double Rank(int t, const ResourceDemand& uses, double now) const;
  // Unit-seconds of resource r the tenant has had by `now`.
  double Usage(int t, int r, double now) const;
  std::int64_t running_units(int t, int r) const { return tenants_[t].per_resource[r].running_units; }
  // Unit-seconds of resource r that the tenant's ended executions held (no lifts, no
  // charges): what GET /metrics counts.
  double consumed(int t, int r) const { return tenants_[t].per_resource[r].consumed; }

  // A job using `uses` was queued for the tenant, or left its queue unstarted.
  void OnQueued(int t, const ResourceDemand& uses, double now);
  void OnUnqueued(int t, const ResourceDemand& uses);
  // A queued job started at `now`, charged `expected_s` per unit ahead of its end.
  void OnStart(int t, const ResourceDemand& uses, double expected_s, double now);
  // A job started at `started` with `charge` ended at `now`.
  void OnEnd(int t, const ResourceDemand& uses, double started, double charge, double now);

 private:
  struct PerResource {
    std::int64_t cap = kNoCap;
    std::int64_t queued_jobs = 0;    // Queued jobs that use it.
    std::int64_t running_units = 0;  // Held by running jobs.
    double ended = 0;                // Unit-seconds of ended jobs (and idle lifts).
    double running_since = 0;        // Sum of units x start time of running jobs.
    double charged = 0;              // Sum of units x charge of running jobs.
    double consumed = 0;             // Unit-seconds of ended jobs alone.
  };
  struct Tenant {
    double weight = 1;
    std::vector<PerResource> per_resource;
  };

  // Usage less what running jobs were charged ahead.
  double Measured(int t, int r, double now) const;
  bool Active(const PerResource& p) const { return p.queued_jobs > 0 || p.running_units > 0; }

  std::size_t resources_;
  std::vector<Tenant> tenants_;
};

}  // namespace offload
