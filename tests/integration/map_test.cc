// Parallel maps end to end: one parent job over a list of inputs, through the real
// server — ordered results, live counts, cancel, the run endpoint, every refusal,
// `command` and `worker` tasks, and a large map whose memory goes back afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "exec/proc_util.h"
#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

const std::string kSource = OFFLOAD_SOURCE_DIR;

// Two cpu slots and the default (SQLite) store; `command` tasks for the process maps:
// `echo` answers its input, `picky` fails (exit 3) on an input that contains "fail".
constexpr std::string_view kMapConfig = R"(
shutdown_grace = "200ms"

[resources]
cpu = 2

[tasks.echo]
command = ["sh", "-c", "cat"]

[tasks.picky]
command = ["sh", "-c", 'read x; case "$x" in *fail*) exit 3;; *) printf "%s\n" "$x";; esac']
)";

const Headers kPreferWait{{"Prefer", "wait=20"}};

class MapTest : public ServerTest {
 protected:
  Response Post(std::string_view target, const json::value& body, const Headers& headers = {}) {
    return client().Post(target, json::serialize(body), headers);
  }

  // Submits a map job with `fields` (task, map, chunk, ...) and waits for its end;
  // returns the job object (empty, with a test failure, when it was refused).
  json::object RunMap(const json::object& fields) {
    Response res = Post("/v1/jobs", fields, kPreferWait);
    if (res.status != 200 && res.status != 202) {
      ADD_FAILURE() << "submit: " << Describe(res);
      return {};
    }
    json::object job = res.json().as_object();
    if (res.status == 202) job = WaitFinished(client(), Field(job, "id"));
    return job;
  }

  // The `map` object of a job (empty, with a test failure, when it has none).
  static json::object MapOf(const json::object& job) {
    const json::value* m = job.if_contains("map");
    if (!m || !m->is_object()) {
      ADD_FAILURE() << "job has no map object: " << json::serialize(job);
      return {};
    }
    return m->as_object();
  }

  static std::string Detail(const Response& res) {
    const json::value& body = res.json();
    const json::value* d = body.is_object() ? body.as_object().if_contains("detail") : nullptr;
    return d && d->is_string() ? std::string(d->get_string()) : "";
  }

  // Expects `body` POSTed to `target` to be refused with a 422 problem whose detail
  // contains every one of `words`.
  void ExpectRefused(std::string_view target, std::string_view body, std::vector<std::string> words) {
    Response res = client().Post(target, std::string(body));
    EXPECT_TRUE(IsProblem(res, 422)) << body;
    const std::string detail = Detail(res);
    for (const auto& w : words) {
      EXPECT_NE(detail.find(w), std::string::npos) << body << " -> detail: " << detail;
    }
  }
};

// The resident set of `pid` in bytes (VmRSS), or -1 when /proc cannot tell.
std::int64_t RssBytes(pid_t pid, std::string_view key = "VmRSS:") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size())) * 1024;  // "... kB"
  }
  return -1;
}

TEST_F(MapTest, CpuMapWithPreferWaitAnswersTheResultsInInputOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  // 0..30 ms in a shuffled order: elements finish out of order on two slots.
  std::vector<int> ms(31);
  std::iota(ms.begin(), ms.end(), 0);
  std::shuffle(ms.begin(), ms.end(), std::mt19937(20240501));
  json::array inputs;
  for (int m : ms) inputs.push_back(json::object{{"ms", m}});

  Response res = Post("/v1/jobs", json::object{{"task", "cpu"}, {"map", inputs}}, kPreferWait);
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "application/json");
  json::object job = res.json().as_object();
  EXPECT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  EXPECT_EQ(Field(job, "task"), "cpu");
  ASSERT_TRUE(job.at("result").is_array()) << json::serialize(job);
  const json::array& result = job.at("result").as_array();
  ASSERT_EQ(result.size(), ms.size());
  for (std::size_t i = 0; i < ms.size(); ++i) {
    ASSERT_TRUE(result[i].is_object()) << i << ": " << json::serialize(result[i]);
    EXPECT_EQ(result[i].at("ms"), ms[i]) << "element " << i;
  }
  EXPECT_EQ(job.at("progress").to_number<double>(), 1.0);
  json::object map = MapOf(job);
  EXPECT_EQ(map.at("total"), 31);
  EXPECT_TRUE(map.at("chunk").is_null()) << "adaptive";
  EXPECT_EQ(map.at("on_error"), "fail_fast");
  EXPECT_TRUE(map.at("failed_index").is_null());
  for (const char* live : {"done", "failed", "running"}) {
    EXPECT_FALSE(map.contains(live)) << live << " is shown only while the map is active";
  }
  // The same list from /result.
  Response alone = client().Get("/v1/jobs/" + Field(job, "id") + "/result");
  ASSERT_EQ(alone.status, 200) << Describe(alone);
  EXPECT_EQ(alone.json(), job.at("result"));
}

