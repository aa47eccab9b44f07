// Micro-benchmarks of the API's JSON codec: a job object out (as every POST and GET
// answers) and a submit request in; util/json_writer and json_reader against Boost's
// serialize and parse.
#include <benchmark/benchmark.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "http/job_json.h"
#include "util/clock.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace {

offload::JobSnapshot QueuedJob() {
  offload::JobSnapshot snap;
  offload::JobRecord& r = snap.record;
  r.id = "Q2x0dGhpcyBpcyBh";
  r.task = "noop";
  r.seq = 12345;
  r.created_at = 1'760'000'000'123;
  r.input = std::make_shared<const boost::json::value>(nullptr);
  snap.position = 42;
  return snap;
}

offload::JobSnapshot SucceededJob() {
  offload::JobSnapshot snap = QueuedJob();
  offload::JobRecord& r = snap.record;
  snap.position.reset();
  r.status = offload::JobStatus::kSucceeded;
  r.attempts = 1;
  r.started_at = r.created_at + 1;
  r.finished_at = r.created_at + 12;
  r.progress = 1.0;
  r.result = offload::Result::Json(boost::json::object{{"ms", 10}, {"rounds", 512}, {"checksum", 4711}}).output();
  return snap;
}

// What the API sends for a job (http/job_json.h).
std::string JobText(const offload::JobSnapshot& snap) {
  std::string body;
  offload::AppendJobJson(&body, snap);
  return body;
}

void BM_JobJson(benchmark::State& state) {
  const offload::JobSnapshot snap = state.range(0) == 0 ? QueuedJob() : SucceededJob();
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string body = JobText(snap);
    bytes += body.size();
    benchmark::DoNotOptimize(body);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_JobJson)->ArgName("succeeded")->Arg(0)->Arg(1);

// The writer alone on a value with floats and strings, against Boost's serializer.
boost::json::value MixedValue() {
  boost::json::array a;
  for (int i = 0; i < 64; ++i) {
    a.push_back(boost::json::object{{"x", i * 0.1}, {"y", 2.5 * i}, {"n", i}, {"name", "élément"}});
  }
  return a;
}

void BM_WriteMixed(benchmark::State& state) {
  const boost::json::value v = MixedValue();
  for (auto _ : state) {
    std::string s = state.range(0) == 0 ? boost::json::serialize(v) : offload::WriteJson(v);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WriteMixed)->ArgName("offload")->Arg(0)->Arg(1);

// The writer alone on a succeeded job's object (BM_JobJson includes building it),
// against Boost's serializer.
void BM_WriteJobObject(benchmark::State& state) {
  const boost::json::value v = boost::json::parse(JobText(SucceededJob()));
  for (auto _ : state) {
    std::string s = state.range(0) == 0 ? boost::json::serialize(v) : offload::WriteJson(v);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WriteJobObject)->ArgName("offload")->Arg(0)->Arg(1);

void BM_ParseMixed(benchmark::State& state) {
  const std::string text = offload::WriteJson(MixedValue());
  for (auto _ : state) {
    if (state.range(0) == 0) {
      boost::system::error_code ec;
      auto v = boost::json::parse(text, ec);
      benchmark::DoNotOptimize(v);
    } else {
      auto v = offload::ParseJson(text);
      benchmark::DoNotOptimize(v);
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseMixed)->ArgName("offload")->Arg(0)->Arg(1);

void BM_ParseSubmitRequest(benchmark::State& state) {
  const std::string body =
      state.range(0) == 0
          ? R"({"task":"noop","input":null})"
          : R"({"task":"render","input":{"scene":"teapot","width":1920,"height":1080,"samples":64,"tags":["a","b","c"]},"priority":5})";
  for (auto _ : state) {
    auto req = offload::ParseSubmitRequest(body);
    benchmark::DoNotOptimize(req);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ParseSubmitRequest)->ArgName("rich_input")->Arg(0)->Arg(1);

void BM_FormatRfc3339(benchmark::State& state) {
  offload::UnixMillis t = 1'760'000'000'123;
  for (auto _ : state) {
    std::string s = offload::FormatRfc3339(++t);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_FormatRfc3339);

}  // namespace
