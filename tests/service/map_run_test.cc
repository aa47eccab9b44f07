#include "service/map_run.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "offload/error_types.h"

namespace offload {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

MapSpec Spec(std::int64_t chunk, bool collect = false) {
  MapSpec s;
  s.chunk = chunk;
  s.collect = collect;
  return s;
}

// A chunk's outcome from its elements' results; the first nullopt and those after it
// did not run.
ChunkOutcome Outcome(std::vector<std::optional<Result>> results, nanoseconds elapsed, StopReason stop) {
  ChunkOutcome outcome;
  for (std::optional<Result>& r : results) {
    if (!r) break;
    outcome.batch.Add(std::move(*r));
  }
  outcome.elapsed = elapsed;
  outcome.stop = stop;
  return outcome;
}

// Every element of `chunk` succeeded with its index as its value.
ChunkOutcome AllOk(const MapRun::Chunk& chunk, nanoseconds elapsed = nanoseconds(1000)) {
  std::vector<std::optional<Result>> out;
  for (std::size_t index : chunk.indices) out.push_back(Result::Json(static_cast<std::int64_t>(index)));
  return Outcome(std::move(out), elapsed, StopReason::kNone);
}

TEST(MapRunTest, AFixedChunkIsTakenInInputOrderAndResultsKeepIt) {
  MapRun run(5, Spec(2), 4);
  std::vector<MapRun::Chunk> chunks;
  while (run.pending()) chunks.push_back(run.TakeChunk());
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].indices, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(chunks[2].indices, (std::vector<std::size_t>{4}));
  EXPECT_TRUE(chunks[0].attempts.empty()) << "first attempts need no list";
  EXPECT_EQ(run.counts().running, 5u);
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) {  // Reported out of order.
    EXPECT_FALSE(run.Fold(*it, AllOk(*it), milliseconds(0), 0, true).failure);
  }
  EXPECT_TRUE(run.complete());
  EXPECT_EQ(run.counts().running, 0u);
  EXPECT_EQ(json::value(run.TakeResults()), json::parse("[0,1,2,3,4]"));
}

// Takes and folds chunks whose time is `fixed` + `per` * size, `rounds` times.
void RunChunks(MapRun* run, nanoseconds fixed, nanoseconds per, int rounds) {
  for (int i = 0; i < rounds && run->pending(); ++i) {
    MapRun::Chunk c = run->TakeChunk();
    run->Fold(c, AllOk(c, fixed + per * static_cast<std::int64_t>(c.indices.size())), milliseconds(0), 0, true);
  }
}

TEST(MapRunTest, AdaptiveChunksMeasureOneElementFirstThenGrowToTheTarget) {
  MapRun run(1'000'000, Spec(0), 2);
  MapRun::Chunk first = run.TakeChunk();
  ASSERT_EQ(first.indices.size(), 1u) << "measure first";
  run.Fold(first, AllOk(first, nanoseconds(1000)), milliseconds(0), 0, true);
  EXPECT_EQ(run.ChunkSize(), MapRun::kMaxGrowth) << "one measure is not trusted with a large chunk";
  // 1 µs per element, nothing fixed: a 2 ms target fits 2000.
  RunChunks(&run, nanoseconds(0), nanoseconds(1000), 10);
  EXPECT_EQ(run.ChunkSize(), 2000u);
  // Very fast elements are capped at kMaxChunk.
  MapRun fast(1'000'000, Spec(0), 2);
  RunChunks(&fast, nanoseconds(0), nanoseconds(1), 10);
  EXPECT_EQ(fast.ChunkSize(), MapRun::kMaxChunk);
}

TEST(MapRunTest, AFixedCostPerDispatchMakesChunksLongEnoughToAmortizeIt) {
  // A worker process: 400 µs per message (pipe, decode), 1 µs per element. The
  // fixed cost should stay under 1/20 of a chunk: 8 ms, about 7600 elements, where
  // timing the elements alone would stop at 2 ms.
  MapRun run(10'000'000, Spec(0), 2);
  RunChunks(&run, std::chrono::microseconds(400), nanoseconds(1000), 20);
  EXPECT_GE(run.ChunkSize(), 7000u);
  EXPECT_LE(run.ChunkSize(), 8192u);
  // On the thread pool the same elements make 2 ms chunks.
  MapRun inprocess(10'000'000, Spec(0), 2);
  RunChunks(&inprocess, std::chrono::microseconds(5), nanoseconds(1000), 20);
  EXPECT_GE(inprocess.ChunkSize(), 1900u);
  EXPECT_LE(inprocess.ChunkSize(), 2000u);
}

