// The JSON codec of the API: job objects out, submit requests in.
#include "http/job_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <regex>
#include <string>

namespace offload {
namespace {

namespace json = boost::json;

// 2023-11-14T22:13:20Z in Unix milliseconds.
constexpr UnixMillis kT0 = 1'700'000'000'000;

JobSnapshot QueuedJob() {
  JobSnapshot s;
  s.record.id = "AbCdEfGhIjKlMnOp";
  s.record.task = "sleep";
  s.record.status = JobStatus::kQueued;
  s.record.priority = 7;
  s.record.seq = 42;
  s.record.input = std::make_shared<const json::value>(json::object{{"ms", 5}});
  s.record.created_at = kT0 + 123;
  s.position = 3;
  return s;
}

TEST(FormatRfc3339Test, UtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339(kT0), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(FormatRfc3339(kT0 + 7), "2023-11-14T22:13:20.007Z");
  EXPECT_EQ(FormatRfc3339(kT0 + 999), "2023-11-14T22:13:20.999Z");
  EXPECT_EQ(FormatRfc3339(951782400000 + 1), "2000-02-29T00:00:00.001Z");
}

TEST(JobToJsonTest, QueuedJobHasEveryFieldWithNullsForWhatIsNotKnownYet) {
  json::object o = JobToJson(QueuedJob());
  for (const char* key : {"id", "task", "status", "priority", "position", "attempts",
                          "created_at", "started_at", "finished_at", "result", "error",
                          "progress"}) {
    EXPECT_TRUE(o.contains(key)) << "missing " << key;
  }
  EXPECT_EQ(o.at("id"), "AbCdEfGhIjKlMnOp");
  EXPECT_EQ(o.at("task"), "sleep");
  EXPECT_EQ(o.at("status"), "queued");
  EXPECT_EQ(o.at("priority"), 7);
  EXPECT_EQ(o.at("position"), 3);
  EXPECT_EQ(o.at("attempts"), 0);
  EXPECT_EQ(o.at("created_at"), "2023-11-14T22:13:20.123Z");
  EXPECT_TRUE(o.at("started_at").is_null());
  EXPECT_TRUE(o.at("finished_at").is_null());
  EXPECT_TRUE(o.at("result").is_null());
  EXPECT_TRUE(o.at("error").is_null());
  EXPECT_TRUE(o.at("progress").is_null());
  EXPECT_FALSE(o.contains("result_type")) << "no result yet";
  EXPECT_FALSE(o.contains("result_url"));
  EXPECT_FALSE(o.contains("seq")) << "internal ordering is not part of the API";
  EXPECT_FALSE(o.contains("input"));
}

TEST(JobToJsonTest, TimesAreRfc3339UtcWithMilliseconds) {
  JobSnapshot s = QueuedJob();
  s.record.status = JobStatus::kRunning;
  s.record.started_at = kT0 + 5'000;
  s.position.reset();
  json::object o = JobToJson(s);
  const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  ASSERT_TRUE(o.at("created_at").is_string());
  ASSERT_TRUE(o.at("started_at").is_string());
  EXPECT_TRUE(std::regex_match(std::string(o.at("created_at").get_string()), rfc3339));
  EXPECT_EQ(o.at("started_at"), "2023-11-14T22:13:25.000Z");
}

TEST(JobToJsonTest, RunningJobHasNoPositionButProgress) {
  JobSnapshot s = QueuedJob();
  s.record.status = JobStatus::kRunning;
  s.record.started_at = kT0 + 1000;
  s.record.attempts = 1;
  s.record.progress = 0.25;
  s.position.reset();
  json::object o = JobToJson(s);
  EXPECT_EQ(o.at("status"), "running");
  EXPECT_TRUE(o.at("position").is_null());
  EXPECT_EQ(o.at("attempts"), 1);
  ASSERT_TRUE(o.at("progress").is_double());
  EXPECT_DOUBLE_EQ(o.at("progress").get_double(), 0.25);
  EXPECT_TRUE(o.at("finished_at").is_null());
}

TEST(JobToJsonTest, PositionZeroIsNotNull) {
  JobSnapshot s = QueuedJob();
  s.position = 0;
  json::object o = JobToJson(s);
  EXPECT_EQ(o.at("position"), 0);
}

TEST(JobToJsonTest, SucceededWithJsonResultEmbedsIt) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kSucceeded;
  s.record.started_at = kT0 + 1000;
  s.record.finished_at = kT0 + 2000;
  s.record.progress = 1.0;
  s.record.result = Result::Json(json::object{{"answer", 42}}).output();
  json::object o = JobToJson(s);
  EXPECT_EQ(o.at("status"), "succeeded");
  EXPECT_EQ(o.at("result"), (json::object{{"answer", 42}}));
  EXPECT_EQ(o.at("result_type"), "application/json");
  EXPECT_EQ(o.at("result_url"), "/v1/jobs/AbCdEfGhIjKlMnOp/result");
  EXPECT_EQ(o.at("finished_at"), "2023-11-14T22:13:22.000Z");
  EXPECT_TRUE(o.at("error").is_null());
}

TEST(JobToJsonTest, JsonNullResultIsStillAResult) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kSucceeded;
  s.record.finished_at = kT0 + 2000;
  s.record.result = Result::Json(nullptr).output();
  json::object o = JobToJson(s);
  EXPECT_TRUE(o.at("result").is_null());
  EXPECT_EQ(o.at("result_type"), "application/json");
  EXPECT_TRUE(o.contains("result_url"));
}

