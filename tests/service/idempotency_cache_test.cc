#include "service/idempotency_cache.h"

#include <gtest/gtest.h>

namespace offload {
namespace {

constexpr std::int64_t kTtl = 1000;

IdempotencyCache::Entry Entry(const std::string& job, UnixMillis at, bool stored = true) {
  return IdempotencyCache::Entry{job, 42, at, stored};
}

TEST(IdempotencyCacheTest, AKeyIsFoundUntilItsTtlPasses) {
  IdempotencyCache cache(kTtl);
  cache.Put("t", "k", Entry("j1", 100));
  ASSERT_NE(cache.Find("t", "k", 100), nullptr);
  EXPECT_EQ(cache.Find("t", "k", 1099)->job_id, "j1");
  EXPECT_EQ(cache.Find("t", "k", 1100), nullptr) << "expired at created_at + ttl";
  EXPECT_EQ(cache.Find("other", "k", 100), nullptr) << "keys are per task";
}

TEST(IdempotencyCacheTest, RemoveExpiredDropsOnlyWhatExpiredInTimeOrder) {
  IdempotencyCache cache(kTtl);
  cache.Put("t", "late", Entry("j3", 300));
  cache.Put("t", "early", Entry("j1", 100));
  cache.Put("t", "mid", Entry("j2", 200));
  EXPECT_EQ(cache.RemoveExpired(1099), 0u);
  EXPECT_EQ(cache.RemoveExpired(1200), 2u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.Find("t", "late", 1200), nullptr);
  EXPECT_EQ(cache.RemoveExpired(5000), 1u);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(IdempotencyCacheTest, AnEntryWhoseInsertIsInFlightOutlivesItsTtlUntilStored) {
  IdempotencyCache cache(kTtl);
  cache.Put("t", "k", Entry("j1", 100, /*stored=*/false));
  EXPECT_EQ(cache.RemoveExpired(5000), 0u);
  EXPECT_EQ(cache.size(), 1u);
  cache.MarkStored("t", "k", "j1");
  EXPECT_EQ(cache.RemoveExpired(5000), 1u);
}

TEST(IdempotencyCacheTest, MarkStoredAndForgetTouchOnlyTheirOwnJob) {
  IdempotencyCache cache(kTtl);
  cache.Put("t", "k", Entry("j2", 100, /*stored=*/false));
  cache.MarkStored("t", "k", "j1");  // An older job of the same key.
  EXPECT_FALSE(cache.Find("t", "k", 100)->stored);
  cache.Forget("t", "k", "j1");
  EXPECT_NE(cache.Find("t", "k", 100), nullptr);
  cache.MarkStored("t", "k", "j2");
  EXPECT_TRUE(cache.Find("t", "k", 100)->stored);
  cache.Forget("t", "k", "j2");
  EXPECT_EQ(cache.Find("t", "k", 100), nullptr);
  EXPECT_EQ(cache.RemoveExpired(5000), 0u) << "the time index forgot it too";
}

TEST(IdempotencyCacheTest, PutReplacesAnEarlierEntryOfTheKeyAndItsPlaceInTime) {
  IdempotencyCache cache(kTtl);
  cache.Put("t", "k", Entry("old", 100));
  cache.Put("t", "k", Entry("new", 2000));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.RemoveExpired(1500), 0u) << "the replaced entry's old time must not expire the new one";
  EXPECT_EQ(cache.Find("t", "k", 1500)->job_id, "new");
}

}  // namespace
}  // namespace offload
