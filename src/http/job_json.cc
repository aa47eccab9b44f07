#include "http/job_json.h"

#include <boost/json.hpp>
#include <cassert>
#include <limits>

#include "http/problem.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {

namespace json = boost::json;

namespace {

json::value Time(UnixMillis ms) {
  if (ms <= 0) return nullptr;
  return json::value(FormatRfc3339(ms));
}

// The map fields of a submit: "map", "chunk", "on_error".
bool IsMapField(std::string_view key) { return key == "map" || key == "chunk" || key == "on_error"; }

// Sets `req` from one map field; an error when its value is wrong.
// REQUIRES: IsMapField(key).
Status ParseMapField(std::string_view key, json::value& value, SubmitRequest* req) {
  assert(IsMapField(key));
  if (!req->map) req->map = MapSpec{};
  if (key == "map") {
    if (!value.is_array()) return MakeError(ErrorCode::kInvalidArgument, "map must be an array of inputs");
    req->input = std::move(value);
  } else if (key == "chunk") {
    if (!value.is_int64() || value.get_int64() < 1 || value.get_int64() > 1'000'000) {
      return MakeError(ErrorCode::kInvalidArgument, "chunk must be an integer from 1 to 1000000");
    }
    req->map->chunk = value.get_int64();
  } else {
    const json::string* mode = value.if_string();
    if (!mode || (*mode != "fail_fast" && *mode != "collect")) {
      return MakeError(ErrorCode::kInvalidArgument, "on_error must be \"fail_fast\" or \"collect\"");
    }
    req->map->collect = *mode == "collect";
  }
  return {};
}

}  // namespace

namespace {

// The job object without its "result" member.
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
  if (!j.retry_of.empty()) o["retry_of"] = j.retry_of;
  if (!j.tenant.empty()) o["tenant"] = j.tenant;
  o["created_at"] = Time(j.created_at);
  o["started_at"] = Time(j.started_at);
  o["finished_at"] = Time(j.finished_at);
  if (j.result) {
    o["result_type"] = j.result->content_type;
    o["result_url"] = "/v1/jobs/" + j.id + "/result";
    if (j.result->file) {
      o["result_size"] = j.result->file->size;
      o["result_sha256"] = j.result->file->sha256;
    } else if (!j.result->is_json()) {
      o["result_size"] = j.result->bytes.size();
    }
  }
  if (!j.files.empty()) {
    json::array files;
    for (const JobFile& f : j.files) {
      files.push_back(json::object{{"field", f.field},
                                   {"filename", f.filename},
                                   {"content_type", f.content_type},
                                   {"size", f.size},
                                   {"sha256", f.sha256}});
    }
    o["files"] = std::move(files);
  }
  if (j.error) {
    o["error"] = JobErrorToJson(*j.error);
  } else {
    o["error"] = nullptr;
  }
  o["progress"] = j.progress ? json::value(*j.progress) : json::value(nullptr);
  if (j.map) {
    json::object m;
    m["total"] = j.input && j.input->is_array() ? j.input->get_array().size() : 0;
    if (snap.map) {
      m["done"] = snap.map->done;
      m["failed"] = snap.map->failed;
      m["running"] = snap.map->running;
    }
    m["chunk"] = j.map->chunk > 0 ? json::value(j.map->chunk) : json::value(nullptr);
    m["on_error"] = j.map->collect ? "collect" : "fail_fast";
    m["failed_index"] = j.map->failed_index >= 0 ? json::value(j.map->failed_index) : json::value(nullptr);
    o["map"] = std::move(m);
  }
  if (!j.error_history.empty()) {
    json::array history;
    for (const auto& e : j.error_history) history.push_back(json::object{{"type", e.type}, {"message", e.message}});
    o["error_history"] = std::move(history);
  }
  return o;
}

json::object WorkersToJson(const WorkerStatus& w) {
  json::array features;
  for (const auto& f : w.features) features.emplace_back(f);
  json::array processes;
  for (const auto& p : w.processes) {
    processes.push_back(json::object{{"pid", p.pid}, {"state", p.state}, {"jobs", p.jobs}});
  }
  json::object o{{"configured", w.configured},
                 {"ready", w.idle},
                 {"busy", w.busy},
                 {"starting", w.starting},
                 {"started", w.started},
                 {"restarts", w.restarts},
                 {"features", std::move(features)},
                 {"last_exit", w.last_exit.empty() ? json::value(nullptr) : json::value(w.last_exit)},
                 {"stderr_tail", w.stderr_tail.empty() ? json::value(nullptr) : json::value(w.stderr_tail)},
                 {"last_error", w.last_error ? json::value(JobErrorToJson(*w.last_error)) : json::value(nullptr)},
                 {"trouble", w.trouble.empty() ? json::value(nullptr) : json::value(w.trouble)},
                 {"processes", std::move(processes)}};
  return o;
}

}  // namespace

