// The event streams: GET /v1/jobs/{id}/events and GET /v1/events (Server-Sent Events),
// read as a client reads them, chunk by chunk, while jobs run.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/event_reader.h"
#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using std::chrono::milliseconds;

using EventsTest = ServerTest;

TEST_F(EventsTest, AJobsStreamCarriesItsChangesAndProgressAndEndsWithTheFinalJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // The cpu task reports its progress as it goes.
  const std::string id = Field(SubmitJob(client(), "cpu", json::object{{"ms", 1500}}), "id");
  EventReader reader(server_.port(), "/v1/jobs/" + id + "/events");
  ASSERT_EQ(reader.status(), 200u);
  EXPECT_EQ(reader.header(http::field::content_type), "text/event-stream");
  const std::vector<Message>& messages = reader.ReadToEnd(milliseconds(20'000));
  ASSERT_TRUE(reader.ended()) << "the stream of a job ends once the job has finished";
  ASSERT_GE(messages.size(), 2u);
  // First the job as it is, last the job as it ended, with its result.
  EXPECT_EQ(messages.front().event, "job");
  EXPECT_FALSE(messages.front().id.empty());
  EXPECT_EQ(messages.back().event, "job");
  EXPECT_EQ(Field(messages.back().object(), "status"), "succeeded");
  EXPECT_EQ(Field(messages.back().object(), "id"), id);
  // The change to succeeded came as a status event before the end.
  const std::vector<std::string> statuses = StatusesOf(messages, id);
  ASSERT_FALSE(statuses.empty());
  EXPECT_EQ(statuses.back(), "succeeded");
  bool progress = false;
  for (const Message& m : messages) {
    if (m.event != "progress") continue;
    progress = true;
    const double p = m.object().at("progress").to_number<double>();
    EXPECT_GT(p, 0.0);
    EXPECT_LE(p, 1.0);
  }
  EXPECT_TRUE(progress) << "a running job's progress is sent while it runs";
}

TEST_F(EventsTest, AFinishedJobsStreamIsItsFinalStateAloneAndAnUnknownJobIs404) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const json::object job = SubmitJob(client(), "noop", json::object{});
  const std::string id = Field(job, "id");
  ASSERT_EQ(Field(WaitFinished(client(), id), "status"), "succeeded");
  EventReader reader(server_.port(), "/v1/jobs/" + id + "/events");
  ASSERT_EQ(reader.status(), 200u);
  const std::vector<Message>& messages = reader.ReadToEnd();
  ASSERT_TRUE(reader.ended());
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].event, "job");
  EXPECT_EQ(Field(messages[0].object(), "status"), "succeeded");

  EventReader unknown(server_.port(), "/v1/jobs/nosuchjob/events");
  EXPECT_EQ(unknown.status(), 404u);
}

TEST_F(EventsTest, TheStreamOfEveryJobFiltersByTaskAndResumesAfterADroppedConnection) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "200ms"
[tasks.other]
run = "builtin:noop"
)"));
  EventReader reader(server_.port(), "/v1/events?task=noop");
  ASSERT_EQ(reader.status(), 200u);
  const std::string first = Field(SubmitJob(client(), "noop", json::object{}), "id");
  const std::string other = Field(SubmitJob(client(), "other", json::object{}), "id");
  reader.ReadUntil(HasStatus(first, "succeeded"));
  ASSERT_EQ(StatusesOf(reader.ReadUntil(HasStatus(first, "succeeded")), first),
            (std::vector<std::string>{"queued", "running", "succeeded"}));
  const std::string resume_from = reader.last_id();
  ASSERT_FALSE(resume_from.empty());
  reader.Close();

  // While nobody listens, more happens.
  const std::string second = Field(SubmitJob(client(), "noop", json::object{}), "id");
  ASSERT_EQ(Field(WaitFinished(client(), second), "status"), "succeeded");
  ASSERT_EQ(Field(WaitFinished(client(), other), "status"), "succeeded");

  EventReader resumed(server_.port(), "/v1/events?task=noop", resume_from);
  ASSERT_EQ(resumed.status(), 200u);
  const std::vector<Message>& missed = resumed.ReadUntil(HasStatus(second, "succeeded"));
  EXPECT_EQ(StatusesOf(missed, second), (std::vector<std::string>{"queued", "running", "succeeded"}));
  EXPECT_TRUE(StatusesOf(missed, first).empty()) << "nothing from before the id is sent again";
  EXPECT_TRUE(StatusesOf(missed, other).empty()) << "the task filter holds on a resume";
  for (const Message& m : missed) EXPECT_NE(m.event, "reset");

  // An id the server cannot resume from (another server's, or too old) says so.
  EventReader stale(server_.port(), "/v1/events", "00000000-5");
  ASSERT_EQ(stale.status(), 200u);
  const std::vector<Message>& told = stale.ReadUntil([](const auto& m) { return !m.empty(); });
  ASSERT_FALSE(told.empty());
  EXPECT_EQ(told[0].event, "reset");
}

TEST_F(EventsTest, TheLatestStatesStreamFoldsAJobsChangesIntoItsLast) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EventReader every(server_.port(), "/v1/events");
  const std::string first = Field(SubmitJob(client(), "noop", json::object{}), "id");
  every.ReadUntil(HasStatus(first, "succeeded"));
  const std::string resume_from = every.last_id();
  ASSERT_FALSE(resume_from.empty());
  every.Close();

  // Both jobs' changes are in the log before the stream reads: one read finds them all.
  const std::string a = Field(SubmitJob(client(), "noop", json::object{}), "id");
  const std::string b = Field(SubmitJob(client(), "noop", json::object{}), "id");
  ASSERT_EQ(Field(WaitFinished(client(), a), "status"), "succeeded");
  ASSERT_EQ(Field(WaitFinished(client(), b), "status"), "succeeded");
  EventReader latest(server_.port(), "/v1/events?latest=true", resume_from);
  ASSERT_EQ(latest.status(), 200u);
  const std::vector<Message>& read =
      latest.ReadUntil([&](const auto& m) { return HasStatus(a, "succeeded")(m) && HasStatus(b, "succeeded")(m); });
  EXPECT_EQ(StatusesOf(read, a), std::vector<std::string>{"succeeded"});
  EXPECT_EQ(StatusesOf(read, b), std::vector<std::string>{"succeeded"});
  EXPECT_TRUE(StatusesOf(read, first).empty());

  // And live, as jobs run.
  const std::string c = Field(SubmitJob(client(), "noop", json::object{}), "id");
  const std::vector<std::string> live = StatusesOf(latest.ReadUntil(HasStatus(c, "succeeded")), c);
  ASSERT_FALSE(live.empty());
  EXPECT_EQ(live.back(), "succeeded");

  EXPECT_EQ(client().Get("/v1/events?latest=maybe").status, 422);
}

TEST_F(EventsTest, StreamsEndWhenTheServerShutsDown) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EventReader reader(server_.port(), "/v1/events");
  ASSERT_EQ(reader.status(), 200u);
  const auto start = std::chrono::steady_clock::now();
  server_.Signal(SIGTERM);
  reader.ReadToEnd(milliseconds(15'000));
  EXPECT_TRUE(reader.ended());
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(10'000));
  const std::optional<int> exit = server_.WaitForExit(milliseconds(15'000));
  ASSERT_TRUE(exit.has_value()) << "the server did not exit";
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << DescribeWaitStatus(*exit);
}

}  // namespace
}  // namespace offload::testing
