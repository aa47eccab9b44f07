// Scheduling as a client sees it: FIFO on an exclusive resource, priority order,
// capacities. Order is read from the jobs' own timestamps, never from sleeps.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;

using SchedulingTest = ServerTest;

struct Interval {
  std::string id;
  std::int64_t started = -1;
  std::int64_t finished = -1;
};

// Waits for every job in `ids` and returns their run intervals, in `ids` order.
std::vector<Interval> RunIntervals(HttpClient& client, const std::vector<std::string>& ids) {
  std::vector<Interval> out;
  for (const auto& id : ids) {
    json::object job = WaitFinished(client, id);
    out.push_back({id, TimeOf(job, "started_at"), TimeOf(job, "finished_at")});
  }
  return out;
}

// Checks that the jobs ran one at a time, in the given order: each started no
// earlier than the previous one finished (timestamps have millisecond resolution).
void ExpectSerialInOrder(const std::vector<Interval>& runs) {
  for (std::size_t i = 0; i < runs.size(); ++i) {
    EXPECT_GE(runs[i].started, 0) << "job " << i << " never started";
    EXPECT_LE(runs[i].started, runs[i].finished) << "job " << i;
    if (i > 0) {
      EXPECT_GE(runs[i].started, runs[i - 1].finished) << "job " << i << " (" << runs[i].id << ") started before job "
                                                       << i - 1 << " (" << runs[i - 1].id << ") finished";
    }
  }
}

