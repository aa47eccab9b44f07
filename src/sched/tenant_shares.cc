#include "sched/tenant_shares.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace offload {

int TenantShares::Add() {
  tenants_.push_back(Tenant{1, std::vector<PerResource>(resources_)});
  return static_cast<int>(tenants_.size()) - 1;
}

bool TenantShares::WithinCaps(int t, const ResourceDemand& uses) const {
  for (auto [r, amount] : uses.units) {
    const PerResource& p = tenants_[t].per_resource[r];
    if (p.cap != kNoCap && p.running_units + amount > p.cap) return false;
  }
  return true;
}

double TenantShares::Usage(int t, int r, double now) const {
  return Measured(t, r, now) + tenants_[t].per_resource[r].charged;
}

double TenantShares::Measured(int t, int r, double now) const {
  const PerResource& p = tenants_[t].per_resource[r];
  return p.ended + static_cast<double>(p.running_units) * now - p.running_since;
}

double TenantShares::Rank(int t, const ResourceDemand& uses, double now) const {
  double rank = 0;
  for (auto [r, amount] : uses.units) rank = std::max(rank, Usage(t, r, now) / tenants_[t].weight);
  return rank;
}

void TenantShares::OnQueued(int t, const ResourceDemand& uses, double now) {
  Tenant& tenant = tenants_[t];
  for (auto [r, amount] : uses.units) {
    PerResource& p = tenant.per_resource[r];
    if (!Active(p) && tenants_.size() > 1) {
      double floor = std::numeric_limits<double>::infinity();
      for (std::size_t u = 0; u < tenants_.size(); ++u) {
        if (static_cast<int>(u) != t && Active(tenants_[u].per_resource[r])) {
          floor = std::min(floor, Measured(static_cast<int>(u), r, now) / tenants_[u].weight);
        }
      }
      const double own = Measured(t, r, now) / tenant.weight;
      if (floor != std::numeric_limits<double>::infinity() && own < floor) p.ended += (floor - own) * tenant.weight;
    }
    ++p.queued_jobs;
  }
}

void TenantShares::OnUnqueued(int t, const ResourceDemand& uses) {
  for (auto [r, amount] : uses.units) {
    --tenants_[t].per_resource[r].queued_jobs;
    assert(tenants_[t].per_resource[r].queued_jobs >= 0);
  }
}

void TenantShares::OnStart(int t, const ResourceDemand& uses, double expected_s, double now) {
  for (auto [r, amount] : uses.units) {
    PerResource& p = tenants_[t].per_resource[r];
    --p.queued_jobs;
    assert(p.queued_jobs >= 0);
    const auto units = static_cast<double>(amount);
    p.running_units += amount;
    p.running_since += units * now;
    p.charged += units * expected_s;
  }
}

void TenantShares::OnEnd(int t, const ResourceDemand& uses, double started, double charge, double now) {
  for (auto [r, amount] : uses.units) {
    PerResource& p = tenants_[t].per_resource[r];
    const auto units = static_cast<double>(amount);
    p.running_units -= amount;
    assert(p.running_units >= 0);
    p.running_since -= units * started;
    p.charged -= units * charge;
    p.ended += units * std::max(0.0, now - started);
    p.consumed += units * std::max(0.0, now - started);
    if (p.running_units == 0) {
      // What is left of the sums is rounding.
      p.running_since = 0;
      p.charged = 0;
    }
  }
}

}  // namespace offload