TEST(JobToJsonTest, BinaryResultIsOnlyLinked) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.task = "mandelbrot";
  s.record.status = JobStatus::kSucceeded;
  s.record.finished_at = kT0 + 2000;
  s.record.result = Result::Bytes("image/png", std::string("\x89PNG\r\n\x1a\n", 8)).output();
  json::object o = JobToJson(s);
  EXPECT_TRUE(o.at("result").is_null()) << "bytes never go into the job object";
  EXPECT_EQ(o.at("result_type"), "image/png");
  EXPECT_EQ(o.at("result_url"), "/v1/jobs/AbCdEfGhIjKlMnOp/result");
}

TEST(JobToJsonTest, FailedJobHasAnErrorObject) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kFailed;
  s.record.started_at = kT0 + 1000;
  s.record.finished_at = kT0 + 2000;
  s.record.progress = 0.5;
  s.record.error = JobError{"timeout", "ran too long"};
  json::object o = JobToJson(s);
  EXPECT_EQ(o.at("status"), "failed");
  EXPECT_EQ(o.at("error"), (json::object{{"type", "timeout"}, {"message", "ran too long"}}));
  EXPECT_TRUE(o.at("result").is_null());
  EXPECT_FALSE(o.contains("result_type"));
  EXPECT_DOUBLE_EQ(o.at("progress").as_double(), 0.5);
}

TEST(JobToJsonTest, CanceledJob) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kCanceled;
  s.record.finished_at = kT0 + 2000;
  s.record.error = JobError{"canceled", "canceled by a DELETE request"};
  json::object o = JobToJson(s);
  EXPECT_EQ(o.at("status"), "canceled");
  EXPECT_TRUE(o.at("started_at").is_null()) << "it never started";
  EXPECT_EQ(o.at("error").at("type"), "canceled");
}

TEST(JobToJsonTest, SerializesToParsableJson) {
  JobSnapshot s = QueuedJob();
  s.record.id = "a\"b\\c";  // Hostile text survives the round trip.
  json::value back = json::parse(json::serialize(JobToJson(s)));
  EXPECT_EQ(back.at("id"), "a\"b\\c");
}

TEST(JobStatusTest, NamesRoundTrip) {
  for (JobStatus st : {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded,
                       JobStatus::kFailed, JobStatus::kCanceled}) {
    JobStatus back = JobStatus::kQueued;
    ASSERT_TRUE(ParseJobStatus(JobStatusName(st), &back)) << JobStatusName(st);
    EXPECT_EQ(back, st);
  }
  JobStatus out = JobStatus::kRunning;
  EXPECT_FALSE(ParseJobStatus("done", &out));
  EXPECT_FALSE(ParseJobStatus("", &out));
  EXPECT_FALSE(ParseJobStatus("Queued", &out));
  EXPECT_EQ(out, JobStatus::kRunning);
}

// --- ParseSubmitRequest ---

