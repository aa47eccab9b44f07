// Parallel maps in JobService: order, failure modes, cancel, retries and the turns a
// map takes with other jobs, reached with gated handlers rather than timing.
#include <gtest/gtest.h>

#include <random>

#include "job_service_fixture.h"

namespace offload {
namespace {

class JobServiceMapTest : public JobServiceTest {
 protected:
  SnapshotOr SubmitMap(const std::string& task, json::array elements, MapSpec spec = {}, int priority = 0) {
    return Sync([&](JobService::SnapshotCallback done) {
      SubmitRequest r = Request(task, std::move(elements), priority);
      r.map = spec;
      service_->Submit(std::move(r), std::move(done));
    });
  }
  std::string SubmitMapOk(const std::string& task, json::array elements, MapSpec spec = {}, int priority = 0) {
    auto r = SubmitMap(task, std::move(elements), spec, priority);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().detail);
    return r ? r->record.id : "";
  }
  static json::array Tags(int from, int to) {
    json::array a;
    for (int t = from; t < to; ++t) a.push_back(Tag(t));
    return a;
  }
  static json::array ResultList(const JobSnapshot& s) {
    if (!s.record.result || !s.record.result->json.is_array()) {
      ADD_FAILURE() << "no list result";
      return {};
    }
    return s.record.result->json.get_array();
  }
  static constexpr MapSpec kOneByOne{.chunk = 1};
};

TEST_F(JobServiceMapTest, ResultsKeepInputOrderWhateverTheElementsTake) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> us(0, 3000);
  json::array in;
  for (int i = 0; i < 200; ++i) in.push_back(json::object{{"v", i}, {"us", us(rng)}});
  const std::string id = SubmitMapOk("echo", std::move(in));
  JobSnapshot s = WaitFinished(id);
  ASSERT_EQ(s.record.status, JobStatus::kSucceeded);
  const json::array out = ResultList(s);
  ASSERT_EQ(out.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(out[i], json::value(i)) << i;
  EXPECT_EQ(s.record.progress, std::optional<double>(1.0));
  EXPECT_EQ(s.record.attempts, 1);
}

TEST_F(JobServiceMapTest, ElementsSpreadOverEveryFreeSlotAndReportProgress) {
  // cpu = 4 and chunks of one: four elements run at once, the fifth waits.
  const std::string id = SubmitMapOk("gated_cpu", Tags(0, 5), kOneByOne);
  ASSERT_TRUE(gate_.WaitStarted(4));
  auto s = Get(id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->record.status, JobStatus::kRunning);
  ASSERT_TRUE(s->map.has_value());
  EXPECT_EQ(s->map->total, 5u);
  EXPECT_EQ(s->map->running, 4u);
  EXPECT_EQ(s->map->done, 0u);
  EXPECT_EQ(Resource("cpu").in_use, 4);
  gate_.Open(0);
  ASSERT_TRUE(gate_.WaitStarted(5));
  EXPECT_TRUE(Eventually([&] {
    auto now = Get(id);
    return now && now->map && now->map->done == 1 && now->record.progress == std::optional<double>(0.2);
  }));
  gate_.OpenAll();
  JobSnapshot done = WaitFinished(id);
  ASSERT_EQ(done.record.status, JobStatus::kSucceeded);
  const json::array out = ResultList(done);
  ASSERT_EQ(out.size(), 5u);
  for (int t = 0; t < 5; ++t) EXPECT_EQ(out[t], json::value(json::object{{"tag", t}}));
  EXPECT_EQ(gate_.max_running(), 4);
  EXPECT_TRUE(Eventually([&] { return Resource("cpu").in_use == 0 && service_->active_jobs() == 0; }));
}

TEST_F(JobServiceMapTest, FailFastEndsTheMapWithTheIndexAndStopsTheRest) {
  json::array in = Tags(0, 5);
  in[2].as_object()["fail"] = true;
  const std::string id = SubmitMapOk("gated_cpu", std::move(in), kOneByOne);
  ASSERT_TRUE(gate_.WaitStarted(4));
  gate_.Open(2);
  JobSnapshot s = WaitFinished(id);
  EXPECT_EQ(s.record.status, JobStatus::kFailed);
  ASSERT_TRUE(s.record.error.has_value());
  EXPECT_EQ(s.record.error->type, "bad_element");
  EXPECT_NE(s.record.error->message.find("element 2 of 5"), std::string::npos) << s.record.error->message;
  ASSERT_TRUE(s.record.map.has_value());
  EXPECT_EQ(s.record.map->failed_index, 2);
  EXPECT_FALSE(s.record.result);
  for (int t : {0, 1, 3}) EXPECT_TRUE(gate_.WaitSawCancel(t)) << t;
  EXPECT_TRUE(Eventually([&] { return Resource("cpu").in_use == 0 && service_->active_jobs() == 0; }));
  const std::vector<int> started = gate_.started();
  EXPECT_EQ(std::count(started.begin(), started.end(), 4), 0) << "element 4 never starts";
}

TEST_F(JobServiceMapTest, CollectKeepsGoingAndReportsEachElement) {
  json::array in;
  for (int i = 0; i < 10; ++i) {
    json::object e{{"v", i}};
    if (i % 3 == 0) e["fail_until"] = 99;
    in.push_back(std::move(e));
  }
  const std::string id = SubmitMapOk("echo", std::move(in), MapSpec{.collect = true});
  JobSnapshot s = WaitFinished(id);
  ASSERT_EQ(s.record.status, JobStatus::kSucceeded);
  const json::array out = ResultList(s);
  ASSERT_EQ(out.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    const json::object& e = out[i].as_object();
    if (i % 3 == 0) {
      ASSERT_TRUE(e.contains("error")) << i;
      EXPECT_EQ(e.at("error").at("type"), "bad_element");
    } else {
      EXPECT_EQ(e.at("ok"), json::value(i)) << i;
    }
  }
}

TEST_F(JobServiceMapTest, RetriesApplyToEachElement) {
  ServerConfig c = BaseConfig();
  c.tasks["echo"].retries = 2;
  c.tasks["echo"].retry_backoff = Millis(1);
  service_.reset();
  Start(c);
  // Element 1 succeeds on its 2nd attempt, element 2 on its 3rd; the others at once.
  json::array in{json::object{{"v", 0}}, json::object{{"v", 1}, {"fail_until", 2}},
                 json::object{{"v", 2}, {"fail_until", 3}}, json::object{{"v", 3}}};
  JobSnapshot ok = WaitFinished(SubmitMapOk("echo", std::move(in)));
  ASSERT_EQ(ok.record.status, JobStatus::kSucceeded) << (ok.record.error ? ok.record.error->message : "");
  EXPECT_EQ(ResultList(ok), (json::array{0, 1, 2, 3}));

  // Three failed attempts exhaust the retries of element 1.
  json::array doomed{json::object{{"v", 0}}, json::object{{"v", 1}, {"fail_until", 4}}};
  JobSnapshot failed = WaitFinished(SubmitMapOk("echo", std::move(doomed)));
  EXPECT_EQ(failed.record.status, JobStatus::kFailed);
  ASSERT_TRUE(failed.record.error.has_value());
  EXPECT_NE(failed.record.error->message.find("attempt 3"), std::string::npos) << failed.record.error->message;
  EXPECT_EQ(failed.record.map->failed_index, 1);
}

TEST_F(JobServiceMapTest, CancelStopsEveryRunningElementAndStartsNoMore) {
  const std::string id = SubmitMapOk("gated_cpu", Tags(0, 10), kOneByOne);
  ASSERT_TRUE(gate_.WaitStarted(4));
  auto c = Cancel(id);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->record.status, JobStatus::kCanceled);
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(gate_.WaitSawCancel(t)) << t;
  JobSnapshot s = WaitFinished(id);
  EXPECT_EQ(s.record.status, JobStatus::kCanceled);
  EXPECT_TRUE(Eventually([&] { return Resource("cpu").in_use == 0 && service_->active_jobs() == 0; }));
  EXPECT_EQ(gate_.started().size(), 4u) << "nothing starts after the cancel";
  auto again = Cancel(id);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
}

