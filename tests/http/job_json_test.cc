// The JSON codec of the API: job objects out, submit requests in.
#include "http/job_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <memory>
#include <regex>
#include <string>
#include <utility>

#include "util/json_writer.h"

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

// The job object as the API sends it.
json::object Sent(const JobSnapshot& job) {
  std::string out;
  AppendJobJson(&out, job);
  return json::parse(out).as_object();
}

TEST(JobJsonTest, QueuedJobHasEveryFieldWithNullsForWhatIsNotKnownYet) {
  json::object o = Sent(QueuedJob());
  for (const char* key : {"id", "task", "status", "priority", "position", "attempts", "created_at", "started_at",
                          "finished_at", "result", "error", "progress"}) {
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

TEST(JobJsonTest, TimesAreRfc3339UtcWithMilliseconds) {
  JobSnapshot s = QueuedJob();
  s.record.status = JobStatus::kRunning;
  s.record.started_at = kT0 + 5'000;
  s.position.reset();
  json::object o = Sent(s);
  const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  ASSERT_TRUE(o.at("created_at").is_string());
  ASSERT_TRUE(o.at("started_at").is_string());
  EXPECT_TRUE(std::regex_match(std::string(o.at("created_at").get_string()), rfc3339));
  EXPECT_EQ(o.at("started_at"), "2023-11-14T22:13:25.000Z");
}

TEST(JobJsonTest, RunningJobHasNoPositionButProgress) {
  JobSnapshot s = QueuedJob();
  s.record.status = JobStatus::kRunning;
  s.record.started_at = kT0 + 1000;
  s.record.attempts = 1;
  s.record.progress = 0.25;
  s.position.reset();
  json::object o = Sent(s);
  EXPECT_EQ(o.at("status"), "running");
  EXPECT_TRUE(o.at("position").is_null());
  EXPECT_EQ(o.at("attempts"), 1);
  ASSERT_TRUE(o.at("progress").is_double());
  EXPECT_DOUBLE_EQ(o.at("progress").get_double(), 0.25);
  EXPECT_TRUE(o.at("finished_at").is_null());
}

TEST(JobJsonTest, PositionZeroIsNotNull) {
  JobSnapshot s = QueuedJob();
  s.position = 0;
  json::object o = Sent(s);
  EXPECT_EQ(o.at("position"), 0);
}

TEST(JobJsonTest, SucceededWithJsonResultEmbedsIt) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kSucceeded;
  s.record.started_at = kT0 + 1000;
  s.record.finished_at = kT0 + 2000;
  s.record.progress = 1.0;
  s.record.result = Result::Json(json::object{{"answer", 42}}).output();
  json::object o = Sent(s);
  EXPECT_EQ(o.at("status"), "succeeded");
  EXPECT_EQ(o.at("result"), (json::object{{"answer", 42}}));
  EXPECT_EQ(o.at("result_type"), "application/json");
  EXPECT_EQ(o.at("result_url"), "/v1/jobs/AbCdEfGhIjKlMnOp/result");
  EXPECT_EQ(o.at("finished_at"), "2023-11-14T22:13:22.000Z");
  EXPECT_TRUE(o.at("error").is_null());
}

TEST(JobJsonTest, JsonNullResultIsStillAResult) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kSucceeded;
  s.record.finished_at = kT0 + 2000;
  s.record.result = Result::Json(nullptr).output();
  json::object o = Sent(s);
  EXPECT_TRUE(o.at("result").is_null());
  EXPECT_EQ(o.at("result_type"), "application/json");
  EXPECT_TRUE(o.contains("result_url"));
}

