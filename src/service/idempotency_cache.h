// IdempotencyCache: which job each (scope, Idempotency-Key) created, for as long as
// the key is honoured (idempotency_ttl). The store keeps the same facts durably; this
// is the copy Submit checks without a round trip to disk.
//
// Not thread-safe: JobService calls it under its mutex. Entries are indexed by
// creation time as well as by key, so expiry visits only what expires instead of
// scanning every key under the service's lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "util/clock.h"

namespace offload {

// The scope a key is unique within: the jobs of one task and one tenant, so that two
// tenants' keys never meet.
inline std::string IdempotencyScope(const std::string& task, const std::string& tenant) {
  return tenant.empty() ? task : task + '\0' + tenant;
}

class IdempotencyCache {
 public:
  struct Entry {
    std::string job_id;
    std::uint64_t request_hash = 0;
    UnixMillis created_at = 0;
    bool stored = false;  // False while the first request's insert is in flight.
  };

  // Keys live `ttl_ms` from their creation.
  explicit IdempotencyCache(std::int64_t ttl_ms) : ttl_ms_(ttl_ms) {}

  // The live entry of (scope, key) at `now`; nullptr when there is none or it expired.
  const Entry* Find(const std::string& scope, const std::string& key, UnixMillis now) const;
  // Records (or replaces) the entry of (scope, key).
  void Put(const std::string& scope, const std::string& key, Entry entry);
  // The insert of `job_id` is durable: its entry, if still there, counts as stored.
  void MarkStored(const std::string& scope, const std::string& key, const std::string& job_id);
  // The insert of `job_id` failed: its entry, if still there, goes.
  void Forget(const std::string& scope, const std::string& key, const std::string& job_id);
  // Drops the stored entries that expired by `now`. An entry whose insert is still in
  // flight stays until it is stored (or forgotten) and expires then.
  // Returns how many were dropped. Cost: O(dropped · log n) plus the in-flight ones
  // passed over.
  std::size_t RemoveExpired(UnixMillis now);

  std::size_t size() const { return entries_.size(); }

 private:
  using Slot = std::string;  // "scope\0key"
  struct Indexed {
    Entry entry;
    std::multimap<UnixMillis, Slot>::iterator by_time;
  };
  static Slot MakeSlot(const std::string& scope, const std::string& key) { return scope + '\0' + key; }
  Indexed* FindSlot(const std::string& scope, const std::string& key);
  void Erase(std::unordered_map<Slot, Indexed>::iterator it);

  const std::int64_t ttl_ms_;
  std::unordered_map<Slot, Indexed> entries_;
  std::multimap<UnixMillis, Slot> by_time_;  // Creation time -> slot; same entries.
};

}  // namespace offload
