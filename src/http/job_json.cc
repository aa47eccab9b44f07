#include "http/job_json.h"

#include <boost/json.hpp>
#include <limits>

namespace offload {

namespace json = boost::json;

namespace {

json::value Time(UnixMillis ms) {
  if (ms <= 0) return nullptr;
  return json::value(FormatRfc3339(ms));
}

}  // namespace

json::object JobToJson(const JobSnapshot& snap) {
  const JobRecord& j = snap.record;
  json::object o;
  o.reserve(14);
  o["id"] = j.id;
  o["task"] = j.task;
  o["status"] = JobStatusName(j.status);
  o["priority"] = j.priority;
  o["position"] = snap.position ? json::value(*snap.position) : json::value(nullptr);
  o["attempts"] = j.attempts;
  o["created_at"] = Time(j.created_at);
  o["started_at"] = Time(j.started_at);
  o["finished_at"] = Time(j.finished_at);
  if (j.result && j.result->is_json()) {
    o["result"] = j.result->json;
  } else {
    o["result"] = nullptr;
  }
  if (j.result) {
    o["result_type"] = j.result->content_type;
    o["result_url"] = "/v1/jobs/" + j.id + "/result";
  }
  if (j.error) {
    o["error"] = json::object{{"type", j.error->type}, {"message", j.error->message}};
  } else {
    o["error"] = nullptr;
  }
  o["progress"] = j.progress ? json::value(*j.progress) : json::value(nullptr);
  if (!j.error_history.empty()) {
    json::array history;
    for (const auto& e : j.error_history) history.push_back(json::object{{"type", e.type}, {"message", e.message}});
    o["error_history"] = std::move(history);
  }
  return o;
}

json::object TaskToJson(const TaskInfo& t) {
  json::object uses;
  for (const auto& [res, amount] : t.uses) uses[res] = amount;
  return json::object{{"name", t.name},
                      {"run", t.run},
                      {"uses", std::move(uses)},
                      {"content_type", t.content_type},
                      {"max_queued", t.max_queued},
                      {"queued", t.queued},
                      {"timeout_ms", t.timeout.count() > 0 ? json::value(t.timeout.count())
                                                           : json::value(nullptr)}};
}

json::object ResourceToJson(const ResourceInfo& r) {
  return json::object{{"name", r.name},
                      {"capacity", r.capacity},
                      {"in_use", r.in_use},
                      {"queued_demand", r.queued_demand}};
}

ErrorOr<SubmitRequest> ParseSubmitRequest(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return MakeError(ErrorCode::kMalformed, "the body is not valid JSON: " + ec.message());
  json::object* obj = v.if_object();
  if (!obj) return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  SubmitRequest req;
  for (auto& [key, value] : *obj) {
    if (key == "task") {
      if (!value.is_string() || value.get_string().empty()) {
        return MakeError(ErrorCode::kInvalidArgument, "task must be a non-empty string");
      }
      req.task = value.get_string();
    } else if (key == "input") {
      req.input = std::move(value);
    } else if (key == "priority") {
      if (!value.is_int64() || value.get_int64() < std::numeric_limits<int>::min() ||
          value.get_int64() > std::numeric_limits<int>::max()) {
        return MakeError(ErrorCode::kInvalidArgument, "priority must be a 32-bit integer");
      }
      req.priority = static_cast<int>(value.get_int64());
    } else if (key == "timeout") {
      // Seconds, like Prefer: wait. Capped by the task's own timeout.
      const double s = value.is_number() ? value.to_number<double>() : -1;
      if (!(s > 0) || s > 1e7) {
        return MakeError(ErrorCode::kInvalidArgument, "timeout must be a positive number of seconds");
      }
      req.timeout = Millis(std::max<std::int64_t>(1, static_cast<std::int64_t>(s * 1000)));
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "unknown field \"" + std::string(key) + "\" (expected task, input, priority, timeout)");
    }
  }
  if (req.task.empty()) return MakeError(ErrorCode::kInvalidArgument, "task is required");
  return req;
}

}  // namespace offload
