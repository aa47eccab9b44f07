// Batch and BatchOutcome, and the default StartBatch: each element through Start.
#include "exec/executor.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace offload {
namespace {

namespace json = boost::json;

// A batch of the map "map-7" over `input`, elements `indices`.
Batch MakeBatch(json::array input, std::vector<std::size_t> indices, bool stop_on_failure = false) {
  Batch b;
  b.map_id = "map-7";
  b.task = "t";
  b.input = std::make_shared<const json::value>(std::move(input));
  b.indices = std::move(indices);
  b.stop_on_failure = stop_on_failure;
  b.context = std::make_shared<RunContext>();
  return b;
}

TEST(BatchTest, AnElementAloneIsTheExecutionMapIdDotIndexOverTheMapsOwnInput) {
  Batch b = MakeBatch(json::array{10, 11, 12}, {2, 0});
  b.attempts = {3, 1};
  const Execution e = b.ExecutionOf(0);
  EXPECT_EQ(e.job_id, "map-7.2");
  EXPECT_EQ(*e.input, 12);
  EXPECT_EQ(e.input.get(), &b.input->get_array()[2]) << "the element is shared, not copied";
  EXPECT_EQ(e.attempt, 3);
  EXPECT_EQ(e.context, b.context);
  EXPECT_EQ(b.ExecutionOf(1).attempt, 1);
}

TEST(BatchOutcomeTest, KeepsEachOutcomeAsItsValueInTheMapsList) {
  BatchOutcome o;
  o.Add(Result::Json(json::array{1, 2}));
  o.Add(Result::Fail(JobError{"bad", "no", "line 1"}));
  o.Add(Result::Bytes("image/png", "\x89PNG"));
  ASSERT_EQ(o.ran(), 3u);
  EXPECT_EQ(o.values[0], (json::array{1, 2}));
  EXPECT_TRUE(o.values[1].is_null());
  EXPECT_EQ(o.values[2], (json::object{{"content_type", "image/png"}, {"base64", "iVBORw=="}}));
  ASSERT_EQ(o.errors.size(), 1u);
  EXPECT_EQ(o.errors[0].first, 1u);
  EXPECT_EQ(o.errors[0].second.type, "bad");
  EXPECT_EQ(o.errors[0].second.detail, "line 1");
}

// A map's result is one list: an element's result file goes into it, and away.
TEST(BatchOutcomeTest, AResultFileIsReadIntoTheList) {
  char path[] = "/tmp/offload-element-result-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "\x89PNG", 4), 4);
  ::close(fd);
  BatchOutcome o;
  o.Add(Result::File("image/png", path));
  o.Add(Result::File("image/png", "/nonexistent/offload-result"));
  ASSERT_EQ(o.ran(), 2u);
  EXPECT_EQ(o.values[0], (json::object{{"content_type", "image/png"}, {"base64", "iVBORw=="}}));
  EXPECT_NE(::access(path, F_OK), 0) << "the element's file stayed";
  ASSERT_EQ(o.errors.size(), 1u);
  EXPECT_EQ(o.errors[0].first, 1u);
}

// Reports each execution's input (an int) back, or fails on a negative one: inside
// Start for even inputs, and after Start has returned (from RunBatch) for odd ones,
// so that the default batch meets both. Not thread-safe: one test thread.
class EchoExecutor final : public Executor {
 public:
  void Start(Execution exec, ExecutionDone done) override {
    started.push_back(exec.job_id);
    const std::int64_t v = exec.input->as_int64();
    Result r = v < 0 ? Result::Fail("negative", "no") : Result::Json(v);
    if (v % 2 == 0) return done(std::move(r));
    later.emplace_back(std::move(done), std::move(r));
  }
  std::vector<std::string> started;
  std::vector<std::pair<ExecutionDone, Result>> later;
};

std::optional<BatchOutcome> RunBatch(EchoExecutor& e, Batch b) {
  std::optional<BatchOutcome> got;
  e.StartBatch(std::move(b), [&](BatchOutcome o) { got = std::move(o); });
  while (!got && !e.later.empty()) {
    auto [done, r] = std::move(e.later.back());
    e.later.pop_back();
    done(std::move(r));
  }
  return got;
}

TEST(DefaultStartBatchTest, RunsEachElementInOrderThroughStart) {
  EchoExecutor e;
  auto got = RunBatch(e, MakeBatch(json::array{4, 5, 6, 7}, {3, 2, 1, 0}));
  ASSERT_TRUE(got);
  EXPECT_EQ(e.started, (std::vector<std::string>{"map-7.3", "map-7.2", "map-7.1", "map-7.0"}));
  EXPECT_EQ(got->values, (json::array{7, 6, 5, 4}));
  EXPECT_TRUE(got->errors.empty());
}

TEST(DefaultStartBatchTest, StopsAfterAFailureOnlyWhenAsked) {
  for (bool stop : {true, false}) {
    EchoExecutor e;
    auto got = RunBatch(e, MakeBatch(json::array{1, -1, 3}, {0, 1, 2}, stop));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->ran(), stop ? 2u : 3u);
    ASSERT_EQ(got->errors.size(), 1u);
    EXPECT_EQ(got->errors[0].first, 1u);
  }
}

TEST(DefaultStartBatchTest, AStoppedContextRunsNothingMore) {
  EchoExecutor e;
  Batch b = MakeBatch(json::array{1, 2}, {0, 1});
  b.context->RequestStop(StopReason::kCanceled);
  auto got = RunBatch(e, std::move(b));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->ran(), 0u);
  EXPECT_TRUE(e.started.empty());
}

}  // namespace
}  // namespace offload
