#include "auth/tenant_limits.h"

namespace offload {

std::shared_ptr<TenantLimits> TenantLimits::Create(TenantLimitOptions options) {
  return std::shared_ptr<TenantLimits>(new TenantLimits(options));
}

bool TenantLimits::TakeRequest(const std::string& tenant, int* retry_after_s) {
  if (options_.request_rate <= 0) return true;
  const auto now = TokenBucket::Clock::now();
  MutexLock lock(&mu_);
  Tenant& t = tenants_[tenant];
  if (!t.requests) t.requests = std::make_unique<TokenBucket>(options_.request_rate, now);
  return t.requests->Take(now, retry_after_s);
}

void TenantLimits::SetSubmitRates(const std::map<std::string, double>& rates) {
  MutexLock lock(&mu_);
  for (auto& [name, t] : tenants_) {
    if (!rates.count(name) && t.submit_rate > 0) {
      t.submit_rate = 0;
      t.submits.reset();
    }
  }
  for (const auto& [name, rate] : rates) {
    Tenant& t = tenants_[name];
    if (t.submit_rate == rate) continue;
    t.submit_rate = rate;
    t.submits.reset();
  }
  any_submit_rate_.store(!rates.empty(), std::memory_order_release);
}

bool TenantLimits::TakeSubmit(const std::string& tenant, int* retry_after_s, double* rate) {
  if (!any_submit_rate_.load(std::memory_order_acquire)) return true;
  const auto now = TokenBucket::Clock::now();
  MutexLock lock(&mu_);
  auto it = tenants_.find(tenant);
  if (it == tenants_.end() || it->second.submit_rate <= 0) return true;
  Tenant& t = it->second;
  if (!t.submits) t.submits = std::make_unique<TokenBucket>(t.submit_rate, now);
  *rate = t.submit_rate;
  return t.submits->Take(now, retry_after_s);
}

TenantLimits::Hold TenantLimits::HoldStream(const std::string& tenant) {
  return HoldOne(tenant, &Tenant::streams, options_.max_streams);
}

TenantLimits::Hold TenantLimits::HoldWait(const std::string& tenant) {
  return HoldOne(tenant, &Tenant::waits, options_.max_waits);
}

TenantLimits::Hold TenantLimits::HoldOne(const std::string& tenant, std::int64_t Tenant::*count, std::int64_t cap) {
  {
    MutexLock lock(&mu_);
    std::int64_t& held = tenants_[tenant].*count;
    if (cap > 0 && held >= cap) return nullptr;
    ++held;
  }
  // The hold points at the limits (never null, so that it tests true); its deleter
  // gives the slot back.
  return Hold(static_cast<void*>(this), [self = shared_from_this(), tenant, count](void*) {
    MutexLock lock(&self->mu_);
    --(self->tenants_[tenant].*count);
  });
}

}  // namespace offload
