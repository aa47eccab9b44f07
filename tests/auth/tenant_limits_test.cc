#include "auth/tenant_limits.h"

#include <gtest/gtest.h>

#include <vector>

namespace offload {
namespace {

TEST(TenantLimitsTest, AHoldCountsUntilItIsDroppedAndTenantsCountApart) {
  auto limits = TenantLimits::Create({/*max_streams=*/2, /*max_waits=*/1, /*request_rate=*/0});
  auto a1 = limits->HoldStream("alice");
  auto a2 = limits->HoldStream("alice");
  ASSERT_TRUE(a1);
  ASSERT_TRUE(a2);
  EXPECT_FALSE(limits->HoldStream("alice"));
  EXPECT_TRUE(limits->HoldStream("bob"));
  // Streams and waits are counted apart.
  auto w = limits->HoldWait("alice");
  ASSERT_TRUE(w);
  EXPECT_FALSE(limits->HoldWait("alice"));
  a1.reset();
  EXPECT_TRUE(limits->HoldStream("alice"));
  w.reset();
  EXPECT_TRUE(limits->HoldWait("alice"));
}

TEST(TenantLimitsTest, ZeroMeansNoCapAndAHoldOutlivesItsLimits) {
  auto limits = TenantLimits::Create({0, 0, 0});
  std::vector<TenantLimits::Hold> holds;
  for (int i = 0; i < 1000; ++i) holds.push_back(limits->HoldStream("alice"));
  for (const auto& h : holds) EXPECT_TRUE(h);
  int retry = 0;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limits->TakeRequest("alice", &retry));
  // The holds keep what they count in alive.
  limits.reset();
  holds.clear();
}

TEST(TenantLimitsTest, ARequestRateIsPerTenant) {
  auto limits = TenantLimits::Create({0, 0, 1.0 / 60});
  int retry = 0;
  EXPECT_TRUE(limits->TakeRequest("alice", &retry));
  EXPECT_FALSE(limits->TakeRequest("alice", &retry));
  EXPECT_GE(retry, 59);
  EXPECT_TRUE(limits->TakeRequest("bob", &retry));
}

}  // namespace
}  // namespace offload