// Chunks offered to other nodes (job_service_chunks.cc) are sized to a longer target,
// and the measure tells what a chunk of any size takes.
TEST(MapRunTest, ALongerTargetTakesALongerChunkAndTheMeasureTellsItsTime) {
  MapRun run(1'000'000, Spec(0), 2);
  EXPECT_FALSE(run.measured());
  RunChunks(&run, nanoseconds(0), nanoseconds(1000), 10);  // 1 µs per element.
  ASSERT_TRUE(run.measured());
  EXPECT_EQ(run.ChunkSize(), 2000u);
  const std::size_t longer = run.ChunkSize(milliseconds(8));
  EXPECT_EQ(longer, 8000u);
  EXPECT_NEAR(static_cast<double>(run.ChunkTime(longer).count()), 8e6, 1e5);
  const std::size_t before = run.remaining();
  MapRun::Chunk chunk = run.TakeChunk(milliseconds(8));
  EXPECT_EQ(chunk.indices.size(), 8000u);
  EXPECT_EQ(run.remaining(), before - 8000);
}

TEST(MapRunTest, AtTheTailEverySlotGetsAShare) {
  MapRun run(41, Spec(0), 4);
  MapRun::Chunk first = run.TakeChunk();
  run.Fold(first, AllOk(first, nanoseconds(10)), milliseconds(0), 0, true);
  // 40 left over 4 slots: 40 / (2 * 4) = 5 per chunk, not one chunk of 40.
  EXPECT_EQ(run.ChunkSize(), 5u);
}

TEST(MapRunTest, AFailedElementComesBackForItsRetriesThenFailsTheMapFast) {
  MapRun run(3, Spec(3), 1);
  MapRun::Chunk chunk = run.TakeChunk();
  std::vector<std::optional<Result>> out;
  out.push_back(Result::Json(0));
  out.push_back(Result::Fail("boom", "it broke"));
  out.push_back(Result::Json(2));
  MapRun::Folded folded =
      run.Fold(chunk, Outcome(std::move(out), nanoseconds(1), StopReason::kNone), milliseconds(0), 1, true);
  ASSERT_EQ(folded.retries.size(), 1u);
  EXPECT_EQ(folded.retries[0], (std::pair<std::size_t, int>{1, 1}));
  EXPECT_FALSE(folded.failure);
  EXPECT_EQ(run.counts().done, 2u);
  EXPECT_FALSE(run.pending()) << "the element waits for its back-off";

  run.Retry(1);
  ASSERT_TRUE(run.pending());
  MapRun::Chunk again = run.TakeChunk();
  EXPECT_EQ(again.indices, (std::vector<std::size_t>{1}));
  EXPECT_EQ(again.attempts, (std::vector<int>{2}));
  std::vector<std::optional<Result>> second;
  second.push_back(Result::Fail("boom", "still broken"));
  folded = run.Fold(again, Outcome(std::move(second), nanoseconds(1), StopReason::kNone), milliseconds(0), 1, true);
  EXPECT_TRUE(folded.retries.empty()) << "one retry only";
  ASSERT_TRUE(folded.failure);
  EXPECT_EQ(folded.failure->type, "boom");
  EXPECT_EQ(folded.failure->message, "element 1 of 3 failed: still broken");
  EXPECT_EQ(folded.failed_index, 1);
  EXPECT_TRUE(run.stopping());
  EXPECT_EQ(run.counts().failed, 1u);
}

TEST(MapRunTest, InvalidInputAndADrainingServerAreNotRetried) {
  for (bool invalid : {true, false}) {
    MapRun run(1, Spec(1, /*collect=*/true), 1);
    MapRun::Chunk chunk = run.TakeChunk();
    std::vector<std::optional<Result>> out;
    out.push_back(Result::Fail(invalid ? error_type::kInvalidInput : "boom", "no"));
    MapRun::Folded folded = run.Fold(chunk, Outcome(std::move(out), nanoseconds(1), StopReason::kNone), milliseconds(0),
                                     5, /*may_retry=*/invalid);
    EXPECT_TRUE(folded.retries.empty());
    EXPECT_FALSE(folded.failure) << "collect keeps going";
    EXPECT_TRUE(run.complete());
    EXPECT_EQ(
        json::value(run.TakeResults()),
        json::value(json::array{json::object{
            {"error", json::object{{"type", invalid ? error_type::kInvalidInput : "boom"}, {"message", "no"}}}}}));
  }
}

