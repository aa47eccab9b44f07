#include "exec/run_context.h"

#include <gtest/gtest.h>

#include <thread>

namespace offload {
namespace {

using namespace std::chrono_literals;

// A timeout counts the time an execution runs: not the time an executor kept it
// waiting for a worker to start.
TEST(RunContextTest, RunningTimeCountsFromCreationUnlessTheExecutorSaysItWaited) {
  const auto t0 = std::chrono::steady_clock::now();
  RunContext ctx;
  std::this_thread::sleep_for(5ms);
  EXPECT_GE(ctx.RunningFor(), 5ms) << "by default it runs from its creation";
  ctx.MarkWaiting();
  EXPECT_EQ(ctx.RunningFor(), 0ns);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ctx.RunningFor(), 0ns) << "waiting does not count";
  ctx.MarkRunning();
  const auto ran = ctx.RunningFor();
  const auto since_creation = std::chrono::steady_clock::now() - t0;
  EXPECT_LE(ran + 25ms, since_creation) << "it counts from MarkRunning, not from creation";
}

}  // namespace
}  // namespace offload