void AppendJobJson(std::string* out, const JobSnapshot& job, bool include_result, bool include_input) {
  AppendJson(out, JobToJson(job));
  if (include_input) {
    assert(out->back() == '}');
    out->pop_back();
    *out += R"(,"input":)";
    AppendJson(out, job.record.input ? *job.record.input : boost::json::value(nullptr));
    *out += '}';
  }
  // Left out, not null, when not asked for: null says "no result", while result_url
  // says where it is.
  if (!include_result) return;
  const Output* result = job.record.result.get();
  assert(out->back() == '}');
  out->pop_back();  // The object's closing brace.
  *out += R"(,"result":)";
  if (result && result->is_json()) {
    AppendJson(out, result->json);
  } else {
    *out += "null";
  }
  *out += '}';
}

json::object TaskToJson(const TaskInfo& t) {
  json::object uses;
  for (const auto& [res, amount] : t.uses) uses[res] = amount;
  json::object o{{"name", t.name},
                 {"run", t.run},
                 {"uses", std::move(uses)},
                 {"content_type", t.content_type},
                 {"max_queued", t.max_queued},
                 {"queued", t.queued},
                 {"running", t.running},
                 {"timeout_ms", t.timeout.count() > 0 ? json::value(t.timeout.count()) : json::value(nullptr)}};
  if (t.workers) o["workers"] = WorkersToJson(*t.workers);
  return o;
}

json::object ResourceToJson(const ResourceInfo& r) {
  return json::object{
      {"name", r.name}, {"capacity", r.capacity}, {"in_use", r.in_use}, {"queued_demand", r.queued_demand}};
}

ErrorOr<SubmitRequest> ParseSubmitRequest(std::string_view body) {
  // A number no value can hold is named by its place in the body: "input.x",
  // "map[3].y", "priority".
  ErrorOr<json::value> parsed = ParseJson(body);
  if (!parsed) {
    if (parsed.error().code == ErrorCode::kInvalidArgument) return parsed.error();
    return MakeError(ErrorCode::kMalformed, "the body is not valid JSON: " + parsed.error().detail);
  }
  json::value& v = *parsed;
  json::object* obj = v.if_object();
  if (!obj) return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  SubmitRequest req;
  bool has_input = false, has_map = false;
  for (auto& [key, value] : *obj) {
    if (IsMapField(key)) {
      Status map_field = ParseMapField(key, value, &req);
      if (!map_field) return map_field.error();
      has_map = has_map || key == "map";
    } else if (key == "task") {
      if (!value.is_string() || value.get_string().empty()) {
        return MakeError(ErrorCode::kInvalidArgument, "task must be a non-empty string");
      }
      req.task = value.get_string();
    } else if (key == "input") {
      req.input = std::move(value);
      has_input = true;
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
      return MakeError(
          ErrorCode::kInvalidArgument,
          "unknown field \"" + std::string(key) + "\" (expected task, input, map, chunk, on_error, priority, timeout)");
    }
  }
  if (req.task.empty()) return MakeError(ErrorCode::kInvalidArgument, "task is required");
  if (req.map && !has_map) return MakeError(ErrorCode::kInvalidArgument, "chunk and on_error need a map");
  if (has_map && has_input) {
    return MakeError(ErrorCode::kInvalidArgument, "give input (one job) or map (one job per element), not both");
  }
  return req;
}

ErrorOr<SubmitRequest> ParseRunRequest(std::string_view task, std::string_view body) {
  SubmitRequest req;
  req.task = task;
  if (body.empty()) return req;
  // The whole body is the input, so a number no value can hold is named "input.x".
  ErrorOr<json::value> parsed = ParseJson(body, "input");
  if (!parsed) {
    if (parsed.error().code == ErrorCode::kInvalidArgument) return parsed.error();
    return MakeError(ErrorCode::kMalformed, "the body (the task's input) is not valid JSON: " + parsed.error().detail);
  }
  req.input = std::move(*parsed);
  // {"map": [...]} with at most chunk and on_error beside it is a map; any other
  // body is the input of one job.
  json::object* obj = req.input.if_object();
  if (!obj || !obj->contains("map")) return req;
  for (const auto& [key, value] : *obj) {
    if (!IsMapField(key)) return req;
  }
  json::object fields = std::move(*obj);
  for (auto& [key, value] : fields) {
    Status map_field = ParseMapField(key, value, &req);
    if (!map_field) return map_field.error();
  }
  return req;
}

}  // namespace offload
