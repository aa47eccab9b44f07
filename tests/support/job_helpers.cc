#include "support/job_helpers.h"

#include <thread>

namespace offload::testing {

namespace json = boost::json;

namespace {

bool IsFinishedStatus(std::string_view s) { return s == "succeeded" || s == "failed" || s == "canceled"; }

}  // namespace

std::string Describe(const Response& res) {
  if (res.status == 0) return "no response: " + res.error;
  std::string body = res.body.size() > 2000 ? res.body.substr(0, 2000) + "..." : res.body;
  return "HTTP " + std::to_string(res.status) + " (" + res.header("content-type") + ") " + body;
}

json::object SubmitJob(HttpClient& client, std::string_view task, json::value input, int priority) {
  json::object req{{"task", task}, {"input", std::move(input)}};
  if (priority != 0) req["priority"] = priority;
  Response res = client.Post("/v1/jobs", json::serialize(req));
  if (res.status != 202 || !res.json().is_object()) {
    ADD_FAILURE() << "submit " << task << ": " << Describe(res);
    return {};
  }
  return res.json().as_object();
}

json::object GetJob(HttpClient& client, const std::string& id) {
  Response res = client.Get("/v1/jobs/" + id);
  if (res.status != 200 || !res.json().is_object()) {
    ADD_FAILURE() << "GET job " << id << ": " << Describe(res);
    return {};
  }
  return res.json().as_object();
}

json::object WaitFinished(HttpClient& client, const std::string& id, std::chrono::milliseconds deadline) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + deadline;
  json::object job;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds(0);
    // Whole seconds keep to RFC 7240's integer wait; the server answers as soon as
    // the job finishes, so rounding up costs nothing.
    const auto wait_s = std::max<std::int64_t>(1, (left.count() + 999) / 1000);
    Response res = client.Get("/v1/jobs/" + id + "?wait=" + std::to_string(wait_s),
                              std::chrono::milliseconds(wait_s * 1000 + 10'000));
    if (res.status != 200 || !res.json().is_object()) {
      ADD_FAILURE() << "GET job " << id << "?wait: " << Describe(res);
      return job;
    }
    job = res.json().as_object();
    if (IsFinishedStatus(Field(job, "status"))) return job;
    if (Clock::now() >= until) {
      ADD_FAILURE() << "job " << id << " did not finish within " << deadline.count() << " ms: " << json::serialize(job);
      return job;
    }
  }
}

json::object WaitForStatus(HttpClient& client, const std::string& id, std::string_view status,
                           std::chrono::milliseconds deadline) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + deadline;
  json::object job;
  for (;;) {
    job = GetJob(client, id);
    if (Field(job, "status") == status) return job;
    if (job.empty() || Clock::now() >= until) {
      ADD_FAILURE() << "job " << id << " did not reach status " << status << " within " << deadline.count()
                    << " ms: " << json::serialize(job);
      return job;
    }
    // The API has no "wait until running": poll, briefly.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void WaitForInUse(HttpClient& client, std::string_view resource, std::int64_t in_use,
                  std::chrono::milliseconds deadline) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + deadline;
  std::string last;
  for (;;) {
    Response res = client.Get("/v1/resources");
    last = Describe(res);
    if (res.status == 200 && res.json().is_object()) {
      for (const auto& r : res.json().at("resources").as_array()) {
        const json::object& o = r.as_object();
        if (Field(o, "name") == resource && o.at("in_use") == in_use) return;
      }
    }
    if (Clock::now() >= until) {
      ADD_FAILURE() << resource << " did not reach in_use " << in_use << " within " << deadline.count()
                    << " ms: " << last;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string Field(const json::object& job, std::string_view name) {
  const json::value* v = job.if_contains(name);
  return v && v->is_string() ? std::string(v->get_string()) : "";
}

std::int64_t TimeOf(const json::object& job, std::string_view name) {
  const json::value* v = job.if_contains(name);
  if (!v) {
    ADD_FAILURE() << "job object has no " << name << ": " << json::serialize(job);
    return -1;
  }
  if (v->is_null()) return -1;
  if (!v->is_string()) {
    ADD_FAILURE() << name << " is not a string: " << json::serialize(job);
    return -1;
  }
  auto ms = ParseRfc3339Millis(v->get_string());
  if (!ms) {
    ADD_FAILURE() << name << " is not RFC 3339 UTC with milliseconds: " << v->get_string();
    return -1;
  }
  return *ms;
}

::testing::AssertionResult IsProblem(const Response& res, int status) {
  if (res.status != status) {
    return ::testing::AssertionFailure() << "expected HTTP " << status << ", got " << Describe(res);
  }
  if (res.header("content-type") != "application/problem+json") {
    return ::testing::AssertionFailure() << "content-type is not application/problem+json: " << Describe(res);
  }
  json::value body = res.json();
  const json::object* o = body.if_object();
  if (!o) return ::testing::AssertionFailure() << "body is not a JSON object: " << Describe(res);
  for (const char* key : {"type", "title", "detail"}) {
    const json::value* v = o->if_contains(key);
    if (!v || !v->is_string() || v->get_string().empty()) {
      return ::testing::AssertionFailure() << "problem has no string " << key << ": " << Describe(res);
    }
  }
  const json::value* s = o->if_contains("status");
  if (!s || !s->is_int64() || s->get_int64() != status) {
    return ::testing::AssertionFailure() << "problem status is not " << status << ": " << Describe(res);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace offload::testing