TEST(ParseSubmitRequestTest, FullRequest) {
  auto r = ParseSubmitRequest(R"({"task": "sleep", "input": {"ms": 5}, "priority": -3})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->task, "sleep");
  EXPECT_EQ(r->input, (json::object{{"ms", 5}}));
  EXPECT_EQ(r->priority, -3);
}

TEST(ParseSubmitRequestTest, InputAndPriorityAreOptional) {
  auto r = ParseSubmitRequest(R"({"task": "noop"})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->task, "noop");
  EXPECT_TRUE(r->input.is_null());
  EXPECT_EQ(r->priority, 0);
}

TEST(ParseSubmitRequestTest, InputMayBeAnyJson) {
  for (const char* input : {"null", "1", "\"text\"", "[1,2,3]", "{\"a\":{\"b\":[true]}}"}) {
    auto r = ParseSubmitRequest(std::string(R"({"task":"noop","input":)") + input + "}");
    ASSERT_TRUE(r.has_value()) << input;
    EXPECT_EQ(r->input, json::parse(input));
  }
}

TEST(ParseSubmitRequestTest, Int32PriorityLimitsAreAccepted) {
  auto hi = ParseSubmitRequest(R"({"task":"noop","priority":2147483647})");
  ASSERT_TRUE(hi.has_value());
  EXPECT_EQ(hi->priority, 2147483647);
  auto lo = ParseSubmitRequest(R"({"task":"noop","priority":-2147483648})");
  ASSERT_TRUE(lo.has_value());
  EXPECT_EQ(lo->priority, -2147483647 - 1);
}

TEST(ParseSubmitRequestTest, MalformedJson) {
  for (const char* body : {"", "{", "{\"task\": \"noop\"", "task=noop", "{\"task\": noop}",
                           "{\"task\": \"noop\"} trailing"}) {
    auto r = ParseSubmitRequest(body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed) << body;
    EXPECT_FALSE(r.error().detail.empty());
  }
}

// Parses a body that must be refused as kInvalidArgument; returns the detail.
std::string Invalid(std::string_view body) {
  auto r = ParseSubmitRequest(body);
  EXPECT_FALSE(r.has_value()) << body;
  if (r) return "";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << body;
  return r.error().detail;
}

TEST(ParseSubmitRequestTest, BodyMustBeAnObject) {
  for (const char* body : {"[]", "\"sleep\"", "42", "null"}) {
    EXPECT_NE(Invalid(body).find("object"), std::string::npos) << body;
  }
}

TEST(ParseSubmitRequestTest, TaskIsRequired) {
  EXPECT_NE(Invalid("{}").find("task"), std::string::npos);
  EXPECT_NE(Invalid(R"({"input": {"ms": 1}})").find("task"), std::string::npos);
}

TEST(ParseSubmitRequestTest, TaskMustBeANonEmptyString) {
  for (const char* body : {R"({"task": 5})", R"({"task": null})", R"({"task": ["sleep"]})",
                           R"({"task": ""})", R"({"task": {"name": "sleep"}})"}) {
    EXPECT_NE(Invalid(body).find("task"), std::string::npos) << body;
  }
}

TEST(ParseSubmitRequestTest, PriorityMustBeAnInt32) {
  for (const char* body : {
           R"({"task":"noop","priority":"1"})", R"({"task":"noop","priority":1.5})",
           R"({"task":"noop","priority":null})", R"({"task":"noop","priority":true})",
           R"({"task":"noop","priority":2147483648})", R"({"task":"noop","priority":-2147483649})",
           R"({"task":"noop","priority":18446744073709551615})",
           R"({"task":"noop","priority":1e3})"}) {
    EXPECT_NE(Invalid(body).find("priority"), std::string::npos) << body;
  }
}

TEST(ParseSubmitRequestTest, UnknownFieldIsNamed) {
  std::string detail = Invalid(R"({"task":"noop","prio":1})");
  EXPECT_NE(detail.find("\"prio\""), std::string::npos) << detail;
  detail = Invalid(R"({"task":"noop","inputs":{}})");
  EXPECT_NE(detail.find("\"inputs\""), std::string::npos) << detail;
}

}  // namespace
}  // namespace offload
