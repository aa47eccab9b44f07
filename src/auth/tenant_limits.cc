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