TEST(JobJsonTest, BinaryResultIsOnlyLinked) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.task = "mandelbrot";
  s.record.status = JobStatus::kSucceeded;
  s.record.finished_at = kT0 + 2000;
  s.record.result = Result::Bytes("image/png", std::string("\x89PNG\r\n\x1a\n", 8)).output();
  json::object o = Sent(s);
  EXPECT_TRUE(o.at("result").is_null()) << "bytes never go into the job object";
  EXPECT_EQ(o.at("result_type"), "image/png");
  EXPECT_EQ(o.at("result_url"), "/v1/jobs/AbCdEfGhIjKlMnOp/result");
}

TEST(JobJsonTest, FailedJobHasAnErrorObject) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kFailed;
  s.record.started_at = kT0 + 1000;
  s.record.finished_at = kT0 + 2000;
  s.record.progress = 0.5;
  s.record.error = JobError{"timeout", "ran too long"};
  json::object o = Sent(s);
  EXPECT_EQ(o.at("status"), "failed");
  EXPECT_EQ(o.at("error"), (json::object{{"type", "timeout"}, {"message", "ran too long"}}));
  EXPECT_TRUE(o.at("result").is_null());
  EXPECT_FALSE(o.contains("result_type"));
  EXPECT_DOUBLE_EQ(o.at("progress").as_double(), 0.5);
}

TEST(JobJsonTest, CanceledJob) {
  JobSnapshot s = QueuedJob();
  s.position.reset();
  s.record.status = JobStatus::kCanceled;
  s.record.finished_at = kT0 + 2000;
  s.record.error = JobError{"canceled", "canceled by a DELETE request"};
  json::object o = Sent(s);
  EXPECT_EQ(o.at("status"), "canceled");
  EXPECT_TRUE(o.at("started_at").is_null()) << "it never started";
  EXPECT_EQ(o.at("error").at("type"), "canceled");
}

TEST(JobJsonTest, SerializesToParsableJson) {
  JobSnapshot s = QueuedJob();
  s.record.id = "a\"b\\c";  // Hostile text survives the round trip.
  std::string text;
  AppendJobJson(&text, s);
  json::value back = json::parse(text);
  EXPECT_EQ(back.at("id"), "a\"b\\c");
}

// A listing leaves the result out unless asked; where it is, it is written last.
TEST(JobJsonTest, TheResultIsLastAndLeftOutWhenNotAskedFor) {
  JobSnapshot s = QueuedJob();
  s.record.status = JobStatus::kSucceeded;
  s.record.result = Result::Json(json::array{1, 2}).output();
  std::string with, without;
  AppendJobJson(&with, s);
  AppendJobJson(&without, s, /*include_result=*/false);
  EXPECT_EQ(with.substr(with.size() - std::string_view(R"(,"result":[1,2]})").size()), R"(,"result":[1,2]})");
  const json::object listed = json::parse(without).as_object();
  EXPECT_FALSE(listed.contains("result"));
  EXPECT_EQ(listed.at("result_type"), "application/json");
  EXPECT_EQ(listed.at("result_url").as_string(), "/v1/jobs/" + s.record.id + "/result");
  json::object sent = json::parse(with).as_object();
  sent.erase("result");
  EXPECT_EQ(sent, listed) << "the rest is the same";
}

TEST(JobJsonTest, WrittenWithShortestDoublesAndValidUtf8) {
  JobSnapshot s = QueuedJob();
  s.record.status = JobStatus::kSucceeded;
  s.record.progress = 0.1;
  s.record.result = Result::Json(json::object{{"v", 2.5}, {"w", 1.0}}).output();
  s.record.error_history.push_back(JobError{"handler_error", "bad byte \xFF here"});
  std::string text;
  AppendJobJson(&text, s);
  EXPECT_NE(text.find(R"("progress":0.1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("result":{"v":2.5,"w":1})"), std::string::npos) << text;
  EXPECT_NE(text.find("bad byte \xEF\xBF\xBD here"), std::string::npos) << text;
}