TEST_F(JobServiceMapTest, AMapTakesTurnsWithJobsOfEqualPriorityOnTheSameResource) {
  // On the exclusive GPU. When element 0 starts, the map rejoins the line for its
  // next chunk; the single job submitted then queues behind that turn and ahead of
  // the map's later ones. A job of lower priority waits for the whole map.
  const std::string map = SubmitMapOk("gated", Tags(0, 4), kOneByOne);
  ASSERT_TRUE(gate_.WaitStarted(1));
  const std::string low = SubmitGated(200, /*priority=*/-1);
  const std::string single = SubmitGated(100);
  gate_.OpenAll();
  EXPECT_EQ(WaitFinished(map).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(WaitFinished(single).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(WaitFinished(low).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(gate_.started(), (std::vector<int>{0, 1, 100, 2, 3, 200}));
}

TEST_F(JobServiceMapTest, AChunkRunsItsElementsInARowOnOneSlot) {
  const std::string map = SubmitMapOk("gated", Tags(0, 6), MapSpec{.chunk = 2});
  ASSERT_TRUE(gate_.WaitStarted(1));
  const std::string single = SubmitGated(100);
  gate_.OpenAll();
  EXPECT_EQ(WaitFinished(map).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(WaitFinished(single).record.status, JobStatus::kSucceeded);
  EXPECT_EQ(gate_.started(), (std::vector<int>{0, 1, 2, 3, 100, 4, 5}));
}

TEST_F(JobServiceMapTest, AHundredThousandNoopElementsFinishAndLeaveNothingBehind) {
  json::array in(100'000);
  const std::string id = SubmitMapOk("noop", std::move(in));
  JobSnapshot s = WaitFinished(id);
  ASSERT_EQ(s.record.status, JobStatus::kSucceeded);
  const json::array out = ResultList(s);
  EXPECT_EQ(out.size(), 100'000u);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](const json::value& v) { return v.is_null(); }));
  EXPECT_TRUE(Eventually([&] { return service_->active_jobs() == 0 && Resource("cpu").in_use == 0; }));
}

TEST_F(JobServiceMapTest, AnEmptyMapSucceedsWithAnEmptyList) {
  auto r = SubmitMap("noop", json::array{});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->record.status, JobStatus::kSucceeded);
  EXPECT_EQ(ResultList(WaitFinished(r->record.id)), json::array{});
}

TEST_F(JobServiceMapTest, SubmitChecksEveryElementBeforeStoringAnything) {
  auto bad = SubmitMap("sleep", json::array{json::object{{"ms", 1}}, json::object{{"ms", -1}}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().detail.rfind("map[1]: ", 0), 0u) << bad.error().detail;
  EXPECT_EQ(service_->active_jobs(), 0u);
}

TEST_F(JobServiceMapTest, BinaryElementResultsComeAsBase64WithTheirContentType) {
  json::array in{json::object{{"width", 8}, {"height", 4}, {"max_iter", 8}},
                 json::object{{"width", 2}, {"height", 2}, {"max_iter", 8}}};
  JobSnapshot s = WaitFinished(SubmitMapOk("mandelbrot", std::move(in)));
  ASSERT_EQ(s.record.status, JobStatus::kSucceeded);
  const json::array out = ResultList(s);
  ASSERT_EQ(out.size(), 2u);
  for (const json::value& e : out) {
    EXPECT_EQ(e.at("content_type"), "image/png");
    // "\x89PNG\r\n\x1a\n", the PNG signature, is "iVBORw0KGgo" in base64.
    EXPECT_EQ(e.at("base64").as_string().subview(0, 11), "iVBORw0KGgo") << e;
  }
  EXPECT_NE(out[0].at("base64"), out[1].at("base64")) << "each element has its own image";
}

TEST_F(JobServiceMapTest, AnElementOverItsTimeoutFailsTheMapAsTimeout) {
  ServerConfig c = BaseConfig();
  c.tasks["gated_cpu"].timeout = Millis(50);
  service_.reset();
  Start(c);
  const std::string id = SubmitMapOk("gated_cpu", Tags(0, 1), kOneByOne);  // Never opened.
  JobSnapshot s = WaitFinished(id);
  EXPECT_EQ(s.record.status, JobStatus::kFailed);
  ASSERT_TRUE(s.record.error.has_value());
  EXPECT_EQ(s.record.error->type, "timeout");
  EXPECT_EQ(s.record.map->failed_index, 0);
}

TEST_F(JobServiceMapTest, ShutdownCancelsARunningMap) {
  const std::string id = SubmitMapOk("gated_cpu", Tags(0, 8), kOneByOne);
  ASSERT_TRUE(gate_.WaitStarted(4));
  service_->BeginDrain();
  service_->CancelAll();
  JobSnapshot s = WaitFinished(id);
  EXPECT_EQ(s.record.status, JobStatus::kCanceled);
  ASSERT_TRUE(s.record.error.has_value());
  EXPECT_EQ(s.record.error->type, "shutdown");
  EXPECT_TRUE(service_->WaitForIdle(Millis(5000)));
  EXPECT_EQ(gate_.started().size(), 4u);
}

}  // namespace
}  // namespace offload
