#include "http/accept_backoff.h"

#include <gtest/gtest.h>

namespace offload {
namespace {

using namespace std::chrono_literals;
using Clock = AcceptBackoff::Clock;

TEST(AcceptBackoffTest, FailuresWaitLongerUpToASecondAndSuccessResets) {
  AcceptBackoff b;
  EXPECT_EQ(b.OnFailure("Too many open files"), 10ms);
  EXPECT_EQ(b.OnFailure("Too many open files"), 20ms);
  EXPECT_EQ(b.OnFailure("Too many open files"), 40ms);
  for (int i = 0; i < 20; ++i) b.OnFailure("Too many open files");
  EXPECT_EQ(b.OnFailure("Too many open files"), 1000ms) << "capped";
  b.OnSuccess();
  EXPECT_EQ(b.OnFailure("Too many open files"), 10ms);
}

TEST(AcceptBackoffTest, OneLogLinePerPeriodWithTheCounts) {
  AcceptBackoff b;
  const Clock::time_point t0 = Clock::now();
  EXPECT_EQ(b.TakeLogLine(t0), std::nullopt) << "nothing to say";
  b.OnRefused();
  b.OnRefused();
  b.OnFailure("Too many open files");
  auto first = b.TakeLogLine(t0);
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->find("2 connection(s) refused"), std::string::npos) << *first;
  EXPECT_NE(first->find("1 accept(s) failed (last: Too many open files)"), std::string::npos) << *first;
  // A flood within the period costs no line at all...
  for (int i = 0; i < 100'000; ++i) b.OnRefused();
  EXPECT_EQ(b.TakeLogLine(t0 + 5s), std::nullopt);
  // ...and one line once it has passed, with what was counted meanwhile.
  auto second = b.TakeLogLine(t0 + 10s);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->find("100000 connection(s) refused"), std::string::npos) << *second;
  EXPECT_NE(second->find("in the last 10 s"), std::string::npos) << *second;
  EXPECT_EQ(second->find("accept(s) failed"), std::string::npos) << "the counts started again";
  EXPECT_EQ(b.TakeLogLine(t0 + 30s), std::nullopt);
}

}  // namespace
}  // namespace offload