// A map of three elements as the store keeps it: the input is the element list.
JobSnapshot MapJob() {
  JobSnapshot s = QueuedJob();
  s.record.task = "cpu";
  s.record.input = std::make_shared<const json::value>(json::array{1, 2, 3});
  s.record.map = MapSpec{};
  return s;
}

TEST(JobJsonTest, PlainJobHasNoMapObject) { EXPECT_FALSE(Sent(QueuedJob()).contains("map")); }

TEST(JobJsonTest, MapObjectOfAFinishedMapHasNoLiveCounts) {
  JobSnapshot s = MapJob();
  s.position.reset();
  s.record.status = JobStatus::kSucceeded;
  s.record.finished_at = kT0 + 2000;
  s.record.result = Result::Json(json::array{nullptr, nullptr, nullptr}).output();
  json::object o = Sent(s);
  ASSERT_TRUE(o.contains("map")) << json::serialize(o);
  EXPECT_EQ(o.at("map"), json::parse(R"({"total": 3, "chunk": null, "on_error": "fail_fast", "failed_index": null})"));
  EXPECT_FALSE(o.contains("input")) << "the elements are not echoed back";
  EXPECT_EQ(o.at("result"), (json::array{nullptr, nullptr, nullptr}));
}

TEST(JobJsonTest, MapObjectOfAnActiveMapHasLiveCounts) {
  JobSnapshot s = MapJob();
  s.position.reset();
  s.record.status = JobStatus::kRunning;
  s.record.started_at = kT0 + 1000;
  s.record.map->chunk = 16;
  s.record.map->collect = true;
  s.map = MapCounts{.total = 3, .done = 1, .failed = 1, .running = 2};
  json::object o = Sent(s);
  EXPECT_EQ(o.at("map"), json::parse(R"({"total": 3, "done": 1, "failed": 1, "running": 2, "chunk": 16,
                                         "on_error": "collect", "failed_index": null})"));
}

TEST(JobJsonTest, MapThatFailedFastNamesTheFailedElement) {
  JobSnapshot s = MapJob();
  s.position.reset();
  s.record.status = JobStatus::kFailed;
  s.record.finished_at = kT0 + 2000;
  s.record.error = JobError{"invalid_input", "element 2 of 3 failed: ms must be at least 0"};
  s.record.map->failed_index = 2;
  json::object o = Sent(s);
  EXPECT_EQ(o.at("map").at("failed_index"), 2);
  EXPECT_EQ(o.at("map").at("on_error"), "fail_fast");
  EXPECT_EQ(o.at("error").at("type"), "invalid_input");
  EXPECT_FALSE(o.at("map").as_object().contains("done"));
}

TEST(JobJsonTest, MapWithoutAnArrayInputCountsNoElements) {
  // A record can only carry a map spec with an array input; if it did not, the total
  // is 0 rather than a crash.
  JobSnapshot s = MapJob();
  s.record.input.reset();
  EXPECT_EQ(Sent(s).at("map").at("total"), 0);
}