TEST_F(MapTest, EmptyMapSucceedsAtOnceWithAnEmptyList) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  Response res = Post("/v1/jobs", json::object{{"task", "cpu"}, {"map", json::array{}}}, kPreferWait);
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(Field(res.json().as_object(), "status"), "succeeded");
  EXPECT_EQ(res.json().at("result"), json::array{});
  EXPECT_EQ(res.json().at("map").at("total"), 0);
}

TEST_F(MapTest, MapWithoutWaitShowsLiveCountsAndDeleteCancelsEveryElement) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  json::array inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back(json::object{{"ms", 300}});
  Response res = Post("/v1/jobs", json::object{{"task", "sleep"}, {"map", inputs}, {"chunk", 1}});
  ASSERT_EQ(res.status, 202) << Describe(res);
  const std::string id = Field(res.json().as_object(), "id");
  EXPECT_EQ(res.header("location"), "/v1/jobs/" + id);
  json::object map = MapOf(res.json().as_object());
  EXPECT_EQ(map.at("total"), 10);
  EXPECT_EQ(map.at("chunk"), 1);
  EXPECT_EQ(map.at("on_error"), "fail_fast");

  // Both slots busy, one element each (chunk 1).
  json::object job;
  ASSERT_TRUE(WaitUntil([&] {
    job = GetJob(client(), id);
    return job.contains("map") && job.at("map").as_object().contains("running") && job.at("map").at("running") == 2;
  })) << json::serialize(job);
  EXPECT_EQ(Field(job, "status"), "running");
  WaitForInUse(client(), "cpu", 2);

  // The first two end after 300 ms: done counts them, progress follows.
  ASSERT_TRUE(WaitUntil([&] {
    job = GetJob(client(), id);
    return job.contains("map") && job.at("map").as_object().contains("done") &&
           job.at("map").at("done").to_number<std::int64_t>() >= 2;
  })) << json::serialize(job);
  ASSERT_EQ(Field(job, "status"), "running") << "the DELETE below must catch it running";
  map = MapOf(job);
  const auto done = map.at("done").to_number<std::int64_t>();
  EXPECT_LT(done, 10);
  EXPECT_EQ(map.at("failed"), 0);
  EXPECT_LE(map.at("running").to_number<std::int64_t>(), 2);
  EXPECT_LE(done + map.at("running").to_number<std::int64_t>(), 10);
  ASSERT_TRUE(job.at("progress").is_number()) << json::serialize(job);
  EXPECT_GE(job.at("progress").to_number<double>(), 2.0 / 10);
  EXPECT_LT(job.at("progress").to_number<double>(), 1.0);

  Response del = client().Delete("/v1/jobs/" + id);
  ASSERT_EQ(del.status, 200) << Describe(del);
  EXPECT_EQ(Field(del.json().as_object(), "status"), "canceled");
  json::object finished = WaitFinished(client(), id, milliseconds(5000));
  EXPECT_EQ(Field(finished, "status"), "canceled");
  EXPECT_TRUE(finished.at("result").is_null());
  // The running elements stop and free their slots; none of the rest start.
  WaitForInUse(client(), "cpu", 0, milliseconds(5000));
  EXPECT_EQ(Field(GetJob(client(), id), "status"), "canceled");
}

