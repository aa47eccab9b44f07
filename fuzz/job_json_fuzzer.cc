// Fuzzes the job JSON codec (src/http/job_json.h): the bytes are a body of POST
// /v1/jobs (ParseSubmitRequest) and of POST /v1/tasks/NAME/run (ParseRunRequest).
// A body that parses becomes a job record as the service would store it, succeeded
// with its input as its result, and is rendered back (AppendJobJson) with both.
//
// Besides what the sanitizers catch, it checks what json_writer.h promises:
//  - the job object is valid JSON in valid UTF-8 (ParseJson reads it back);
//  - the input written for the store and for processes (JsonNumbers::kKeepKind)
//    reads back as the same value, number kinds included;
//  - the input inside the job object (JsonNumbers::kShortest) reads back as the same
//    value, numbers compared by what they are worth (1.0 is written "1").
// A failed check aborts, with the input kept as a crash.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "http/job_json.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {
namespace {

namespace json = boost::json;

[[noreturn]] void Fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "job_json_fuzzer: %s: %.*s\n", what, static_cast<int>(text.size()), text.data());
  std::abort();
}

// Equal values; with `by_worth`, numbers of different kinds are equal when they are
// worth the same (an integral double written as an integer).
bool Same(const json::value& a, const json::value& b, bool by_worth) {
  if (by_worth && a.is_number() && b.is_number() && a.kind() != b.kind()) {
    if (a.is_double() || b.is_double()) return a.to_number<double>() == b.to_number<double>();
    return a == b;  // int64 and uint64: Boost compares their values.
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const json::array& x = a.get_array();
    const json::array& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!Same(x[i], y[i], by_worth)) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const json::object& x = a.get_object();
    const json::object& y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& [key, value] : x) {
      const json::value* other = y.if_contains(key);
      if (!other || !Same(value, *other, by_worth)) return false;
    }
    return true;
  }
  return a == b;
}

void Check(const SubmitRequest& submit) {
  std::string kept;
  AppendJson(&kept, submit.input, JsonNumbers::kKeepKind);
  ErrorOr<json::value> back = ParseJson(kept);
  if (!back) Fail("the input as kKeepKind writes it is not JSON", kept);
  if (!Same(*back, submit.input, /*by_worth=*/false)) Fail("the input does not read back as written", kept);

  JobSnapshot snap;
  JobRecord& r = snap.record;
  r.id = "fuzz";
  r.task = submit.task;
  r.status = JobStatus::kSucceeded;
  r.priority = submit.priority;
  r.timeout_ms = submit.timeout.count();
  r.map = submit.map;
  r.tenant = submit.tenant;
  r.input = std::make_shared<const json::value>(submit.input);
  auto out = std::make_shared<Output>();
  out->content_type = "application/json";
  out->json = submit.input;
  r.result = std::move(out);
  r.error = JobError{"invalid_input", submit.task, submit.idempotency_key};
  std::string body;
  AppendJobJson(&body, snap, /*include_result=*/true, /*include_input=*/true);
  ErrorOr<json::value> job = ParseJson(body);
  if (!job) Fail("the job object is not JSON", body);
  const json::object* o = job->if_object();
  const json::value* input = o ? o->if_contains("input") : nullptr;
  const json::value* result = o ? o->if_contains("result") : nullptr;
  if (!input || !result) Fail("the job object lacks its input or result", body);
  if (!Same(*input, submit.input, /*by_worth=*/true) || !Same(*result, submit.input, /*by_worth=*/true)) {
    Fail("the job object's input is not the input", body);
  }
  std::string listed;
  AppendJobJson(&listed, snap, /*include_result=*/false);
  if (!ParseJson(listed)) Fail("the listed job object is not JSON", listed);
}

}  // namespace
}  // namespace offload

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto submit = offload::ParseSubmitRequest(body)) offload::Check(*submit);
  if (auto run = offload::ParseRunRequest("fuzz", body)) offload::Check(*run);
  return 0;
}
