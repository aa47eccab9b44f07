// TenantLimits: what one tenant may hold at once and how fast it may ask, with [auth]
// (docs/security.md#limits): event streams (max_streams), requests that wait for a job
// (max_waits: ?wait=, Prefer: wait, /run), requests a second (request_rate), and
// submits a second (its token's submit_rate quota). A tenant's tokens share its
// limits. Per server: a cluster's nodes count apart.
//
// Thread-safe: one mutex over the per-tenant counters; what a hold releases it takes
// again for a moment, from whichever thread drops the hold.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "util/mutex.h"
#include "util/thread_annotations.h"
#include "util/token_bucket.h"

namespace offload {

struct TenantLimitOptions {
  std::int64_t max_streams = 0;  // Open event streams per tenant; 0: no cap.
  std::int64_t max_waits = 0;    // Requests waiting for a job per tenant; 0: no cap.
  double request_rate = 0;       // Requests a second per tenant; 0: no limit.
};

class TenantLimits : public std::enable_shared_from_this<TenantLimits> {
 public:
  // Made shared: a hold keeps the limits it counts in alive.
  static std::shared_ptr<TenantLimits> Create(TenantLimitOptions options);

  // Takes one request of `tenant`; false (and *retry_after_s) when its rate is spent.
  bool TakeRequest(const std::string& tenant, int* retry_after_s) LOCKS_EXCLUDED(mu_);
  // Each tenant's submit_rate (submits a second); a tenant not named has none. A rate
  // that changed starts with a full bucket.
  void SetSubmitRates(const std::map<std::string, double>& rates) LOCKS_EXCLUDED(mu_);
  // Takes one submit of `tenant`; false (and *retry_after_s, and *rate, its rate) when
  // its submit_rate is spent.
  bool TakeSubmit(const std::string& tenant, int* retry_after_s, double* rate) LOCKS_EXCLUDED(mu_);

  // A stream or a wait of `tenant`, counted until the returned hold is dropped;
  // nullptr when the tenant holds its cap already.
  using Hold = std::shared_ptr<void>;
  Hold HoldStream(const std::string& tenant) LOCKS_EXCLUDED(mu_);
  Hold HoldWait(const std::string& tenant) LOCKS_EXCLUDED(mu_);

  const TenantLimitOptions& options() const { return options_; }

 private:
  explicit TenantLimits(TenantLimitOptions options) : options_(options) {}

  struct Tenant {
    std::int64_t streams = 0;
    std::int64_t waits = 0;
    std::unique_ptr<TokenBucket> requests;  // Made at the tenant's first request.
    double submit_rate = 0;
    std::unique_ptr<TokenBucket> submits;  // Made at its first submit under submit_rate.
  };
  Hold HoldOne(const std::string& tenant, std::int64_t Tenant::*count, std::int64_t cap) LOCKS_EXCLUDED(mu_);

  const TenantLimitOptions options_;
  // Whether any tenant has a submit_rate: without one, a submit takes no lock.
  std::atomic<bool> any_submit_rate_{false};
  Mutex mu_;
  // Keyed by tenant name: as many entries as the tokens file has names.
  std::unordered_map<std::string, Tenant> tenants_ GUARDED_BY(mu_);
};

}  // namespace offload