TEST_F(MapTest, RunWithAMapAnswersTheOrderedListAlone) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  Response noop = client().Post("/v1/tasks/noop/run", R"({"map": [1, 2, 3]})");
  ASSERT_EQ(noop.status, 200) << Describe(noop);
  EXPECT_EQ(noop.header("content-type"), "application/json");
  EXPECT_EQ(noop.body, "[null,null,null]");

  Response cpu =
      client().Post("/v1/tasks/cpu/run", R"({"map": [{"ms": 7}, {"ms": 0}, {"ms": 3}, {"ms": 1}], "chunk": 2})");
  ASSERT_EQ(cpu.status, 200) << Describe(cpu);
  ASSERT_TRUE(cpu.json().is_array()) << Describe(cpu);
  const json::array& list = cpu.json().as_array();
  ASSERT_EQ(list.size(), 4u);
  const int want[] = {7, 0, 3, 1};
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(list[i].at("ms"), want[i]) << "element " << i;

  // A key other than map, chunk and on_error: the body is one job's input.
  Response plain = client().Post("/v1/tasks/cpu/run", R"({"map": [1, 2], "ms": 2})");
  ASSERT_EQ(plain.status, 200) << Describe(plain);
  ASSERT_TRUE(plain.json().is_object()) << Describe(plain);
  EXPECT_EQ(plain.json().at("ms"), 2);
}

TEST_F(MapTest, MapMustBeAnArray) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  for (const char* map : {"5", "{\"ms\": 1}", "\"[1]\"", "null"}) {
    ExpectRefused("/v1/jobs", std::string(R"({"task": "noop", "map": )") + map + "}", {"map", "array"});
  }
  ExpectRefused("/v1/tasks/noop/run", R"({"map": {"a": 1}})", {"map", "array"});
}

TEST_F(MapTest, MapAndInputTogetherAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  ExpectRefused("/v1/jobs", R"({"task": "noop", "input": [1], "map": [1]})", {"input", "map"});
  ExpectRefused("/v1/jobs", R"({"task": "noop", "map": [1], "input": null})", {"input", "map"});
}

TEST_F(MapTest, ChunkAndOnErrorNeedAMap) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  ExpectRefused("/v1/jobs", R"({"task": "noop", "chunk": 4})", {"chunk", "map"});
  ExpectRefused("/v1/jobs", R"({"task": "noop", "on_error": "collect"})", {"on_error", "map"});
}

TEST_F(MapTest, ChunkBesideAnInputIsRefusedNamingChunk) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  // The client gave no map: a detail about "input and map, not both" sends them
  // looking for a map field they never wrote.
  Response res = client().Post("/v1/jobs", R"({"task": "noop", "input": 1, "chunk": 4})");
  EXPECT_TRUE(IsProblem(res, 422)) << Describe(res);
  EXPECT_NE(Detail(res).find("chunk"), std::string::npos) << Describe(res);
}

TEST_F(MapTest, ChunkMustBeAnIntegerFrom1To1000000) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  for (const char* chunk : {"0", "-1", "1000001", "1.5", "\"2\"", "null", "true"}) {
    ExpectRefused("/v1/jobs", std::string(R"({"task": "noop", "map": [1], "chunk": )") + chunk + "}", {"chunk"});
  }
  ExpectRefused("/v1/tasks/noop/run", R"({"map": [1], "chunk": 0})", {"chunk"});
  // The bounds themselves are accepted.
  for (int chunk : {1, 1'000'000}) {
    json::object job = RunMap(json::object{{"task", "noop"}, {"map", json::array{1, 2}}, {"chunk", chunk}});
    EXPECT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
    EXPECT_EQ(MapOf(job).at("chunk"), chunk);
  }
}

TEST_F(MapTest, OnErrorMustBeFailFastOrCollect) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  for (const char* mode : {"\"ignore\"", "\"Collect\"", "\"\"", "1", "null", "[\"collect\"]"}) {
    ExpectRefused("/v1/jobs", std::string(R"({"task": "noop", "map": [1], "on_error": )") + mode + "}", {"on_error"});
  }
  ExpectRefused("/v1/tasks/noop/run", R"({"map": [1], "on_error": "skip"})", {"on_error"});
}

TEST_F(MapTest, ARejectedElementRefusesTheWholeMapBeforeAnythingIsStored) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  Response res = client().Post("/v1/jobs", R"({"task": "cpu", "map": [{"ms": 1}, {"ms": 2}, {"ms": -5}]})");
  ASSERT_TRUE(IsProblem(res, 422)) << Describe(res);
  EXPECT_EQ(Detail(res).rfind("map[2]: ", 0), 0u) << Detail(res);
  EXPECT_NE(Detail(res).find("ms"), std::string::npos) << Detail(res);

  Response run = client().Post("/v1/tasks/sleep/run", R"({"map": [{"ms": "soon"}]})");
  ASSERT_TRUE(IsProblem(run, 422)) << Describe(run);
  EXPECT_EQ(Detail(run).rfind("map[0]: ", 0), 0u) << Detail(run);

  Response list = client().Get("/v1/jobs");
  ASSERT_EQ(list.status, 200) << Describe(list);
  EXPECT_TRUE(list.json().at("jobs").as_array().empty()) << Describe(list);
}