TEST_F(SchedulingTest, ExclusiveResourceRunsJobsOneAtATimeInSubmissionOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // A blocker holds the gpu while the 20 are submitted, so every one of them queues
  // and their positions are known.
  json::object blocker = SubmitJob(client(), "render", json::object{{"ms", 60'000}});
  ASSERT_EQ(Field(blocker, "status"), "running") << json::serialize(blocker);
  std::vector<std::string> ids{Field(blocker, "id")};
  for (int i = 0; i < 20; ++i) {
    json::object job = SubmitJob(client(), "render", json::object{{"ms", 20}});
    ASSERT_EQ(Field(job, "status"), "queued") << json::serialize(job);
    EXPECT_EQ(job.at("position"), i) << json::serialize(job);
    ids.push_back(Field(job, "id"));
  }
  // Positions move up as the queue drains: the 10th is still 9th in line.
  EXPECT_EQ(GetJob(client(), ids[10]).at("position"), 9);
  ASSERT_EQ(client().Delete("/v1/jobs/" + ids[0]).status, 200);

  std::vector<Interval> runs = RunIntervals(client(), ids);
  ExpectSerialInOrder(runs);
  for (std::size_t i = 1; i < ids.size(); ++i) {
    EXPECT_EQ(Field(GetJob(client(), ids[i]), "status"), "succeeded") << "job " << i;
    // A job of 20 ms cannot have run in less.
    EXPECT_GE(runs[i].finished - runs[i].started, 19) << "job " << i;
  }
}

TEST_F(SchedulingTest, HigherPriorityRunsFirstThenSubmissionOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string blocker = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  struct Submitted {
    const char* name;
    int priority;
    std::string id;
  };
  std::vector<Submitted> jobs = {{"low0", 0, ""}, {"low1", 0, ""}, {"high0", 10, ""},
                                 {"neg", -1, ""}, {"low2", 0, ""}, {"high1", 10, ""}};
  for (auto& j : jobs) {
    j.id = Field(SubmitJob(client(), "render", json::object{{"ms", 10}}, j.priority), "id");
  }
  // Expected order: priority desc, then submission.
  const std::vector<std::size_t> order = {2, 5, 0, 1, 4, 3};
  std::vector<std::string> expected_ids;
  for (std::size_t i : order) expected_ids.push_back(jobs[i].id);
  // While they wait, each job's position is its place in that order.
  for (std::size_t rank = 0; rank < order.size(); ++rank) {
    const Submitted& s = jobs[order[rank]];
    json::object job = GetJob(client(), s.id);
    EXPECT_EQ(Field(job, "status"), "queued") << s.name;
    EXPECT_EQ(job.at("position"), rank) << s.name;
    EXPECT_EQ(job.at("priority"), s.priority) << s.name;
  }
  ASSERT_EQ(client().Delete("/v1/jobs/" + blocker).status, 200);

  std::vector<Interval> runs = RunIntervals(client(), expected_ids);
  ExpectSerialInOrder(runs);
}

TEST_F(SchedulingTest, CapacityBoundsConcurrentJobs) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // cpu = 2: two sleeps run, the third waits for a slot.
  json::object a = SubmitJob(client(), "sleep", json::object{{"ms", 60'000}});
  json::object b = SubmitJob(client(), "sleep", json::object{{"ms", 60'000}});
  json::object c = SubmitJob(client(), "sleep", json::object{{"ms", 10}});
  EXPECT_EQ(Field(a, "status"), "running");
  EXPECT_EQ(Field(b, "status"), "running");
  ASSERT_EQ(Field(c, "status"), "queued");
  EXPECT_EQ(c.at("position"), 0);

  Response res = client().Get("/v1/resources");
  ASSERT_EQ(res.status, 200) << Describe(res);
  for (const auto& r : res.json().at("resources").as_array()) {
    if (Field(r.as_object(), "name") != "cpu") continue;
    EXPECT_EQ(r.at("in_use"), 2) << res.body;
    EXPECT_EQ(r.at("queued_demand"), 1) << res.body;
  }
  // A freed slot goes to the waiting job at once.
  ASSERT_EQ(client().Delete("/v1/jobs/" + Field(a, "id")).status, 200);
  json::object c_done = WaitFinished(client(), Field(c, "id"));
  EXPECT_EQ(Field(c_done, "status"), "succeeded");
  json::object a_done = GetJob(client(), Field(a, "id"));
  EXPECT_GE(TimeOf(c_done, "started_at"), TimeOf(a_done, "finished_at"));
  EXPECT_EQ(Field(GetJob(client(), Field(b, "id")), "status"), "running");
  ASSERT_EQ(client().Delete("/v1/jobs/" + Field(b, "id")).status, 200);
}

TEST_F(SchedulingTest, JobStartsOnlyWhenEverythingItUsesIsFree) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "200ms"
[resources]
cpu = 2
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
[tasks.both]
run = "builtin:sleep"
uses = {cpu = 1, gpu = 1}
)"));
  const std::string blocker = Field(SubmitJob(client(), "render", json::object{{"ms", 60'000}}), "id");
  // cpu is free but the gpu is not: `both` waits, holding nothing.
  json::object both = SubmitJob(client(), "both", json::object{{"ms", 10}});
  ASSERT_EQ(Field(both, "status"), "queued") << json::serialize(both);
  // A later cpu-only job does not overtake `both`, which waits for cpu too.
  json::object later = SubmitJob(client(), "sleep", json::object{{"ms", 10}});
  EXPECT_EQ(Field(later, "status"), "queued") << json::serialize(later);
  EXPECT_EQ(later.at("position"), 1);

  ASSERT_EQ(client().Delete("/v1/jobs/" + blocker).status, 200);
  json::object both_done = WaitFinished(client(), Field(both, "id"));
  json::object later_done = WaitFinished(client(), Field(later, "id"));
  EXPECT_EQ(Field(both_done, "status"), "succeeded");
  EXPECT_EQ(Field(later_done, "status"), "succeeded");
  EXPECT_GE(TimeOf(both_done, "started_at"), TimeOf(GetJob(client(), blocker), "finished_at"));
  EXPECT_LE(TimeOf(both_done, "started_at"), TimeOf(later_done, "started_at"));
}

}  // namespace
}  // namespace offload::testing
