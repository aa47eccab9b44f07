#include "store/result_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace offload {
namespace {

std::shared_ptr<const Output> Png(std::size_t bytes) {
  return Result::Bytes("image/png", std::string(bytes, 'p')).output();
}

TEST(ResultCacheTest, ALargeResultIsSharedWhileSomeoneHoldsIt) {
  ResultCache cache;
  auto held = Png(ResultCache::kMinBytes);
  cache.Remember("a", held, held->bytes.size());
  EXPECT_EQ(cache.Find("a"), held);
  EXPECT_EQ(cache.Find("b"), nullptr);
  held.reset();
  EXPECT_EQ(cache.Find("a"), nullptr) << "the cache kept a result alive by itself";
  EXPECT_EQ(cache.SizeForTest(), 0u) << "a dead entry found is dropped";
}

TEST(ResultCacheTest, SmallResultsAreNotTracked) {
  ResultCache cache;
  auto small = Png(ResultCache::kMinBytes - 1);
  cache.Remember("a", small, small->bytes.size());
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.SizeForTest(), 0u);
}

TEST(ResultCacheTest, DeadEntriesArePrunedAsTheMapGrows) {
  ResultCache cache;
  auto kept = Png(ResultCache::kMinBytes);
  cache.Remember("kept", kept, kept->bytes.size());
  for (int i = 0; i < 10'000; ++i) {
    auto gone = Png(ResultCache::kMinBytes);
    cache.Remember("gone" + std::to_string(i), gone, gone->bytes.size());
  }
  // Every result but one is gone: the map holds about as many entries as at its last
  // prune, never all 10,001.
  EXPECT_LT(cache.SizeForTest(), 2'100u);
  EXPECT_EQ(cache.Find("kept"), kept);
}

}  // namespace
}  // namespace offload