TEST_F(MapTest, AMapOfABinaryTaskAnswersBase64Results) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  Response res =
      client().Post("/v1/tasks/mandelbrot/run", R"({"map": [{"width": 8, "height": 8}, {"width": 16, "height": 4}]})");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.header("content-type"), "application/json");
  const json::array& out = res.json().as_array();
  ASSERT_EQ(out.size(), 2u);
  for (const json::value& e : out) {
    EXPECT_EQ(e.at("content_type"), "image/png");
    EXPECT_EQ(e.at("base64").as_string().subview(0, 11), "iVBORw0KGgo") << "the PNG signature";
  }
}

TEST_F(MapTest, CommandMapAnswersEveryElementInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  json::array inputs;
  for (int i = 0; i < 20; ++i) {
    inputs.push_back(json::object{{"i", i}, {"s", "element " + std::to_string(i)}, {"a", json::array{i, i * i}}});
  }
  json::object job = RunMap(json::object{{"task", "echo"}, {"map", inputs}});
  ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  EXPECT_EQ(job.at("result"), inputs);
  EXPECT_EQ(MapOf(job).at("total"), 20);
  WaitForInUse(client(), "cpu", 0);
}

json::array PickyInputs(std::initializer_list<int> failing) {
  json::array inputs;
  for (int i = 0; i < 10; ++i) {
    const bool fails = std::find(failing.begin(), failing.end(), i) != failing.end();
    inputs.push_back(json::string((fails ? "fail-" : "ok-") + std::to_string(i)));
  }
  return inputs;
}

TEST_F(MapTest, CommandMapFailsFastAtTheFailingElement) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  json::object job = RunMap(json::object{{"task", "picky"}, {"map", PickyInputs({6})}, {"chunk", 1}});
  ASSERT_EQ(Field(job, "status"), "failed") << json::serialize(job);
  ASSERT_TRUE(job.at("error").is_object()) << json::serialize(job);
  EXPECT_EQ(job.at("error").at("type"), "command_failed");
  const std::string message(job.at("error").at("message").as_string());
  EXPECT_NE(message.find("element 6 of 10 failed: "), std::string::npos) << message;
  EXPECT_NE(message.find("status 3"), std::string::npos) << message;
  EXPECT_TRUE(job.at("result").is_null());
  EXPECT_EQ(MapOf(job).at("failed_index"), 6);
  EXPECT_EQ(MapOf(job).at("on_error"), "fail_fast");
  // The same failure from /run, as a problem.
  Response run = client().Post("/v1/tasks/picky/run", json::serialize(json::object{{"map", PickyInputs({6})}}));
  EXPECT_TRUE(IsProblem(run, 500)) << Describe(run);
  EXPECT_NE(Detail(run).find("element 6 of 10 failed"), std::string::npos) << Describe(run);
  WaitForInUse(client(), "cpu", 0);
}

TEST_F(MapTest, CommandMapWithCollectGivesEachElementsOutcome) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kMapConfig));
  json::object job = RunMap(json::object{{"task", "picky"}, {"map", PickyInputs({2, 7})}, {"on_error", "collect"}});
  ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  ASSERT_TRUE(job.at("result").is_array()) << json::serialize(job);
  const json::array& result = job.at("result").as_array();
  ASSERT_EQ(result.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    const json::object& entry = result[i].as_object();
    ASSERT_EQ(entry.size(), 1u) << i << ": " << json::serialize(entry);
    if (i == 2 || i == 7) {
      ASSERT_TRUE(entry.contains("error")) << i << ": " << json::serialize(entry);
      EXPECT_EQ(entry.at("error").at("type"), "command_failed");
      EXPECT_NE(json::serialize(entry.at("error").at("message")).find("status 3"), std::string::npos)
          << json::serialize(entry);
    } else {
      ASSERT_TRUE(entry.contains("ok")) << i << ": " << json::serialize(entry);
      EXPECT_EQ(entry.at("ok"), json::value("ok-" + std::to_string(i)));
    }
  }
  json::object map = MapOf(job);
  EXPECT_EQ(map.at("on_error"), "collect");
  EXPECT_TRUE(map.at("failed_index").is_null());
}

