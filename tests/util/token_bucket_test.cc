#include "util/token_bucket.h"

#include <gtest/gtest.h>

namespace offload {
namespace {

using std::chrono::milliseconds;

TEST(TokenBucketTest, ASecondsWorthGoesAtOnceThenOneAtTheRate) {
  const auto t0 = TokenBucket::Clock::now();
  TokenBucket bucket(10, t0);
  int retry = 0;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(bucket.Take(t0, &retry)) << i;
  EXPECT_FALSE(bucket.Take(t0, &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_FALSE(bucket.Take(t0 + milliseconds(50), &retry));  // Half a token.
  EXPECT_TRUE(bucket.Take(t0 + milliseconds(100), &retry));
  EXPECT_FALSE(bucket.Take(t0 + milliseconds(100), &retry));
  // A quiet while fills it to a second's worth, no more.
  const auto later = t0 + std::chrono::seconds(60);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(bucket.Take(later, &retry)) << i;
  EXPECT_FALSE(bucket.Take(later, &retry));
}

TEST(TokenBucketTest, ASlowRateHasABurstOfOneAndSaysHowLongToWait) {
  const auto t0 = TokenBucket::Clock::now();
  TokenBucket bucket(1.0 / 60, t0);  // "1/m"
  int retry = 0;
  EXPECT_TRUE(bucket.Take(t0, &retry));
  EXPECT_FALSE(bucket.Take(t0, &retry));
  EXPECT_EQ(retry, 60);
  EXPECT_FALSE(bucket.Take(t0 + std::chrono::seconds(30), &retry));
  EXPECT_EQ(retry, 30);
  EXPECT_TRUE(bucket.Take(t0 + std::chrono::seconds(60), &retry));
}

}  // namespace
}  // namespace offload
