#include "exec/worker_message.h"

#include <algorithm>
#include <boost/json.hpp>

#include "offload/error_types.h"
#include "util/json_reader.h"

namespace offload {

namespace json = boost::json;

namespace {

// {"type", "message", "detail"} of a protocol message's "error" (or a bare string).
JobError ErrorFromMessage(const json::object& msg, std::string_view default_type) {
  JobError err{std::string(default_type), "the worker reported an error without a message"};
  const json::value* e = msg.if_contains("error");
  if (!e) return err;
  if (e->is_string()) {
    err.message = e->get_string();
    return err;
  }
  if (!e->is_object()) return err;
  const json::object& o = e->get_object();
  if (auto* t = o.if_contains("type"); t && t->is_string() && !t->get_string().empty()) err.type = t->get_string();
  if (auto* m = o.if_contains("message"); m && m->is_string()) err.message = m->get_string();
  if (auto* d = o.if_contains("detail"); d && d->is_string()) err.detail = d->get_string();
  return err;
}

bool IsTrue(const json::value* v) { return v && v->is_bool() && v->get_bool(); }

bool IsBase64(const json::object& msg) {
  const json::value* enc = msg.if_contains("encoding");
  return enc && enc->is_string() && enc->get_string() == "base64";
}

// The "errors" of a batch_result whose "results" holds `ran` outcomes.
std::vector<std::pair<std::size_t, JobError>> BatchErrors(const json::object& msg, std::size_t ran) {
  std::vector<std::pair<std::size_t, JobError>> errors;
  const json::value* e = msg.if_contains("errors");
  if (!e || !e->is_array()) return errors;
  for (const json::value& item : e->get_array()) {
    const json::object* o = item.if_object();
    const json::value* index = o ? o->if_contains("index") : nullptr;
    if (!index || !index->is_int64() || index->get_int64() < 0 || static_cast<std::size_t>(index->get_int64()) >= ran) {
      continue;
    }
    json::object wrapped{{"error", *o}};
    errors.emplace_back(static_cast<std::size_t>(index->get_int64()),
                        ErrorFromMessage(wrapped, error_type::kWorkerError));
  }
  std::stable_sort(errors.begin(), errors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // An element named twice keeps its first error.
  errors.erase(
      std::unique(errors.begin(), errors.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
      errors.end());
  return errors;
}

}  // namespace

WorkerMessage ParseWorkerMessage(std::string_view line) {
  WorkerMessage m;
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return m;
  ErrorOr<json::value> parsed = ParseJson(line);
  if (!parsed && parsed.error().code == ErrorCode::kInvalidArgument) {
    m.kind = WorkerMessage::Kind::kUnusable;
    m.detail = std::move(parsed.error().detail);
    return m;
  }
  m.kind = WorkerMessage::Kind::kNoise;
  if (!parsed || !parsed->is_object()) return m;
  json::object& msg = parsed->get_object();
  const json::value* type_v = msg.if_contains("type");
  const json::string* type = type_v ? type_v->if_string() : nullptr;
  if (!type) return m;
  m.type = std::string(*type);
  if (const json::value* id = msg.if_contains("id"); id && id->is_string()) m.id = std::string(id->get_string());
  if (m.type == "ready") {
    m.kind = WorkerMessage::Kind::kReady;
    if (const json::value* f = msg.if_contains("features"); f && f->is_array()) {
      for (const json::value& name : f->get_array()) {
        if (name.is_string()) m.features.emplace_back(name.get_string());
      }
    }
  } else if (m.type == "fatal") {
    m.kind = WorkerMessage::Kind::kFatal;
    m.error = ErrorFromMessage(msg, error_type::kWorkerUnavailable);
  } else if (m.type == "progress") {
    m.kind = WorkerMessage::Kind::kProgress;
    if (const json::value* p = msg.if_contains("progress"); p && p->is_number()) m.progress = p->to_number<double>();
  } else if (m.type == "result") {
    m.kind = WorkerMessage::Kind::kResult;
    m.result_file = IsTrue(msg.if_contains("result_file"));
    m.base64 = IsBase64(msg);
    if (json::value* r = msg.if_contains("result")) m.result = std::move(*r);
  } else if (m.type == "error") {
    m.kind = WorkerMessage::Kind::kError;
    m.error = ErrorFromMessage(msg, error_type::kWorkerError);
  } else if (m.type == "batch_result") {
    m.kind = WorkerMessage::Kind::kBatchResult;
    m.base64 = IsBase64(msg);
    if (json::value* r = msg.if_contains("results"); r && r->is_array()) {
      m.errors = BatchErrors(msg, r->get_array().size());
      m.results = std::move(r->get_array());
    }
  } else {
    m.kind = WorkerMessage::Kind::kOther;
  }
  return m;
}

}  // namespace offload
