#include "store/record_text.h"

#include <boost/json.hpp>

#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {

namespace json = boost::json;

std::string HistoryToText(const std::vector<JobError>& history) {
  if (history.empty()) return {};
  json::array a;
  for (const auto& e : history) a.push_back(json::object{{"type", e.type}, {"message", e.message}});
  return WriteJson(a, JsonNumbers::kKeepKind);
}

std::vector<JobError> HistoryFromText(std::string_view text) {
  std::vector<JobError> out;
  if (text.empty()) return out;
  ErrorOr<json::value> v = ParseJson(text);
  if (!v || !v->is_array()) return out;
  for (const auto& e : v->get_array()) {
    if (!e.is_object()) continue;
    const auto& o = e.get_object();
    JobError err;
    if (auto* t = o.if_contains("type"); t && t->is_string()) err.type = t->get_string();
    if (auto* m = o.if_contains("message"); m && m->is_string()) err.message = m->get_string();
    out.push_back(std::move(err));
  }
  return out;
}

std::string MapSpecToText(const std::optional<MapSpec>& map) {
  if (!map) return {};
  return WriteJson(json::object{{"chunk", map->chunk},
                                {"on_error", map->collect ? "collect" : "fail_fast"},
                                {"failed_index", map->failed_index}});
}

MapSpec MapSpecFromText(std::string_view text) {
  MapSpec out;
  ErrorOr<json::value> v = ParseJson(text);
  if (!v || !v->is_object()) return out;
  const auto& o = v->get_object();
  if (auto* c = o.if_contains("chunk"); c && c->is_int64()) out.chunk = c->get_int64();
  if (auto* e = o.if_contains("on_error"); e && e->is_string()) out.collect = e->get_string() == "collect";
  if (auto* f = o.if_contains("failed_index"); f && f->is_int64()) out.failed_index = f->get_int64();
  return out;
}

std::string FilesToText(const std::vector<JobFile>& files) {
  if (files.empty()) return {};
  json::array a;
  for (const JobFile& f : files) {
    a.push_back(json::object{{"field", f.field},
                             {"filename", f.filename},
                             {"content_type", f.content_type},
                             {"size", f.size},
                             {"sha256", f.sha256}});
  }
  return WriteJson(a);
}

std::vector<JobFile> FilesFromText(std::string_view text) {
  std::vector<JobFile> out;
  ErrorOr<json::value> v = ParseJson(text);
  if (!v || !v->is_array()) return out;
  auto str = [](const json::object& o, const char* key) {
    const json::value* s = o.if_contains(key);
    return s && s->is_string() ? std::string(s->get_string()) : std::string();
  };
  for (const auto& e : v->get_array()) {
    if (!e.is_object()) continue;
    const auto& o = e.get_object();
    JobFile f{str(o, "field"), str(o, "filename"), str(o, "content_type"), 0, str(o, "sha256"), {}};
    if (const json::value* n = o.if_contains("size"); n && n->is_number()) f.size = n->to_number<std::uint64_t>();
    out.push_back(std::move(f));
  }
  return out;
}

std::string ResultFileToText(const OutputFile& file) {
  return WriteJson(json::object{{"size", file.size}, {"sha256", file.sha256}});
}

OutputFile ResultFileFromText(std::string_view text) {
  OutputFile out;
  ErrorOr<json::value> v = ParseJson(text);
  if (!v || !v->is_object()) return out;
  const auto& o = v->get_object();
  if (const json::value* n = o.if_contains("size"); n && n->is_number()) out.size = n->to_number<std::uint64_t>();
  if (const json::value* h = o.if_contains("sha256"); h && h->is_string()) out.sha256 = h->get_string();
  return out;
}

}  // namespace offload
