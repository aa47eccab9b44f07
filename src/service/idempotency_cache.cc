#include "service/idempotency_cache.h"

namespace offload {

const IdempotencyCache::Entry* IdempotencyCache::Find(const std::string& scope, const std::string& key,
                                                      UnixMillis now) const {
  auto it = entries_.find(MakeSlot(scope, key));
  if (it == entries_.end() || it->second.entry.created_at + ttl_ms_ <= now) return nullptr;
  return &it->second.entry;
}

IdempotencyCache::Indexed* IdempotencyCache::FindSlot(const std::string& scope, const std::string& key) {
  auto it = entries_.find(MakeSlot(scope, key));
  return it == entries_.end() ? nullptr : &it->second;
}

void IdempotencyCache::Put(const std::string& scope, const std::string& key, Entry entry) {
  Slot slot = MakeSlot(scope, key);
  if (auto it = entries_.find(slot); it != entries_.end()) Erase(it);
  auto by_time = by_time_.emplace(entry.created_at, slot);
  entries_.emplace(std::move(slot), Indexed{std::move(entry), by_time});
}

void IdempotencyCache::MarkStored(const std::string& scope, const std::string& key, const std::string& job_id) {
  if (Indexed* e = FindSlot(scope, key); e && e->entry.job_id == job_id) e->entry.stored = true;
}

void IdempotencyCache::Forget(const std::string& scope, const std::string& key, const std::string& job_id) {
  auto it = entries_.find(MakeSlot(scope, key));
  if (it != entries_.end() && it->second.entry.job_id == job_id) Erase(it);
}

void IdempotencyCache::Erase(std::unordered_map<Slot, Indexed>::iterator it) {
  by_time_.erase(it->second.by_time);
  entries_.erase(it);
}

std::size_t IdempotencyCache::RemoveExpired(UnixMillis now) {
  std::size_t dropped = 0;
  for (auto t = by_time_.begin(); t != by_time_.end() && t->first + ttl_ms_ <= now;) {
    auto it = entries_.find(t->second);
    ++t;  // Erase below invalidates the iterator of this entry only.
    if (!it->second.entry.stored) continue;
    Erase(it);
    ++dropped;
  }
  return dropped;
}

}  // namespace offload