TEST_F(MapTest, WorkerMapRunsOnTheExampleWorker) {
  TestServerOptions options;
  options.extra_args = {"--config", kSource + "/examples/python-worker/offload.toml"};
  std::string err = server_.Start(options);
  ASSERT_TRUE(err.empty()) << err;
  client_.emplace(server_.port());

  // Element i scores i: "good" (1.0) i times.
  json::array inputs;
  for (int i = 0; i < 50; ++i) {
    std::string text;
    for (int k = 0; k < i; ++k) text += "good ";
    inputs.push_back(json::object{{"text", text}});
  }
  json::object job = RunMap(json::object{{"task", "sentiment"}, {"map", inputs}});
  ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  const json::array& result = job.at("result").as_array();
  ASSERT_EQ(result.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(result[i].at("score").to_number<double>(), i) << "element " << i;
    EXPECT_EQ(result[i].at("label"), i == 0 ? "neutral" : "positive") << "element " << i;
    EXPECT_EQ(result[i].at("worker").at("model_loads"), 1);
  }
  EXPECT_EQ(MapOf(job).at("total"), 50);
}

TEST_F(MapTest, HundredThousandElementMapCompletesAndGivesItsMemoryBack) {
  // The default store: the map is one SQLite row.
  ASSERT_NO_FATAL_FAILURE(StartServer("shutdown_grace = \"200ms\"\n[resources]\ncpu = 2\n"));
  // Warm up, so that the baseline includes what any map allocates once.
  ASSERT_EQ(client().Post("/v1/tasks/noop/run", R"({"map": [1, 2, 3]})").status, 200);
  const std::int64_t baseline = RssBytes(server_.pid());
  ASSERT_GT(baseline, 0);

  // Four maps one after another: one map peaks at some 20 MiB over the baseline, so
  // maps whose memory stayed behind would pass the bound below by the last one.
  constexpr int kTotal = 100'000;
  for (int round = 0; round < 4; ++round) {
    json::array inputs;
    inputs.reserve(kTotal);
    for (int i = 0; i < kTotal; ++i) inputs.push_back(i);
    Response res = Post("/v1/jobs", json::object{{"task", "noop"}, {"map", std::move(inputs)}});
    ASSERT_EQ(res.status, 202) << Describe(res);
    json::object job = WaitFinished(client(), Field(res.json().as_object(), "id"), milliseconds(30'000));
    ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
    ASSERT_TRUE(job.at("result").is_array());
    const json::array& result = job.at("result").as_array();
    EXPECT_EQ(result.size(), static_cast<std::size_t>(kTotal));
    EXPECT_TRUE(std::all_of(result.begin(), result.end(), [](const json::value& v) { return v.is_null(); }));
    EXPECT_EQ(MapOf(job).at("total"), kTotal);
    EXPECT_EQ(job.at("progress").to_number<double>(), 1.0);
  }

#if defined(__SANITIZE_ADDRESS__)
  // The server is built like this test: AddressSanitizer keeps freed memory in
  // quarantine, so its RSS says nothing about what the server gave back.
  GTEST_SKIP() << "RSS check skipped under AddressSanitizer";
#endif
  // Not a benchmark: the maps' memory is released once they are done (generously).
  constexpr std::int64_t kSlack = 64 << 20;
  std::int64_t rss = -1;
  EXPECT_TRUE(WaitUntil([&] { return (rss = RssBytes(server_.pid())) < baseline + kSlack; }, milliseconds(5000)))
      << "VmRSS " << rss / 1024 << " kB after the maps; " << baseline / 1024 << " kB before; peak (VmHWM) "
      << RssBytes(server_.pid(), "VmHWM:") / 1024 << " kB";
  RecordProperty("rss_before_kb", std::to_string(baseline / 1024));
  RecordProperty("rss_after_kb", std::to_string(rss / 1024));
  RecordProperty("rss_peak_kb", std::to_string(RssBytes(server_.pid(), "VmHWM:") / 1024));
}

}  // namespace
}  // namespace offload::testing