// A failure that is not retried leaves later chunks first attempts, with no list.
TEST(MapRunTest, ChunksAfterAFailureNotRetriedCarryNoAttempts) {
  MapRun run(4, Spec(2, /*collect=*/true), 1);
  MapRun::Chunk first = run.TakeChunk();
  std::vector<std::optional<Result>> out;
  out.push_back(Result::Json(0));
  out.push_back(Result::Fail("boom", "no"));
  run.Fold(first, Outcome(std::move(out), nanoseconds(1), StopReason::kNone), milliseconds(0), 0, true);
  MapRun::Chunk second = run.TakeChunk();
  EXPECT_EQ(second.indices, (std::vector<std::size_t>{2, 3}));
  EXPECT_TRUE(second.attempts.empty());
}

TEST(MapRunTest, CollectWrapsEachOutcome) {
  MapRun run(2, Spec(2, /*collect=*/true), 1);
  MapRun::Chunk chunk = run.TakeChunk();
  std::vector<std::optional<Result>> out;
  out.push_back(Result::Bytes("image/png", "\x89PNG"));
  out.push_back(Result::Fail("boom", "x"));
  run.Fold(chunk, Outcome(std::move(out), nanoseconds(1), StopReason::kNone), milliseconds(0), 0, true);
  ASSERT_TRUE(run.complete());
  EXPECT_EQ(run.counts().failed, 1u);
  const json::array results = run.TakeResults();
  EXPECT_EQ(results[0].at("ok").at("content_type"), "image/png");
  EXPECT_TRUE(results[0].at("ok").as_object().contains("base64"));
  EXPECT_EQ(results[1].at("error").at("type"), "boom");
}

TEST(MapRunTest, ElementsAStoppedChunkDidNotRunGoOutFirstNextTime) {
  MapRun run(6, Spec(3), 1);
  MapRun::Chunk chunk = run.TakeChunk();
  std::vector<std::optional<Result>> out;
  out.push_back(Result::Json(0));
  out.push_back(std::nullopt);
  out.push_back(std::nullopt);
  run.Fold(chunk, Outcome(std::move(out), nanoseconds(1), StopReason::kNone), milliseconds(0), 0, true);
  EXPECT_EQ(run.TakeChunk().indices, (std::vector<std::size_t>{1, 2, 3}));
}

TEST(MapRunTest, TheLastElementThatRanInATimedOutChunkFailsAsTimeout) {
  MapRun run(3, Spec(3), 1);
  MapRun::Chunk chunk = run.TakeChunk();
  std::vector<std::optional<Result>> out;
  out.push_back(Result::Json(0));
  out.push_back(Result::Fail(error_type::kCanceled, "stopped"));
  out.push_back(std::nullopt);
  MapRun::Folded folded =
      run.Fold(chunk, Outcome(std::move(out), nanoseconds(1), StopReason::kTimeout), milliseconds(250), 0, true);
  ASSERT_TRUE(folded.failure);
  EXPECT_EQ(folded.failure->type, error_type::kTimeout);
  EXPECT_EQ(folded.failure->message, "element 1 of 3 failed: the element ran longer than its timeout of 250 ms");
  EXPECT_FALSE(run.pending()) << "a failed map takes no more";
}

TEST(MapRunTest, AStoppedMapFoldsNothingButFreesItsSlots) {
  MapRun run(4, Spec(2), 1);
  MapRun::Chunk chunk = run.TakeChunk();
  run.Stop();
  run.Retry(3);
  EXPECT_FALSE(run.pending());
  run.Fold(chunk, AllOk(chunk), milliseconds(0), 0, true);
  EXPECT_EQ(run.counts().running, 0u);
  EXPECT_EQ(run.counts().done, 0u);
}

TEST(MapRunTest, AnEmptyMapIsCompleteAtOnce) {
  MapRun run(0, Spec(0), 1);
  EXPECT_TRUE(run.complete());
  EXPECT_FALSE(run.pending());
  EXPECT_EQ(run.progress(), 1.0);
}

}  // namespace
}  // namespace offload
