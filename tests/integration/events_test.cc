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

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using std::chrono::milliseconds;

struct Message {
  std::string id;
  std::string event;
  std::string data;
  json::object object() const { return ParseJson(data).value_or(json::object()).as_object(); }
};

// One event stream, read as it arrives. Every read is bounded by its timeout.
class EventReader {
 public:
  EventReader(unsigned short port, const std::string& target, const std::string& last_event_id = "") {
    stream_.expires_after(milliseconds(10'000));
    beast::error_code ec;
    stream_.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    req.set(http::field::accept, "text/event-stream");
    if (!last_event_id.empty()) req.set("Last-Event-ID", last_event_id);
    http::write(stream_, req, ec);
    if (ec) return;
    parser_.body_limit(boost::none);
    http::read_header(stream_, buffer_, parser_, ec);
    if (!ec) status_ = parser_.get().result_int();
  }

  unsigned status() const { return status_; }
  std::string header(http::field f) const { return std::string(parser_.get()[f]); }
  bool ended() const { return ended_; }

  // Reads until `until` holds for the messages read so far, the stream ends, or
  // `timeout` passes. Returns every message read since the stream began.
  const std::vector<Message>& ReadUntil(const std::function<bool(const std::vector<Message>&)>& until,
                                        milliseconds timeout = milliseconds(10'000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ended_ && !until(messages_) && std::chrono::steady_clock::now() < deadline) {
      stream_.expires_at(deadline);
      beast::error_code ec;
      http::read_some(stream_, buffer_, parser_, ec);
      if (ec || parser_.is_done()) ended_ = true;
      Split();
    }
    return messages_;
  }
  const std::vector<Message>& ReadToEnd(milliseconds timeout = milliseconds(10'000)) {
    return ReadUntil([](const std::vector<Message>&) { return false; }, timeout);
  }
  std::string last_id() const {
    std::string id;
    for (const Message& m : messages_) {
      if (!m.id.empty()) id = m.id;
    }
    return id;
  }
  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  // Cuts the messages complete in the body so far (each ends with a blank line).
  void Split() {
    std::string& body = parser_.get().body();
    std::size_t end;
    while ((end = body.find("\n\n", used_)) != std::string::npos) {
      Message m;
      std::size_t at = used_;
      while (at < end) {
        std::size_t eol = body.find('\n', at);
        if (eol == std::string::npos || eol > end) eol = end;
        const std::string line = body.substr(at, eol - at);
        if (line.rfind("id: ", 0) == 0) m.id = line.substr(4);
        if (line.rfind("event: ", 0) == 0) m.event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) m.data = line.substr(6);
        at = eol + 1;
      }
      if (!m.event.empty()) messages_.push_back(std::move(m));
      used_ = end + 2;
    }
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  unsigned status_ = 0;
  bool ended_ = false;
  std::size_t used_ = 0;
  std::vector<Message> messages_;
};

std::vector<std::string> StatusesOf(const std::vector<Message>& messages, const std::string& id) {
  std::vector<std::string> out;
  for (const Message& m : messages) {
    if (m.event == "status" && Field(m.object(), "id") == id) out.push_back(Field(m.object(), "status"));
  }
  return out;
}

auto HasStatus(const std::string& id, const std::string& status) {
  return [id, status](const std::vector<Message>& messages) {
    for (const std::string& s : StatusesOf(messages, id)) {
      if (s == status) return true;
    }
    return false;
  };
}

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