TEST(JobStatusTest, NamesRoundTrip) {
  for (JobStatus st :
       {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed, JobStatus::kCanceled}) {
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
  for (const char* body :
       {"", "{", "{\"task\": \"noop\"", "task=noop", "{\"task\": noop}", "{\"task\": \"noop\"} trailing"}) {
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

TEST(ParseSubmitRequestTest, NumberOutOfRangeIsRefusedNamingTheField) {
  EXPECT_EQ(Invalid(R"({"task":"noop","input":{"x":1e400}})").rfind("input.x: the number 1e400 ", 0), 0u);
  EXPECT_EQ(Invalid(R"({"task":"noop","input":[1,-1e400]})").rfind("input[1]: ", 0), 0u);
  EXPECT_EQ(Invalid(R"({"task":"noop","map":[{},{"y":{"z":2e308}}]})").rfind("map[1].y.z: ", 0), 0u);
  EXPECT_EQ(
      Invalid(R"({"task":"noop","input":18446744073709551616})").rfind("input: the number 18446744073709551616 ", 0),
      0u);
  EXPECT_EQ(Invalid(R"({"task":"noop","priority":1e999})").rfind("priority: ", 0), 0u);
}

TEST(ParseSubmitRequestTest, NumbersAreKeptExactly) {
  auto r =
      ParseSubmitRequest(R"({"task":"noop","input":[0.1, 2.5, 18446744073709551615, -9223372036854775808, 1e-400]})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  const json::array& a = r->input.as_array();
  EXPECT_EQ(a[0].as_double(), 0.1);
  EXPECT_EQ(a[1].as_double(), 2.5);
  EXPECT_EQ(a[2].as_uint64(), 18446744073709551615u);
  EXPECT_EQ(a[3].as_int64(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(a[4].as_double(), 0.0) << "underflow reads as zero";
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
  for (const char* body : {R"({"task": 5})", R"({"task": null})", R"({"task": ["sleep"]})", R"({"task": ""})",
                           R"({"task": {"name": "sleep"}})"}) {
    EXPECT_NE(Invalid(body).find("task"), std::string::npos) << body;
  }
}

TEST(ParseSubmitRequestTest, PriorityMustBeAnInt32) {
  for (const char* body : {R"({"task":"noop","priority":"1"})", R"({"task":"noop","priority":1.5})",
                           R"({"task":"noop","priority":null})", R"({"task":"noop","priority":true})",
                           R"({"task":"noop","priority":2147483648})", R"({"task":"noop","priority":-2147483649})",
                           R"({"task":"noop","priority":18446744073709551615})", R"({"task":"noop","priority":1e3})"}) {
    EXPECT_NE(Invalid(body).find("priority"), std::string::npos) << body;
  }
}

TEST(ParseSubmitRequestTest, UnknownFieldIsNamed) {
  std::string detail = Invalid(R"({"task":"noop","prio":1})");
  EXPECT_NE(detail.find("\"prio\""), std::string::npos) << detail;
  detail = Invalid(R"({"task":"noop","inputs":{}})");
  EXPECT_NE(detail.find("\"inputs\""), std::string::npos) << detail;
}

// --- Parallel map fields of ParseSubmitRequest and ParseRunRequest ---

TEST(ParseSubmitRequestTest, MapWithChunkAndOnError) {
  auto r = ParseSubmitRequest(R"({"task": "cpu", "map": [{"ms": 1}, {"ms": 2}], "chunk": 8,
                                  "on_error": "collect", "priority": 2})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->task, "cpu");
  ASSERT_TRUE(r->map.has_value());
  EXPECT_EQ(r->map->chunk, 8);
  EXPECT_TRUE(r->map->collect);
  EXPECT_EQ(r->map->failed_index, -1);
  EXPECT_EQ(r->input, json::parse(R"([{"ms": 1}, {"ms": 2}])")) << "input is the element list";
  EXPECT_EQ(r->priority, 2);
}

TEST(ParseSubmitRequestTest, MapDefaultsToAdaptiveChunksAndFailFast) {
  auto r = ParseSubmitRequest(R"({"task": "noop", "map": []})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  ASSERT_TRUE(r->map.has_value());
  EXPECT_EQ(r->map->chunk, 0);
  EXPECT_FALSE(r->map->collect);
  EXPECT_EQ(r->input, json::array{});
  auto ff = ParseSubmitRequest(R"({"task": "noop", "map": [1], "on_error": "fail_fast"})");
  ASSERT_TRUE(ff.has_value()) << ff.error().detail;
  EXPECT_FALSE(ff->map->collect);
}

TEST(ParseSubmitRequestTest, MapFieldsMayComeInAnyOrder) {
  auto r = ParseSubmitRequest(R"({"chunk": 3, "on_error": "collect", "map": [1, 2], "task": "noop"})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  ASSERT_TRUE(r->map.has_value());
  EXPECT_EQ(r->map->chunk, 3);
  EXPECT_TRUE(r->map->collect);
  EXPECT_EQ(r->input, (json::array{1, 2}));
}

TEST(ParseSubmitRequestTest, ChunkBoundsAreAccepted) {
  for (std::int64_t chunk : {1, 1'000'000}) {
    auto r = ParseSubmitRequest(R"({"task": "noop", "map": [1], "chunk": )" + std::to_string(chunk) + "}");
    ASSERT_TRUE(r.has_value()) << chunk;
    EXPECT_EQ(r->map->chunk, chunk);
  }
}

TEST(ParseSubmitRequestTest, PlainJobHasNoMap) {
  auto r = ParseSubmitRequest(R"({"task": "noop", "input": [1, 2, 3]})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_FALSE(r->map.has_value()) << "an array input is one job's input";
}

TEST(ParseSubmitRequestTest, MapMustBeAnArray) {
  for (const char* map : {"5", "null", "{}", "\"[1]\"", "true"}) {
    std::string detail = Invalid(std::string(R"({"task": "noop", "map": )") + map + "}");
    EXPECT_NE(detail.find("map"), std::string::npos) << map << ": " << detail;
    EXPECT_NE(detail.find("array"), std::string::npos) << map << ": " << detail;
  }
}

TEST(ParseSubmitRequestTest, MapAndInputAreExclusive) {
  for (const char* body :
       {R"({"task": "noop", "input": 1, "map": [1]})", R"({"task": "noop", "map": [1], "input": [1]})",
        R"({"task": "noop", "map": [], "input": null})"}) {
    std::string detail = Invalid(body);
    EXPECT_NE(detail.find("input"), std::string::npos) << body << ": " << detail;
    EXPECT_NE(detail.find("map"), std::string::npos) << body << ": " << detail;
  }
}

TEST(ParseSubmitRequestTest, ChunkAndOnErrorNeedAMap) {
  std::string detail = Invalid(R"({"task": "noop", "chunk": 2})");
  EXPECT_NE(detail.find("chunk"), std::string::npos) << detail;
  EXPECT_NE(detail.find("map"), std::string::npos) << detail;
  detail = Invalid(R"({"task": "noop", "on_error": "collect"})");
  EXPECT_NE(detail.find("on_error"), std::string::npos) << detail;
  EXPECT_NE(detail.find("map"), std::string::npos) << detail;
}

TEST(ParseSubmitRequestTest, ChunkBesideAnInputIsRefusedNamingChunk) {
  const std::string detail = Invalid(R"({"task": "noop", "input": 1, "chunk": 2})");
  EXPECT_NE(detail.find("chunk"), std::string::npos) << detail;
}

TEST(ParseSubmitRequestTest, ChunkMustBeAnIntegerFrom1To1000000) {
  for (const char* chunk :
       {"0", "-1", "1000001", "1.5", "2e0", "\"4\"", "null", "true", "[4]", "18446744073709551615"}) {
    std::string detail = Invalid(std::string(R"({"task": "noop", "map": [1], "chunk": )") + chunk + "}");
    EXPECT_NE(detail.find("chunk"), std::string::npos) << chunk << ": " << detail;
  }
}

TEST(ParseSubmitRequestTest, OnErrorMustBeFailFastOrCollect) {
  for (const char* mode : {"\"ignore\"", "\"Collect\"", "\"\"", "0", "null", "[\"collect\"]"}) {
    std::string detail = Invalid(std::string(R"({"task": "noop", "map": [1], "on_error": )") + mode + "}");
    EXPECT_NE(detail.find("on_error"), std::string::npos) << mode << ": " << detail;
  }
}

TEST(ParseSubmitRequestTest, MapFieldsAreNamedInTheUnknownFieldDetail) {
  std::string detail = Invalid(R"({"task": "noop", "maps": [1]})");
  EXPECT_NE(detail.find("\"maps\""), std::string::npos) << detail;
  EXPECT_NE(detail.find("map, chunk, on_error"), std::string::npos) << detail;
}

TEST(ParseRunRequestTest, PlainBodyIsTheInput) {
  auto r = ParseRunRequest("cpu", R"({"ms": 5})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->task, "cpu");
  EXPECT_FALSE(r->map.has_value());
  EXPECT_EQ(r->input, json::parse(R"({"ms": 5})"));
  auto empty = ParseRunRequest("noop", "");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->input.is_null());
  EXPECT_FALSE(empty->map.has_value());
}

TEST(ParseRunRequestTest, MapBodyIsAMap) {
  auto r = ParseRunRequest("cpu", R"({"map": [{"ms": 1}, {"ms": 2}]})");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->task, "cpu");
  ASSERT_TRUE(r->map.has_value());
  EXPECT_EQ(r->map->chunk, 0);
  EXPECT_FALSE(r->map->collect);
  EXPECT_EQ(r->input, json::parse(R"([{"ms": 1}, {"ms": 2}])"));

  auto full = ParseRunRequest("cpu", R"({"on_error": "collect", "map": [1], "chunk": 5})");
  ASSERT_TRUE(full.has_value()) << full.error().detail;
  ASSERT_TRUE(full->map.has_value());
  EXPECT_EQ(full->map->chunk, 5);
  EXPECT_TRUE(full->map->collect);
  EXPECT_EQ(full->input, (json::array{1}));
}

TEST(ParseRunRequestTest, AMapBodyWithAnyOtherKeyIsAPlainInput) {
  for (const char* body : {R"({"map": [1, 2], "other": 1})", R"({"other": 1, "map": [1, 2], "chunk": 2})",
                           R"({"map": "not even an array", "ms": 3})"}) {
    auto r = ParseRunRequest("cpu", body);
    ASSERT_TRUE(r.has_value()) << body << ": " << r.error().detail;
    EXPECT_FALSE(r->map.has_value()) << body;
    EXPECT_EQ(r->input, json::parse(body)) << body;
  }
}

TEST(ParseRunRequestTest, ChunkOrOnErrorWithoutMapIsAPlainInput) {
  for (const char* body : {R"({"chunk": 2})", R"({"on_error": "collect"})", R"([{"map": [1]}])"}) {
    auto r = ParseRunRequest("noop", body);
    ASSERT_TRUE(r.has_value()) << body << ": " << r.error().detail;
    EXPECT_FALSE(r->map.has_value()) << body;
    EXPECT_EQ(r->input, json::parse(body)) << body;
  }
}

TEST(ParseRunRequestTest, BadMapFieldsAreRefusedNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"map": 5})", "map"},
      {R"({"map": [1], "chunk": 0})", "chunk"},
      {R"({"map": [1], "chunk": "2"})", "chunk"},
      {R"({"map": [1], "on_error": "skip"})", "on_error"},
  };
  for (const auto& [body, field] : cases) {
    auto r = ParseRunRequest("noop", body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << body;
    EXPECT_NE(r.error().detail.find(field), std::string::npos) << body << ": " << r.error().detail;
  }
}

TEST(ParseRunRequestTest, NumberOutOfRangeIsRefusedNamingTheInputField) {
  for (auto [body, place] : {std::pair{R"({"x": 1e400})", "input.x: "}, std::pair{"1e400", "input: "},
                             std::pair{R"({"map": [{"ms": 1}, 1e400]})", "input.map[1]: "}}) {
    auto r = ParseRunRequest("noop", body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << body;
    EXPECT_EQ(r.error().detail.rfind(place, 0), 0u) << body << ": " << r.error().detail;
  }
}

TEST(ParseRunRequestTest, MalformedJson) {
  auto r = ParseRunRequest("noop", R"({"map": [1,)");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
}

}  // namespace
}  // namespace offload
